// Room page controller: /r/<room>[?name=<display name>][&raw=1]
//
// Glues the pieces: the floor state machine (ptt.js) decides, the signaling socket
// (signaling.js) and the peer connection (media.js) carry, ui.js shows. The mic is opened
// once per visit; every (re)join gets a fresh WebSocket session and a fresh peer connection
// reusing that mic track, because the server forgets a peer whose socket closed.

import { FloorMachine, State } from "./ptt.js";
import { SignalingSocket, backoffDelay, signalingUrl } from "./signaling.js";
import { MediaLink, MicError, openMic } from "./media.js";
import { playTone, resumeAudio } from "./tones.js";
import { LevelMeter, analyserLevel } from "./meter.js";
import { cleanName, normalizeRoom, rememberName, rememberedName } from "./names.js";
import {
  els,
  fieldError,
  flashLabel,
  renderConn,
  renderMembers,
  renderMode,
  renderNotice,
  renderPtt,
  renderSelfStatus,
  renderTalker,
} from "./ui.js";

const MAX_MEDIA_FAILURES = 3; // consecutive, without one good connection in between

/** Room from the path /r/<room>, or null if the path holds no valid room name. */
function roomFromPath(path) {
  const m = /^\/r\/([^/]+)\/?$/.exec(path);
  if (!m) return null;
  let text;
  try {
    text = decodeURIComponent(m[1]);
  } catch {
    return null;
  }
  return normalizeRoom(text);
}

function formatSeconds(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const REVOKE_TEXT = {
  max_talk_time: "Time is up: release, then press again to talk more.",
  lost: "You lost the floor.",
};

class RoomApp {
  constructor(room, params) {
    this.room = room;
    this.raw = params.get("raw") === "1";
    this.floor = new FloorMachine();
    this.conn = "idle";
    this.connDetail = "";
    this.name = "";
    this.password = "";
    this.micStream = null;
    this.micLevel = null;
    this.sock = null;
    this.link = null;
    this.remoteLevel = null;
    this.session = 0; // bumps on every new socket; stale async work compares against it
    this.attempt = 0; // consecutive failed connects, for the backoff
    this.mediaFailures = 0;
    this.reconnectTimer = 0;
    this.reconnectAt = 0;
    this.countdownTimer = 0;
    this.stopped = false; // no automatic reconnect (fatal error, left, waiting for the form)
    this.you = null;
    this.members = new Map();
    this.talker = null;
    this.queueLength = 0;
    this.talkDeadline = null; // performance.now() when our talk time runs out; null = no limit
    this.latch = false;
    this.activePointer = null;
    this.spaceDown = false;
    this.wakeLock = null;
    this.meter = new LevelMeter(els.meterBar);
    this.roomLink = `${location.origin}/r/${encodeURIComponent(room)}`;
  }

  // ---- start / join ------------------------------------------------------------------

  start(params) {
    document.title = `#${this.room} · walkie`;
    els.roomName.textContent = this.room;
    els.joinRoom.textContent = `#${this.room}`;
    els.roomLink.value = this.roomLink;
    this.bindUi();
    this.render();
    const fromUrl = params.get("name");
    const name = fromUrl !== null ? cleanName(fromUrl) : null;
    if (name) {
      this.join(name, "");
    } else {
      this.showJoinForm(fromUrl !== null ? "That name cannot be used: 1 to 32 characters, please." : "");
    }
  }

  showJoinForm(nameError = "", pwError = "") {
    this.stopped = true;
    renderMode("join");
    els.joinName.value = this.name || rememberedName();
    fieldError(els.joinNameError, nameError);
    fieldError(els.joinPwError, pwError);
    if (pwError) {
      els.joinPwBox.open = true;
      els.joinPassword.value = "";
      els.joinPassword.focus();
    } else if (!els.joinName.value || nameError) {
      els.joinName.focus();
    } else {
      els.joinSubmit.focus();
    }
  }

  onJoinSubmit(ev) {
    ev.preventDefault();
    const name = cleanName(els.joinName.value);
    if (!name) {
      fieldError(els.joinNameError, "Please enter a name of 1 to 32 characters.");
      els.joinName.focus();
      return;
    }
    rememberName(name);
    this.unlockAudio(); // this click is a user gesture: let audio play from now on
    this.join(name, els.joinPassword.value);
  }

  async join(name, password) {
    this.name = name;
    this.password = password;
    this.stopped = false;
    renderMode("room");
    renderNotice("");
    if (!this.micStream) {
      this.setConn("mic", "Allow the microphone to join: it is only used while you hold Talk.");
      try {
        this.micStream = await openMic(this.raw);
      } catch (err) {
        const text = err instanceof MicError ? err.message : `Microphone error: ${err}`;
        this.fail(text, "Try again", () => this.join(name, password));
        return;
      }
      // A phone can stop the mic (another app, a call): say so instead of sending silence.
      for (const track of this.micStream.getAudioTracks()) {
        track.addEventListener("ended", () => {
          this.dropSession("", false);
          this.fail("The microphone stopped (another app may have taken it).", "Rejoin", () => {
            this.micStream = null;
            this.join(this.name, this.password);
          });
        });
      }
    }
    this.acquireWakeLock();
    this.connect();
  }

  // ---- signaling session ---------------------------------------------------------------

  connect() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = 0;
    if (this.stopped) return;
    this.session += 1;
    const session = this.session;
    this.setConn(this.attempt === 0 ? "connecting" : "reconnecting", "Connecting to the room…");
    const sock = new SignalingSocket(signalingUrl(), {
      onOpen: () => {
        if (session !== this.session) return;
        const msg = { type: "join", room: this.room, name: this.name };
        if (this.password) msg.password = this.password;
        sock.send(msg);
      },
      onMessage: (msg) => {
        if (session === this.session) this.onMessage(msg, session);
      },
      onClose: (info) => {
        if (session !== this.session) return;
        this.sock = null;
        this.dropSession(info.opened ? "Connection lost" : "Cannot reach the server", true);
      },
    });
    this.sock = sock;
    sock.open();
  }

  /** End the current session (socket, peer connection, floor); optionally retry later. */
  dropSession(reason, reconnect) {
    this.session += 1;
    if (this.sock) {
      this.sock.close();
      this.sock = null;
    }
    this.teardownMedia();
    this.apply(this.floor.reset());
    this.you = null;
    this.members.clear();
    this.talker = null;
    this.queueLength = 0;
    if (reconnect && !this.stopped) this.scheduleReconnect(reason);
    this.render();
  }

  scheduleReconnect(reason) {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.reconnectAt = Date.now() + delay;
    const secs = Math.max(1, Math.round(delay / 1000));
    this.setConn("reconnecting", `${reason}. Reconnecting…`);
    renderNotice(`${reason}. Retrying in ${secs} s…`, "Retry now");
    this.onRetry = () => {
      this.attempt = Math.max(0, this.attempt - 1);
      this.connect();
    };
    this.reconnectTimer = setTimeout(() => {
      renderNotice("");
      this.connect();
    }, delay);
  }

  /** Stop for good and explain; `retry` (optional) runs when the user asks to try again. */
  fail(text, retryLabel = "", retry = null) {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.setConn("failed", text);
    renderMode("failed");
    renderNotice(text, retry ? retryLabel : "");
    this.onRetry = retry
      ? () => {
          this.attempt = 0;
          this.mediaFailures = 0;
          this.stopped = false;
          renderMode("room");
          renderNotice("");
          retry();
        }
      : null;
    this.render();
  }

  onMessage(msg, session) {
    switch (msg.type) {
      case "joined":
        return this.onJoined(msg, session);
      case "answer":
        if (this.link && typeof msg.sdp === "string") {
          this.link.acceptAnswer(msg.sdp).catch((err) => {
            if (session === this.session) this.mediaFailed(`the answer was refused (${err.message || err})`);
          });
        }
        return;
      case "media":
        if (msg.state === "connected") this.mediaUp();
        else if (msg.state === "failed") this.mediaFailed(msg.reason || "failed");
        return;
      case "member_joined":
        if (msg.member && typeof msg.member.id === "string") {
          this.members.set(msg.member.id, { id: msg.member.id, name: String(msg.member.name) });
        }
        return this.render();
      case "member_left":
        this.members.delete(msg.id);
        return this.render();
      case "floor":
        this.talker = msg.holder && typeof msg.holder.id === "string" ? msg.holder : null;
        this.queueLength = Number.isInteger(msg.queue_length) ? msg.queue_length : 0;
        this.apply(this.floor.handle(msg));
        return this.render();
      case "floor_granted":
        this.apply(this.floor.handle(msg));
        // The grant carries the time left (a repeated request gets what remains); null = no limit.
        this.talkDeadline = Number.isFinite(msg.max_ms) ? performance.now() + msg.max_ms : null;
        return this.render();
      case "floor_queued":
      case "floor_denied":
      case "floor_revoked":
      case "floor_released":
        this.apply(this.floor.handle(msg));
        return this.render();
      case "error":
        return this.onError(msg);
      default:
        return; // unknown types are ignored: newer servers may add some
    }
  }

  async onJoined(msg, session) {
    this.attempt = 0;
    this.you = msg.you;
    this.members.clear();
    for (const m of Array.isArray(msg.members) ? msg.members : []) {
      if (m && typeof m.id === "string") this.members.set(m.id, { id: m.id, name: String(m.name) });
    }
    const floor = msg.floor || {};
    this.talker = floor.holder && typeof floor.holder.id === "string" ? floor.holder : null;
    this.queueLength = Number.isInteger(floor.queue_length) ? floor.queue_length : 0;
    this.apply(this.floor.setReady(this.you.id));
    renderNotice("");
    this.setConn("connecting", "Connecting audio…");
    this.render();

    this.teardownMedia();
    let link;
    try {
      const relayOnly = msg.ice_transport_policy === "relay";
      link = new MediaLink(
        this.micStream,
        msg.ice_servers,
        {
          onRemoteStream: (stream) => this.onRemoteStream(stream),
          onState: (state) => {
            if (session !== this.session) return;
            if (state === "connected") this.mediaUp();
            else if (state === "failed")
              this.mediaFailed(relayOnly ? "the path through the media relay (TURN) failed" : "the audio path failed (ICE/DTLS)");
          },
          // No candidate at all: retrying with the same settings cannot help, so stop and say why.
          onNoPath: (detail) => {
            if (session !== this.session) return;
            this.dropSession("", false);
            const why = detail ? `: ${detail}` : "";
            this.fail(
              relayOnly
                ? `Could not reach the media relay (TURN)${why}. The server's TURN settings may be wrong: tell its operator.`
                : `No network path for audio was found${why}.`,
              "Try again",
              () => this.connect(),
            );
          },
        },
        msg.ice_transport_policy,
      );
      this.link = link;
      const sdp = await link.createOffer();
      if (session !== this.session) return;
      this.sock?.send({ type: "offer", sdp });
    } catch (err) {
      if (session !== this.session) return;
      this.dropSession("", false);
      this.fail(`This browser could not set up audio: ${err.message || err}`, "Try again", () => this.connect());
    }
  }

  mediaUp() {
    if (this.conn === "ready" || !this.you) return;
    this.mediaFailures = 0;
    this.setConn("ready", "");
    renderNotice("");
    this.render();
  }

  mediaFailed(reason) {
    this.mediaFailures += 1;
    if (this.mediaFailures >= MAX_MEDIA_FAILURES) {
      this.dropSession("", false);
      this.fail(`The audio connection keeps failing (${reason}). A firewall may block UDP.`, "Try again", () =>
        this.connect(),
      );
      return;
    }
    this.dropSession(`Audio connection lost (${reason})`, true);
  }

  onError(msg) {
    const text = typeof msg.message === "string" && msg.message ? msg.message : msg.code;
    switch (msg.code) {
      case "room_full":
        this.dropSession("", false);
        return this.fail(`This room is full: ${text}. Try again later.`, "Try again", () => this.connect());
      case "bad_password":
        this.dropSession("", false);
        return this.showJoinForm(
          "",
          this.password ? "Wrong password. Try again." : "This room has a password. Please enter it.",
        );
      case "bad_name":
        this.dropSession("", false);
        return this.showJoinForm(`That name cannot be used: ${text}`);
      case "bad_room":
        this.dropSession("", false);
        return this.fail(`This room name cannot be used: ${text}`);
      case "bad_offer":
        this.dropSession("", false);
        return this.fail(`The server could not use this browser's audio setup: ${text}`, "Try again", () =>
          this.connect(),
        );
      case "rate_limited":
        this.apply(this.floor.handle(msg));
        this.render();
        break;
      default:
        if (!msg.fatal) console.warn("walkie: server error", msg.code, text);
    }
    if (msg.fatal) {
      this.dropSession("", false);
      this.fail(`The server ended the session: ${text}`, "Reconnect", () => this.connect());
    }
  }

  // ---- media ---------------------------------------------------------------------------

  onRemoteStream(stream) {
    const audio = els.remoteAudio;
    audio.srcObject = stream;
    this.playRemote();
    if (this.remoteLevel) this.remoteLevel.dispose();
    this.remoteLevel = analyserLevel(stream);
  }

  playRemote() {
    const audio = els.remoteAudio;
    if (!audio.srcObject) return;
    const p = audio.play();
    if (p && p.catch) {
      p.then(() => {
        els.soundHint.hidden = true;
      }).catch(() => {
        // Autoplay refused (no user gesture yet): the next tap anywhere plays it.
        els.soundHint.hidden = false;
      });
    }
  }

  teardownMedia() {
    if (this.link) {
      this.link.close();
      this.link = null;
    }
    if (this.remoteLevel) {
      this.remoteLevel.dispose();
      this.remoteLevel = null;
    }
    els.remoteAudio.srcObject = null;
  }

  /** Perform the floor machine's actions. Never awaits: a press must act at once. */
  apply(actions) {
    for (const a of actions) {
      if (a.type === "mic") {
        this.link?.setSending(a.on);
      } else if (a.type === "send") {
        this.sock?.send(a.message);
      } else if (a.type === "tone") {
        playTone(a.name);
      }
    }
  }

  levelNow() {
    if (this.floor.state === State.TALKING) {
      if (!this.micLevel) this.micLevel = analyserLevel(this.micStream);
      return this.micLevel ? this.micLevel() : -1;
    }
    if (!this.talker) return 0;
    const level = this.link ? this.link.remoteLevel() : -1;
    if (level >= 0) return level;
    return this.remoteLevel ? this.remoteLevel() : -1;
  }

  // ---- input ---------------------------------------------------------------------------

  bindUi() {
    const ptt = els.ptt;
    ptt.addEventListener("pointerdown", (e) => {
      if (e.pointerType === "mouse" && e.button !== 0) return;
      e.preventDefault();
      this.unlockAudio();
      if (this.latch) {
        this.act(() => this.floor.toggle());
        return;
      }
      if (this.activePointer !== null) return; // a second finger changes nothing
      this.activePointer = e.pointerId;
      try {
        ptt.setPointerCapture(e.pointerId);
      } catch {
        /* the pointer may already be gone */
      }
      this.act(() => this.floor.press());
    });
    const up = (e) => {
      if (e.pointerId !== this.activePointer) return;
      this.activePointer = null;
      if (!this.latch) this.act(() => this.floor.release());
    };
    ptt.addEventListener("pointerup", up);
    ptt.addEventListener("pointercancel", up);
    ptt.addEventListener("lostpointercapture", up);
    ptt.addEventListener("contextmenu", (e) => e.preventDefault());
    ptt.addEventListener("selectstart", (e) => e.preventDefault());
    ptt.addEventListener("dragstart", (e) => e.preventDefault());
    // Keyboard Enter / click on the button do nothing: talking needs a hold (or latch).
    ptt.addEventListener("click", (e) => e.preventDefault());

    window.addEventListener("keydown", (e) => {
      if (e.code !== "Space" && e.key !== " ") return;
      if (this.isTyping(e.target) || this.conn !== "ready") return;
      e.preventDefault();
      if (e.repeat || this.spaceDown) return;
      this.spaceDown = true;
      this.unlockAudio();
      this.act(() => (this.latch ? this.floor.toggle() : this.floor.press()));
    });
    window.addEventListener("keyup", (e) => {
      if ((e.code !== "Space" && e.key !== " ") || !this.spaceDown) return;
      e.preventDefault();
      this.spaceDown = false;
      if (!this.latch) this.act(() => this.floor.release());
    });
    // Losing focus or hiding the page while holding would leave us talking forever.
    window.addEventListener("blur", () => this.releaseHeld());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.releaseHeld();
      else this.acquireWakeLock();
    });
    window.addEventListener("pointerdown", () => this.unlockAudio(), { capture: true });
    window.addEventListener("keydown", () => this.unlockAudio(), { capture: true });

    els.latch.addEventListener("change", () => {
      this.latch = els.latch.checked;
      if (!this.latch && this.floor.held) this.act(() => this.floor.release());
      this.render();
    });
    els.joinForm.addEventListener("submit", (e) => this.onJoinSubmit(e));
    els.noticeRetry.addEventListener("click", () => this.onRetry?.());
    els.soundHint.addEventListener("click", () => this.unlockAudio());
    els.copyLink.addEventListener("click", () => this.copyLink());
    if (navigator.share) {
      els.shareLink.hidden = false;
      els.shareLink.addEventListener("click", () => {
        navigator.share({ title: `walkie #${this.room}`, text: `Talk with me on walkie #${this.room}`, url: this.roomLink }).catch(() => {});
      });
    }
    els.leave.addEventListener("click", () => this.leave());
    window.addEventListener("pagehide", () => {
      this.stopped = true;
      this.dropSession("", false);
    });
  }

  isTyping(target) {
    if (!target || target === els.ptt) return false;
    const tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  act(fn) {
    this.apply(fn());
    this.render();
  }

  releaseHeld() {
    this.spaceDown = false;
    this.activePointer = null;
    if (!this.latch && this.floor.held) this.act(() => this.floor.release());
  }

  unlockAudio() {
    resumeAudio();
    if (els.remoteAudio.srcObject && els.remoteAudio.paused) this.playRemote();
  }

  async acquireWakeLock() {
    if (this.stopped || !navigator.wakeLock || document.visibilityState !== "visible") return;
    if (this.wakeLock && !this.wakeLock.released) return;
    try {
      this.wakeLock = await navigator.wakeLock.request("screen");
    } catch {
      this.wakeLock = null; // not allowed (battery saver, iframe): the page still works
    }
  }

  async copyLink() {
    try {
      await navigator.clipboard.writeText(this.roomLink);
    } catch {
      els.roomLink.select();
      document.execCommand?.("copy");
    }
    flashLabel(els.copyLink, "Copied");
  }

  leave() {
    this.stopped = true;
    this.dropSession("", false);
    for (const t of this.micStream?.getTracks() || []) t.stop();
    this.wakeLock?.release().catch(() => {});
    location.assign("/");
  }

  // ---- rendering -------------------------------------------------------------------------

  setConn(conn, detail) {
    this.conn = conn;
    this.connDetail = detail;
    this.render();
  }

  render() {
    renderConn(this.conn);
    const ready = this.conn === "ready";
    const fs = this.floor.state;
    const state = ready ? fs : "disabled";
    const talkerName = this.talker ? this.talker.name : "";
    let sub;
    let status;
    switch (state) {
      case "disabled":
        sub = this.conn === "failed" ? "Not connected" : "Connecting…";
        status = this.connDetail || "Connecting…";
        break;
      case State.REQUESTING:
        sub = "Requesting…";
        status = "Asking for the floor…";
        break;
      case State.TALKING: {
        sub = this.latch ? "Tap to stop" : "Release to stop";
        status =
          this.talkDeadline === null
            ? "You are on air."
            : `You are on air · ${formatSeconds(this.talkDeadline - performance.now())} left`;
        break;
      }
      case State.QUEUED:
        sub = `Queued #${this.floor.position}`;
        status = `You are #${this.floor.position} in line${talkerName ? `, after ${talkerName}` : ""}. Keep holding to talk next.`;
        if (this.latch) status = `You are #${this.floor.position} in line. You talk next when it's your turn.`;
        break;
      case State.BUSY: {
        const who = (this.floor.busyHolder && this.floor.busyHolder.name) || talkerName;
        sub = "Busy";
        status = this.floor.reason === "rate_limited" ? "Too many presses. Wait a moment." : who ? `Busy: ${who} is talking.` : "Busy: someone else is talking.";
        break;
      }
      case State.REVOKED:
        sub = "Stopped";
        status = REVOKE_TEXT[this.floor.reason] || `Your turn was ended (${this.floor.reason}).`;
        break;
      default:
        sub = this.latch ? "Tap to talk" : "Hold to talk";
        status = this.talker ? `${talkerName} is talking.` : "Ready. The channel is clear.";
    }
    renderPtt(state, sub, this.latch);
    renderSelfStatus(status);

    const youId = this.you ? this.you.id : null;
    const talkerId = this.talker ? this.talker.id : null;
    const who = this.talker ? (talkerId === youId ? { self: true } : { name: talkerName }) : null;
    renderTalker(ready || this.you ? who : null, this.queueLength);
    renderMembers([...this.members.values()], youId, talkerId);
    this.meter.setSource(who || fs === State.TALKING ? () => this.levelNow() : null);

    // Countdown while talking: re-render once a second.
    if (fs === State.TALKING && !this.countdownTimer) {
      this.countdownTimer = setInterval(() => this.render(), 1000);
    } else if (fs !== State.TALKING && this.countdownTimer) {
      clearInterval(this.countdownTimer);
      this.countdownTimer = 0;
    }
  }

  /** Read-only view for automated tests (and curious people in the console). */
  testHook() {
    const app = this;
    return Object.freeze({
      get connection() {
        return app.conn;
      },
      get connectionDetail() {
        return app.connDetail;
      },
      get floor() {
        return app.floor.state;
      },
      get position() {
        return app.floor.position;
      },
      get talker() {
        return app.talker ? { id: app.talker.id, name: app.talker.name } : null;
      },
      get you() {
        return app.you ? { id: app.you.id, name: app.you.name } : null;
      },
      get members() {
        return [...app.members.values()].map((m) => ({ id: m.id, name: m.name }));
      },
      get room() {
        return app.room;
      },
      get remoteStream() {
        return app.link ? app.link.remoteStream : null;
      },
      get sending() {
        return app.link ? app.link.sending : false;
      },
      /** The level meter as drawn, 0..1. */
      get meter() {
        return app.meter.shown;
      },
      /** The talker's level from the RTP audio-level extension, 0..1 (-1: none received). */
      rtpLevel() {
        return app.link ? app.link.remoteLevel() : -1;
      },
      stats() {
        return app.link ? app.link.stats() : Promise.resolve(null);
      },
    });
  }
}

const params = new URLSearchParams(location.search);
const room = roomFromPath(location.pathname);
if (!room) {
  renderMode("failed");
  renderConn("failed");
  renderNotice("This is not a valid room address. Room names use a-z, 0-9 and hyphens.");
  els.roomName.textContent = "?";
} else {
  const app = new RoomApp(room, params);
  Object.defineProperty(window, "walkie", { value: app.testHook(), enumerable: true });
  app.start(params);
}
