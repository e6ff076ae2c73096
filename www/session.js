// The room page's connection life cycle: one visit, from the mic prompt to leaving.
// (A little over 400 lines on purpose: the life cycle reads top to bottom as one state
// machine; its media half already lives in negotiation.js.)
//
// Sans-IO like ptt.js: inputs (user choices, device results, socket and peer-connection
// events, timers firing, server messages) go in; plain actions come out for the caller
// (driver.js) to perform. No DOM, no WebSocket, no RTCPeerConnection, no timers, no clock
// inside, so every transition is testable on its own (tests/browser/test_page_session.py).
//
// Sockets, peer connections and timers are named by numbers this machine hands out in its
// actions; an event about any other number is stale (a socket or peer connection already
// replaced) and changes nothing: a late `onclose` of an old socket or a late offer of a
// closed peer connection never acts on the current session.
//
// Actions (negotiation.js, which owns the peer connection and judges media trouble, adds
// openPeer, closePeer, acceptAnswer and sending):
//   {type: "openMic"} / {type: "releaseMic"}      answer: micReady / micFailed; micEnded later
//   {type: "wakeLock"} / {type: "releaseWakeLock"}
//   {type: "openSocket", socket}                  answer: socketOpened / socketMessage / socketClosed
//   {type: "closeSocket", socket}                 no event follows
//   {type: "send", socket, message}               always on the current, open socket
//   {type: "startTimer", timer, delay} / {type: "cancelTimer", timer}    answer: timerFired
//   {type: "room", message}                       joined / presence / floor news for the room
//                                                 state and the floor machine
//   {type: "leaveRoom"}                           session over: forget room and floor state
//   {type: "showForm", name, nameError, passwordError}
//   {type: "warn", text}                          a non-fatal server error, for the console
//   {type: "goHome"}                              the user left: go to the landing page
//
// Media reset (`media` `reset`, docs/PROTOCOL.md): the server lost our media session but
// kept our membership and floor, so we stay joined (RESETTING) and negotiation.js makes a
// new peer connection whose offer goes out on the same socket, without a click. In a
// cluster the room itself may move to another node (its node failed or drains): a second
// `joined` on the same socket replaces the room's state, then the `media` `reset` follows.
//
// Network handover (docs/PROTOCOL.md, "resume"): `joined` carries a one-time resume secret.
// When the socket dies (or the network changes: `networkChanged`), the visit stays in the
// room: room and floor state are kept, a new socket opens at once and sends `resume`
// instead of `join`; the server answers `joined` (`resumed`, same id) and tells whether our
// media session lived on (`media` `connected`) or must be made again (`reset`). A refused
// resume (`resume_failed`: the grace ran out) falls back to a plain `join` on that socket.
// A peer connection that fails, or stays `disconnected` for ICE_GRACE_MS, is replaced by a
// new one whose offer goes out on the same socket: nobody else sees anything.

import { Negotiation } from "./negotiation.js";
import { backoffDelay } from "./signaling.js";

/** Named states of a visit. */
export const Phase = Object.freeze({
  IDLE: "idle", // nothing started yet
  FORM: "form", // the join form waits for the user
  MIC: "mic", // the browser asks for the microphone
  CONNECTING: "connecting", // socket opening, join sent, waiting for `joined`
  MEDIA: "media", // joined; first peer connection being set up
  READY: "ready", // joined and audio connected
  RESETTING: "resetting", // joined; the server reset our media, a new offer is under way
  BACKOFF: "backoff", // socket gone; a reconnect timer runs
  FAILED: "failed", // stopped with an explanation (maybe a retry button)
  LEFT: "left", // the user left (or the page was hidden for good)
});

const JOINED = new Set([Phase.MEDIA, Phase.READY, Phase.RESETTING]);
const STOPPED = new Set([Phase.IDLE, Phase.FORM, Phase.FAILED, Phase.LEFT]);
const NO_NOTICE = Object.freeze({ text: "", retry: "" });
/** `connection` by phase (CONNECTING depends on the attempt; the rest show "idle"). */
const CONNECTION = {
  mic: "mic",
  media: "connecting",
  ready: "ready",
  resetting: "resetting",
  backoff: "reconnecting",
  failed: "failed",
};
/** Room news, passed on to the room state and the floor machine once joined. */
const ROOM_NEWS = new Set(["member_joined", "member_left", "floor", "floor_granted", "floor_queued",
  "floor_denied", "floor_revoked", "floor_released", "replay_list", "replay_started", "replay_ended"]);
/** First reconnect after a socket loss we can resume from: soon (the member is held). */
export const RESUME_DELAY_MS = 100;
/** A peer connection `disconnected` this long is replaced (Chromium says `failed` only
 * after several more seconds). */
export const ICE_GRACE_MS = 1000;
/** Close code of a socket we give up to reconnect: the server holds our member for a resume
 * (1000 would be a goodbye). */
export const CLOSE_RECONNECTING = 4000;

export class Session {
  /**
   * @param {string} room the room to join
   * @param {{rand?: () => number}} options `rand` feeds the reconnect jitter (tests fix it)
   */
  constructor(room, { rand = Math.random } = {}) {
    this.room = room;
    this.rand = rand;
    /** @type {string} one of Phase */
    this.phase = Phase.IDLE;
    this.name = "";
    this.password = "";
    /** A signed join token from the link's #token= fragment ("" = none): it names us. */
    this.token = "";
    /** Status line while not ready (why we wait, or why we stopped). */
    this.detail = "";
    /** Alert line: {text, retry} where `retry` is the retry button's label ("" = none). */
    this.notice = NO_NOTICE;
    this.hasMic = false;
    this.attempt = 0; // consecutive failed connects, for the backoff
    this._retryKind = null; // "now" | "join" | "connect" | null: what `retry()` does
    this._socket = null; // current socket number, or null
    this._socketOpen = false;
    this._timer = null; // current timer number, or null
    this._timerKind = "";
    this._seq = 0; // numbers for sockets, peers and timers (one sequence: never confused)
    /** From `joined`: {id, secret} to resume our member on a new socket, or null. */
    this.resumeInfo = null;
    this._resuming = false; // the socket in the making is to resume, not to join
    this.resumes = 0; // successful resumes this visit (for tests and the curious)
    this.media = new Negotiation(() => this._next(), rand);
  }

  // ---- read-only views -------------------------------------------------------------------

  /** What the connection pill and the test hook show. */
  get connection() {
    if (this.phase === Phase.CONNECTING) return this.attempt === 0 ? "connecting" : "reconnecting";
    return CONNECTION[this.phase] || "idle";
  }

  /** Page mode: "join" (the form), "failed" (only the notice matters) or "room". */
  get mode() {
    if (this.phase === Phase.FORM) return "join";
    return this.phase === Phase.FAILED ? "failed" : "room";
  }

  /** Talk input is live: joined with audio, or re-establishing it after a reset. */
  get canTalk() {
    return this.phase === Phase.READY || this.phase === Phase.RESETTING;
  }

  get joined() {
    return JOINED.has(this.phase);
  }

  /** No automatic reconnect will happen (nothing started, the form, a failure, left). */
  get stopped() {
    return STOPPED.has(this.phase);
  }

  get offersSent() {
    return this.media.offersSent;
  }

  /** Media resets handled this visit (for tests and the curious). */
  get resets() {
    return this.media.resets;
  }

  // ---- user ------------------------------------------------------------------------------

  /** Join with this name (from the URL or the form), or with a signed link's `token` (the
   * token names us: `name` is only what the page shows until `joined` says). `listenOnly`
   * (the token says so): no mic at all, and peer connections that only receive. */
  join(name, password, token = "", listenOnly = false) {
    if (this.phase !== Phase.IDLE && this.phase !== Phase.FORM) return [];
    this.name = name;
    this.password = password;
    this.token = token;
    this.media.listenOnly = listenOnly === true;
    return this._join();
  }

  /** Ask for a name first (no valid ?name= in the URL). */
  showForm(nameError = "") {
    if (this.phase !== Phase.IDLE) return [];
    return this._showForm(nameError, "");
  }

  /** The notice's retry button. */
  retry() {
    if (this.phase === Phase.BACKOFF && this._retryKind === "now") {
      this.attempt = Math.max(0, this.attempt - 1);
      return this._reconnect();
    }
    if (this.phase !== Phase.FAILED || !this._retryKind) return [];
    const kind = this._retryKind;
    this.attempt = 0;
    this.media.forgive();
    return kind === "join" ? this._join() : this._connect();
  }

  /** The Leave button: end everything and go to the landing page. */
  leave() {
    if (this.phase === Phase.LEFT) return [];
    const actions = this._drop("", false);
    this._enter(Phase.LEFT, "");
    actions.push({ type: "releaseMic" }, { type: "releaseWakeLock" }, { type: "goHome" });
    return actions;
  }

  /** The page is being unloaded (pagehide): end the session, never reconnect. */
  pageHide() {
    if (this.phase === Phase.LEFT) return [];
    const actions = this._drop("", false);
    this._enter(Phase.LEFT, "");
    return actions;
  }

  /** The floor machine switched the mic (its `mic` action). */
  setMic(on) {
    return this.media.setMic(on);
  }

  /** A floor message from the floor machine: sent on the current socket once joined. */
  relay(message) {
    return this.joined ? [this._send(message)] : [];
  }

  // ---- devices ---------------------------------------------------------------------------

  micReady() {
    this.hasMic = true;
    if (this.phase !== Phase.MIC) return [];
    return [{ type: "wakeLock" }, ...this._connect()];
  }

  micFailed(text) {
    if (this.phase !== Phase.MIC) return [];
    return this._fail(text, "Try again", "join");
  }

  /** The mic track ended (another app took it, a phone call): say so, offer to rejoin. */
  micEnded() {
    if (!this.hasMic || this.phase === Phase.LEFT) return [];
    this.hasMic = false;
    const actions = [{ type: "releaseMic" }];
    if (this.phase === Phase.FORM || this.phase === Phase.IDLE) return actions;
    actions.push(...this._fail("The microphone stopped (another app may have taken it).", "Rejoin", "join"));
    return actions;
  }

  // ---- socket ----------------------------------------------------------------------------

  socketOpened(socket) {
    if (socket !== this._socket || this._socketOpen) return [];
    this._socketOpen = true;
    if (this._resuming && this.resumeInfo) {
      return [this._send({ type: "resume", room: this.room, id: this.resumeInfo.id, secret: this.resumeInfo.secret })];
    }
    return [this._send(this._joinMessage())];
  }

  _joinMessage() {
    // With a token, the token alone admits us and names us (docs/PROTOCOL.md, "join").
    const message = this.token ? { type: "join", room: this.room, token: this.token } : { type: "join", room: this.room, name: this.name };
    if (this.password && !this.token) message.password = this.password;
    return message;
  }

  /**
   * The device's network changed (`online`, or a new `navigator.connection.type`): the
   * socket and the peer connection may be bound to the old one and die silently. Replace
   * both now, keeping our member (a resume), instead of waiting for timeouts.
   */
  networkChanged() {
    if (!this.joined || !this.resumeInfo) return [];
    return this._suspend("The network changed", true);
  }

  /** The server (or the network) closed the socket; `opened`: it had been open. */
  socketClosed(socket, opened) {
    if (socket !== this._socket) return [];
    this._socket = null; // already closed: nothing to close
    this._socketOpen = false;
    const reason = opened ? "Connection lost" : "Cannot reach the server";
    if (this.resumeInfo && (this.joined || this._resuming)) return this._suspend(reason, false);
    return this._drop(reason, true);
  }

  socketMessage(socket, msg) {
    if (socket !== this._socket || !this._socketOpen || !msg || typeof msg.type !== "string") return [];
    if (msg.type === "joined") return this._joined(msg);
    if (msg.type === "answer") return this._answer(msg);
    if (msg.type === "media") return this._judge(() => this.media.serverMedia(msg));
    if (msg.type === "error") return this._error(msg);
    if (ROOM_NEWS.has(msg.type) && this.joined) return [{ type: "room", message: msg }];
    return []; // unknown types are ignored: newer servers may add some
  }

  // ---- peer connection -------------------------------------------------------------------

  /** The peer connection's offer SDP is ready (gathering done). */
  offerReady(peer, sdp) {
    return this.joined ? this._onSocket(this.media.offerReady(peer, sdp)) : [];
  }

  peerConnected(peer) {
    const actions = this._timerKind === "iceGrace" ? this._cancelTimer() : [];
    return [...actions, ...this._judge(() => this.media.peerConnected(peer))];
  }

  peerFailed(peer) {
    return this._judge(() => this.media.peerFailed(peer));
  }

  /** ICE says `disconnected`: it may come back by itself; if not within ICE_GRACE_MS, the
   * peer connection is replaced. */
  peerDisconnected(peer) {
    if (!this.joined || !this.media.isCurrent(peer) || this._timer !== null) return [];
    return this._startTimer("iceGrace", ICE_GRACE_MS);
  }

  /** Gathering ended with no local candidate at all. */
  peerNoPath(peer, detail) {
    return this._judge(() => this.media.peerNoPath(peer, detail));
  }

  /** The browser could not make the peer connection or its offer. */
  peerError(peer, text) {
    return this._judge(() => this.media.peerError(peer, text));
  }

  answerRefused(peer, text) {
    return this._judge(() => this.media.answerRefused(peer, text));
  }

  timerFired(timer) {
    if (timer !== this._timer) return [];
    this._timer = null;
    if (this._timerKind === "reconnect" && this.phase === Phase.BACKOFF) return this._reconnect();
    if (this._timerKind === "reoffer" && this.phase === Phase.RESETTING) return this.media.open();
    if (this._timerKind === "iceGrace" && this.joined) {
      return this._judge(() => this.media.recover("the audio path was interrupted"));
    }
    return [];
  }

  // ---- transitions -----------------------------------------------------------------------

  _join() {
    if (!this.hasMic && !this.media.listenOnly) {
      this._enter(Phase.MIC, "Allow the microphone to join: it is only used while you hold Talk.");
      return [{ type: "openMic" }];
    }
    return [{ type: "wakeLock" }, ...this._connect()];
  }

  _connect(notice = NO_NOTICE) {
    const actions = this._cancelTimer();
    this._socket = this._next();
    this._socketOpen = false;
    this._enter(Phase.CONNECTING, "Connecting to the room…", notice);
    actions.push({ type: "openSocket", socket: this._socket });
    return actions;
  }

  /** From BACKOFF: the notice keeps saying why (without the countdown) until we are back. */
  _reconnect() {
    return this._connect({ text: this.detail, retry: "" });
  }

  _joined(msg) {
    if (!msg.you || typeof msg.you.id !== "string") return [];
    const ice = {
      servers: Array.isArray(msg.ice_servers) ? msg.ice_servers : [],
      policy: msg.ice_transport_policy === "relay" ? "relay" : "all",
    };
    const resume = msg.resume && typeof msg.resume.secret === "string" ? msg.resume.secret : "";
    this.resumeInfo = resume ? { id: msg.you.id, secret: resume } : null;
    if (msg.resumed === true && this._resuming && this.phase === Phase.CONNECTING) {
      // Our member again (same id): the room and the floor machine keep their state, the
      // `media` message that follows says whether our peer connection lives on.
      this._resuming = false;
      this.attempt = 0;
      this.resumes += 1;
      this.media.ice = ice;
      this._enter(Phase.RESETTING, "Reconnecting audio…");
      return [{ type: "room", message: msg }];
    }
    if (this.joined) {
      // Our room moved to another server of a cluster (docs/PROTOCOL.md, "joined" again):
      // its state replaces ours (members, floor idle) and the `media` `reset` that follows
      // makes the new peer connection, with that server's ICE settings.
      this.media.ice = ice;
      return [{ type: "room", message: msg }];
    }
    if (this.phase !== Phase.CONNECTING) return [];
    this.attempt = 0;
    this._enter(Phase.MEDIA, "Connecting audio…");
    return [{ type: "room", message: msg }, ...this.media.open(ice)];
  }

  _answer(msg) {
    if (!this.joined || typeof msg.sdp !== "string") return [];
    return this._onSocket(this.media.answer(msg.sdp));
  }

  /**
   * Ask negotiation.js for its verdict on a media input and turn it into a transition.
   * Media inputs count only while joined (a stale one gets an empty verdict there).
   */
  _judge(ask) {
    if (!this.joined) return [];
    const verdict = ask();
    const actions = this._onSocket(verdict.actions);
    if (verdict.fail) return [...actions, ...this._fail(verdict.fail, "Try again", "connect")];
    if (verdict.lost) return [...actions, ...this._drop(`Audio connection lost (${verdict.lost})`, true)];
    if (verdict.up && this.phase !== Phase.READY) this._enter(Phase.READY, "");
    if (verdict.reset) {
      this._enter(Phase.RESETTING, "Reconnecting audio…", { text: "Reconnecting audio…", retry: "" });
      actions.unshift(...this._cancelTimer());
    }
    if (verdict.reofferIn !== undefined) actions.push(...this._startTimer("reoffer", verdict.reofferIn));
    return actions;
  }

  _error(msg) {
    const text = typeof msg.message === "string" && msg.message ? msg.message : String(msg.code);
    const actions = [];
    switch (msg.code) {
      case "room_full":
        return this._fail(`This room is full: ${text}. Try again later.`, "Try again", "connect");
      case "bad_password":
        return this._showForm("", this.password ? "Wrong password. Try again." : "This room has a password. Please enter it.");
      case "room_not_protected":
        // Someone made this room first, without a password: the page must not act as if it
        // were private. Clearing the password field makes "join without one" one click.
        return this._showForm(
          "",
          "This room exists without a password, so anyone who knows its name can listen. " +
            "Join without a password, or go back and create a new room.",
        );
      case "bad_name":
        return this._showForm(`That name cannot be used: ${text}`, "");
      case "bad_room":
        return this._fail(`This room name cannot be used: ${text}`, "", null);
      case "token_expired":
        return this._fail("This link has expired. Ask whoever sent it for a new one.", "", null);
      case "bad_token":
        return this._fail(`This link does not let you in: ${text}.`, "", null);
      case "bad_offer":
        return this._judge(() => this.media.refused(text));
      case "resume_failed":
        // Too late (or the server forgot us): join afresh on this socket, as a new member.
        if (this.phase !== Phase.CONNECTING || !this._resuming) break;
        this.resumeInfo = null;
        this._resuming = false;
        return [...this.media.end(), { type: "leaveRoom" }, this._send(this._joinMessage())];
      case "rate_limited":
      case "replay_unavailable": // say-again refused (replay.js says why)
        if (this.joined) actions.push({ type: "room", message: msg });
        break;
      case "try_later": // the join could not be taken now (budgets, password checks): rejoin later
        if (this.phase === Phase.CONNECTING) return this._drop(`The server is busy (${text})`, true, msg.retry_ms);
        break;
      default:
        if (!msg.fatal) actions.push({ type: "warn", text: `server error ${msg.code}: ${text}` });
    }
    if (msg.fatal) actions.push(...this._fail(`The server ended the session: ${text}`, "Reconnect", "connect"));
    return actions;
  }

  _send(message) {
    return { type: "send", socket: this._socket, message };
  }

  /** Address negotiation.js's messages to the current socket. */
  _onSocket(actions) {
    return actions.map((a) => (a.type === "send" ? this._send(a.message) : a));
  }

  /** End the current session (socket, peer connection, room); maybe reconnect later, not
   * before `atLeastMs` (a server's `retry_ms`, at most a minute). */
  _drop(reason, reconnect, atLeastMs = 0) {
    this.resumeInfo = null;
    this._resuming = false;
    const actions = [];
    if (this._socket !== null) actions.push({ type: "closeSocket", socket: this._socket });
    this._socket = null;
    this._socketOpen = false;
    actions.push(...this.media.end(), ...this._cancelTimer(), { type: "leaveRoom" });
    if (!reconnect) return actions;
    const delay = Math.max(backoffDelay(this.attempt, this.rand), Math.min(60000, Number(atLeastMs) || 0));
    this.attempt += 1;
    const secs = Math.max(1, Math.round(delay / 1000));
    const notice = { text: `${reason}. Retrying in ${secs} s…`, retry: "Retry now" };
    this._enter(Phase.BACKOFF, `${reason}. Reconnecting…`, notice, "now");
    actions.push(...this._startTimer("reconnect", delay));
    return actions;
  }

  /**
   * The socket is gone but our member is held by the server: keep the room, the floor
   * machine and (unless `renewMedia`) a connected peer connection, and reconnect soon to
   * resume.
   */
  _suspend(reason, renewMedia) {
    const actions = [];
    if (this._socket !== null) actions.push({ type: "closeSocket", socket: this._socket, code: CLOSE_RECONNECTING });
    this._socket = null;
    this._socketOpen = false;
    actions.push(...this.media.suspend(renewMedia), ...this._cancelTimer());
    const delay = this.attempt === 0 ? RESUME_DELAY_MS : backoffDelay(this.attempt - 1, this.rand);
    this.attempt += 1;
    this._resuming = true;
    const text = `${reason}. Reconnecting…`;
    this._enter(Phase.BACKOFF, text, { text, retry: "" });
    actions.push(...this._startTimer("reconnect", delay));
    return actions;
  }

  /** Stop for good and explain; `retryKind` (optional) is what the retry button does. */
  _fail(text, retryLabel, retryKind) {
    const actions = this._drop("", false);
    this._enter(Phase.FAILED, text, { text, retry: retryKind ? retryLabel : "" }, retryKind);
    return actions;
  }

  _showForm(nameError, passwordError) {
    const actions = this._drop("", false);
    this._enter(Phase.FORM, "");
    actions.push({ type: "showForm", name: this.name, nameError, passwordError });
    return actions;
  }

  /** Every transition goes through here: the phase, its status line, notice and retry. */
  _enter(phase, detail, notice = NO_NOTICE, retryKind = null) {
    this.phase = phase;
    this.detail = detail;
    this.notice = notice;
    this._retryKind = retryKind;
  }

  /** One timer at a time: a new one replaces the one running. */
  _startTimer(kind, delay) {
    const actions = this._cancelTimer();
    this._timer = this._next();
    this._timerKind = kind;
    actions.push({ type: "startTimer", timer: this._timer, delay });
    return actions;
  }

  _cancelTimer() {
    if (this._timer === null) return [];
    const timer = this._timer;
    this._timer = null;
    return [{ type: "cancelTimer", timer }];
  }

  _next() {
    this._seq += 1;
    return this._seq;
  }
}
