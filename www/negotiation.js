// The media side of the room page's session: its peer connection, the offer/answer exchange
// with the server, and how media trouble is judged (retry, re-offer, or give up).
//
// Sans-IO, owned by session.js: the session feeds it media inputs while joined and turns
// its verdicts into transitions (see `Verdict`). Rules kept here:
// - one peer connection at a time: opening one closes the one before;
// - one offer outstanding at a time. The server answers offers in order and refuses an offer
//   made while it still answers the previous one (docs/PROTOCOL.md), so an offer made
//   meanwhile is held until that reply comes; the reply belongs to a closed peer connection
//   and is dropped. An answer is applied only to the peer connection whose offer it answers;
// - the mic follows the floor machine's last `mic` action, also into a new peer connection;
// - media failures and resets in a row without one good connection are bounded
//   (MAX_MEDIA_SETBACKS), and so are refused re-offers after a reset (MAX_REOFFERS).
//
// Actions (performed by driver.js): {type: "openPeer", peer, iceServers, policy, sending,
// listenOnly} (listenOnly: a receive-only peer connection, no mic),
// {type: "closePeer", peer}, {type: "acceptAnswer", peer, sdp}, {type: "sending", peer, on},
// and {type: "send", message} for the session to send on its current socket.

import { backoffDelay } from "./signaling.js";

/** Media failures and resets in a row, without one good connection, before giving up. */
export const MAX_MEDIA_SETBACKS = 3;
/** Refused re-offers after one reset before giving up (a restarting media worker may refuse). */
export const MAX_REOFFERS = 4;

/**
 * @typedef {object} Verdict what the session should do about a media input
 * @property {object[]} actions to perform first (or with the transition)
 * @property {boolean} [up] audio is connected
 * @property {string} [lost] lost for good on this socket: rejoin later (the reason)
 * @property {string} [fail] give up and explain (the text; the retry reconnects)
 * @property {boolean} [reset] the server reset our media: a new offer is under way
 * @property {number} [reofferIn] a re-offer was refused: make another after this many ms
 */
const nothing = () => ({ actions: [] });

export class Negotiation {
  /**
   * @param {() => number} nextId hands out peer numbers (shared with the session's others)
   * @param {() => number} rand jitter for the re-offer delays
   */
  constructor(nextId, rand) {
    this.nextId = nextId;
    this.rand = rand;
    /** The current peer connection's number, or null. */
    this.peer = null;
    /** The floor machine's last `mic` action. */
    this.micOn = false;
    /** A listen-only join link: every peer connection only receives (no mic, no sender). */
    this.listenOnly = false;
    /** From `joined`: every re-offer uses the same ICE servers and transport policy. */
    this.ice = { servers: [], policy: "all" };
    /** The current peer connection's offer is made (sent or held) / its answer arrived. */
    this.offered = false;
    this.answered = false;
    this.offersSent = 0;
    this.resets = 0; // media resets handled this visit
    this.setbacks = 0; // failures + resets in a row without a good connection
    this.reoffers = 0; // refused re-offers since the last reset
    this.resetting = false; // a reset is being recovered from
    this._outstanding = null; // peer whose offer waits for the server's reply
    this.afterResume = false; // suspended for a resume: the next `media` says what lived on
    this._held = null; // {peer, sdp} made while another offer was outstanding
  }

  isCurrent(peer) {
    return peer !== null && peer === this.peer;
  }

  /** A new peer connection (closing the current one), with `ice` or the last settings. */
  open(ice = this.ice) {
    const actions = this.close();
    this.ice = ice;
    this.peer = this.nextId();
    this.offered = false;
    this.answered = false;
    const { servers, policy } = ice;
    actions.push({ type: "openPeer", peer: this.peer, iceServers: servers, policy, sending: this.micOn,
      listenOnly: this.listenOnly });
    return actions;
  }

  close() {
    if (this.peer === null) return [];
    const peer = this.peer;
    this.peer = null;
    this.offered = false;
    this.answered = false;
    if (this._held && this._held.peer === peer) this._held = null;
    return [{ type: "closePeer", peer }];
  }

  /** The socket is gone: close the peer connection; no reply can come any more. */
  end() {
    this._outstanding = null;
    this._held = null;
    this.resetting = false;
    this.afterResume = false;
    return this.close();
  }

  /**
   * The socket is gone but our member is held for a resume. An answered peer connection
   * stays open (if only the socket died, audio goes on meanwhile) unless `renew` (the
   * network changed: it is bound to the old one); one still negotiating is closed, since
   * its answer can no longer come.
   */
  suspend(renew) {
    this._outstanding = null;
    this._held = null;
    this.afterResume = true;
    return renew || !this.answered ? this.close() : [];
  }

  /** Replace the peer connection with a new one, offered on the same socket (ICE failed or
   * stayed disconnected): the server swaps our media session, nobody else notices. */
  recover(reason) {
    if (this.peer === null || this.resetting) return nothing();
    return this._reset(reason);
  }

  /** The user asked to try again: the bounds start over. */
  forgive() {
    this.setbacks = 0;
    this.reoffers = 0;
  }

  setMic(on) {
    if (on === this.micOn) return [];
    this.micOn = on;
    return this.peer === null ? [] : [{ type: "sending", peer: this.peer, on }];
  }

  /** The current peer connection made its offer: send it, or hold it behind the outstanding one. */
  offerReady(peer, sdp) {
    if (!this.isCurrent(peer) || this.offered || typeof sdp !== "string") return [];
    this.offered = true;
    if (this._outstanding !== null) {
      this._held = { peer, sdp };
      return [];
    }
    return [this._send(peer, sdp)];
  }

  /** The server's `answer` (to the outstanding offer). */
  answer(sdp) {
    if (this._outstanding === null) return []; // unasked for: ignore
    const peer = this._takeReply();
    const actions = [];
    if (peer === this.peer) {
      this.answered = true;
      actions.push({ type: "acceptAnswer", peer, sdp });
    }
    actions.push(...this._flush());
    return actions;
  }

  // ---- media inputs that need a verdict ---------------------------------------------------

  /** The server's `media` message. @returns {Verdict} */
  serverMedia(msg) {
    const reason = typeof msg.reason === "string" && msg.reason ? msg.reason : String(msg.state);
    if (this.afterResume && (msg.state === "connected" || msg.state === "reset")) {
      // Resumed: our media session lived on and our peer connection too, or it starts anew.
      this.afterResume = false;
      if (msg.state === "connected" && this.answered) return this._up();
      return this._reset(reason);
    }
    if (msg.state === "connected") return this.answered ? this._up() : nothing();
    if (msg.state === "failed") return this._failed(reason);
    if (msg.state === "reset") return this._reset(reason);
    return nothing();
  }

  /** @returns {Verdict} */
  peerConnected(peer) {
    return this.isCurrent(peer) ? this._up() : nothing();
  }

  /** ICE/DTLS failed: a new peer connection, offered on the same socket (a network
   * handover), bounded like resets. @returns {Verdict} */
  peerFailed(peer) {
    if (!this.isCurrent(peer)) return nothing();
    const relay = this.ice.policy === "relay";
    return this._reset(relay ? "the path through the media relay (TURN) failed" : "the audio path failed (ICE/DTLS)");
  }

  /** Gathering ended with no local candidate: retrying with the same settings cannot help. */
  peerNoPath(peer, detail) {
    if (!this.isCurrent(peer)) return nothing();
    const why = detail ? `: ${detail}` : "";
    const fail =
      this.ice.policy === "relay"
        ? `Could not reach the media relay (TURN)${why}. The server's TURN settings may be wrong: tell its operator.`
        : `No network path for audio was found${why}.`;
    return { actions: [], fail };
  }

  /** The browser could not make the peer connection or its offer. @returns {Verdict} */
  peerError(peer, text) {
    return this.isCurrent(peer) ? { actions: [], fail: `This browser could not set up audio: ${text}` } : nothing();
  }

  /** @returns {Verdict} */
  answerRefused(peer, text) {
    return this.isCurrent(peer) ? this._failed(`the answer was refused (${text})`) : nothing();
  }

  /**
   * `bad_offer`. For the first offer of a session it means this browser's audio setup cannot
   * be served: give up and say so. For a re-offer after a reset the same setup was accepted
   * before, so the media plane is still recovering: try again a little later, a few times.
   * @returns {Verdict}
   */
  refused(text) {
    const peer = this._takeReply();
    if (peer !== null && peer !== this.peer) return { actions: this._flush() }; // a replaced offer
    if (!this.resetting) return { actions: [], fail: `The server could not use this browser's audio setup: ${text}` };
    this.reoffers += 1;
    if (this.reoffers >= MAX_REOFFERS) return { actions: [], fail: `The audio connection keeps failing (${text}).` };
    return { actions: this.close(), reofferIn: backoffDelay(this.reoffers - 1, this.rand) };
  }

  _up() {
    this.setbacks = 0;
    this.reoffers = 0;
    this.resetting = false;
    return { actions: [], up: true };
  }

  _failed(reason) {
    this.setbacks += 1;
    if (this.setbacks >= MAX_MEDIA_SETBACKS) {
      return { actions: [], fail: `The audio connection keeps failing (${reason}). A firewall may block UDP.` };
    }
    return { actions: [], lost: reason };
  }

  /** The server lost our media session but kept us in the room: re-offer on this socket. */
  _reset(reason) {
    this.setbacks += 1;
    this.resets += 1;
    this.reoffers = 0;
    if (this.setbacks >= MAX_MEDIA_SETBACKS) return { actions: [], fail: `The audio connection keeps being reset (${reason}).` };
    this.resetting = true;
    return { actions: this.open(), reset: true };
  }

  _takeReply() {
    const peer = this._outstanding;
    this._outstanding = null;
    return peer;
  }

  _flush() {
    const held = this._held;
    this._held = null;
    if (!held || held.peer !== this.peer) return [];
    return [this._send(held.peer, held.sdp)];
  }

  _send(peer, sdp) {
    this._outstanding = peer;
    this.offersSent += 1;
    return { type: "send", message: { type: "offer", sdp } };
  }
}
