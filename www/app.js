// Room page: /r/<room>[?name=<display name>][&raw=1]
//
// Wires the parts and decides nothing itself:
//   session.js  the connection life cycle (sans-IO); its actions are performed here
//   ptt.js      the floor machine (sans-IO): may I talk?
//   room.js     members, talker, queue, you
//   input.js    pointer / space bar / latch / focus rules -> floor operations
//   view.js     draws it all (with ui.js)
//   device.js   mic, speaker, wake lock, link sharing
//   signaling.js, media.js   the WebSocket and the RTCPeerConnection
// The mic is opened once per visit; every (re)join gets a fresh WebSocket and peer connection
// reusing that mic track, and a media reset a fresh peer connection on the same WebSocket.

import { Session } from "./session.js";
import { FloorMachine, State } from "./ptt.js";
import { RoomState } from "./room.js";
import { TalkInput, bindTalkInput } from "./input.js";
import { RoomView } from "./view.js";
import { Microphone, ScreenWakeLock, Speaker, canShare, copyLink, shareRoom } from "./device.js";
import { SignalingSocket, signalingUrl } from "./signaling.js";
import { MediaLink, MicError } from "./media.js";
import { playTone } from "./tones.js";
import { cleanName, normalizeRoom, rememberName } from "./names.js";
import { els, renderConn, renderMode, renderNotice } from "./ui.js";

/** Room from the path /r/<room>, or null if the path holds no valid room name. */
function roomFromPath(path) {
  const m = /^\/r\/([^/]+)\/?$/.exec(path);
  if (!m) return null;
  try {
    return normalizeRoom(decodeURIComponent(m[1]));
  } catch {
    return null;
  }
}

const errorText = (err) => (err && err.message) || String(err);

class RoomPage {
  constructor(room, params) {
    this.room = room;
    this.roomLink = `${location.origin}/r/${encodeURIComponent(room)}`;
    this.session = new Session(room);
    this.floor = new FloorMachine();
    this.roomState = new RoomState();
    this.input = new TalkInput();
    this.mic = new Microphone(params.get("raw") === "1", () => this.feed((s) => s.micEnded()));
    this.speaker = new Speaker(els.remoteAudio, els.soundHint);
    this.wakeLock = new ScreenWakeLock();
    this.view = new RoomView(() => this.levelNow(), () => this.render());
    // The one socket, peer connection and timer the session's numbers refer to.
    this.sock = null;
    this.sockId = 0;
    this.link = null;
    this.linkId = 0;
    this.timer = 0;
    this.timerId = 0;
    this.queue = [];
    this.draining = false;
  }

  start(params) {
    this.view.showRoom(this.room, this.roomLink);
    this.bindUi();
    this.render();
    const fromUrl = params.get("name");
    const name = fromUrl !== null ? cleanName(fromUrl) : null;
    const nameError = fromUrl !== null ? "That name cannot be used: 1 to 32 characters, please." : "";
    this.feed((s) => (name ? s.join(name, "") : s.showForm(nameError)));
  }

  /** One input into the session machine, then its actions, then a redraw. */
  feed(input) {
    this.perform(input(this.session));
    this.render();
  }

  /**
   * Perform actions in order, each to completion. Actions that performing one of them
   * causes (the floor machine switching the mic, say) queue behind the rest, so they always
   * find the peer connection the earlier actions made.
   */
  perform(actions) {
    this.queue.push(...actions);
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length) this.act(this.queue.shift());
    } finally {
      this.draining = false;
    }
  }

  act(a) {
    switch (a.type) {
      case "openMic":
        this.mic.open().then(
          () => this.feed((s) => s.micReady()),
          (err) => this.feed((s) => s.micFailed(err instanceof MicError ? err.message : `Microphone error: ${err}`)),
        );
        return;
      case "releaseMic":
        return this.mic.release();
      case "wakeLock":
        return void this.wakeLock.acquire();
      case "releaseWakeLock":
        return this.wakeLock.release();
      case "openSocket":
        return this.openSocket(a.socket);
      case "closeSocket":
        if (a.socket === this.sockId) {
          this.sock?.close();
          this.sock = null;
        }
        return;
      case "send":
        if (a.socket === this.sockId) this.sock?.send(a.message);
        return;
      case "openPeer":
        return this.openPeer(a);
      case "closePeer":
        if (a.peer === this.linkId) {
          this.link?.close();
          this.link = null;
          this.speaker.detach();
        }
        return;
      case "acceptAnswer":
        if (a.peer === this.linkId && this.link) {
          this.link.acceptAnswer(a.sdp).catch((err) => this.feed((s) => s.answerRefused(a.peer, errorText(err))));
        }
        return;
      case "sending":
        if (a.peer === this.linkId) this.link?.setSending(a.on);
        return;
      case "startTimer":
        clearTimeout(this.timer);
        this.timerId = a.timer;
        this.timer = setTimeout(() => this.feed((s) => s.timerFired(a.timer)), a.delay);
        return;
      case "cancelTimer":
        if (a.timer === this.timerId) clearTimeout(this.timer);
        return;
      case "room":
        return this.roomMessage(a.message);
      case "leaveRoom":
        this.roomState.clear();
        this.input.reset();
        return this.applyFloor(this.floor.reset());
      case "showForm":
        return this.view.showJoinForm(a.name, a.nameError, a.passwordError);
      case "warn":
        return console.warn("walkie:", a.text);
      case "goHome":
        return location.assign("/");
      default:
        throw new Error(`unknown session action ${a.type}`);
    }
  }

  openSocket(id) {
    const sock = new SignalingSocket(signalingUrl(), {
      onOpen: () => this.feed((s) => s.socketOpened(id)),
      onMessage: (msg) => this.feed((s) => s.socketMessage(id, msg)),
      onClose: (info) => this.feed((s) => s.socketClosed(id, info.opened)),
    });
    this.sock = sock;
    this.sockId = id;
    sock.open();
  }

  openPeer({ peer: id, iceServers, policy, sending }) {
    this.linkId = id;
    try {
      this.link = new MediaLink(
        this.mic.stream,
        iceServers,
        {
          onRemoteStream: (stream) => {
            if (id === this.linkId) this.speaker.attach(stream);
          },
          onState: (state) => {
            if (state === "connected") this.feed((s) => s.peerConnected(id));
            else if (state === "failed") this.feed((s) => s.peerFailed(id));
          },
          onNoPath: (detail) => this.feed((s) => s.peerNoPath(id, detail)),
        },
        policy,
      );
    } catch (err) {
      this.link = null;
      queueMicrotask(() => this.feed((s) => s.peerError(id, errorText(err))));
      return;
    }
    if (sending) this.link.setSending(true);
    this.link.createOffer().then(
      (sdp) => this.feed((s) => s.offerReady(id, sdp)),
      (err) => this.feed((s) => s.peerError(id, errorText(err))),
    );
  }

  /** Room news for the room state and the floor machine. */
  roomMessage(msg) {
    this.roomState.handle(msg, performance.now());
    this.applyFloor(msg.type === "joined" ? this.floor.setReady(msg.you.id) : this.floor.handle(msg));
  }

  /** Perform the floor machine's actions. Never awaits: a press must act at once. */
  applyFloor(actions) {
    for (const a of actions) {
      if (a.type === "mic") this.perform(this.session.setMic(a.on));
      else if (a.type === "send") this.perform(this.session.relay(a.message));
      else if (a.type === "tone") playTone(a.name);
    }
  }

  levelNow() {
    if (this.floor.state === State.TALKING) return this.mic.level();
    if (!this.roomState.talker) return 0;
    const level = this.link ? this.link.remoteLevel() : -1;
    return level >= 0 ? level : this.speaker.level();
  }

  bindUi() {
    bindTalkInput(els.ptt, els.latch, this.input, {
      op: (op) => {
        if (op) this.applyFloor(this.floor[op]());
        this.render();
      },
      canTalk: () => this.session.canTalk,
      gesture: () => this.speaker.unlock(),
      visible: () => {
        if (!this.session.stopped) this.wakeLock.acquire();
      },
    });
    els.joinForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const form = this.view.readJoinForm();
      if (!form) return;
      rememberName(form.name);
      this.speaker.unlock(); // this click is a user gesture: let audio play from now on
      this.feed((s) => s.join(form.name, form.password));
    });
    els.noticeRetry.addEventListener("click", () => this.feed((s) => s.retry()));
    els.soundHint.addEventListener("click", () => this.speaker.unlock());
    els.copyLink.addEventListener("click", () => copyLink(this.roomLink, els.roomLink).then(() => this.view.copied()));
    if (canShare()) {
      els.shareLink.hidden = false;
      els.shareLink.addEventListener("click", () => shareRoom(this.room, this.roomLink));
    }
    els.leave.addEventListener("click", () => this.feed((s) => s.leave()));
    window.addEventListener("pagehide", () => this.feed((s) => s.pageHide()));
  }

  render() {
    this.view.render({
      session: this.session,
      floor: this.floor,
      room: this.roomState,
      latch: this.input.latch,
      now: performance.now(),
    });
  }

  /** Read-only view for automated tests (and curious people in the console). */
  testHook() {
    const page = this;
    const person = (p) => (p ? { id: p.id, name: p.name } : null);
    return Object.freeze({
      get connection() {
        return page.session.connection;
      },
      get connectionDetail() {
        return page.session.detail;
      },
      /** The session machine's phase (session.js Phase). */
      get phase() {
        return page.session.phase;
      },
      /** Media resets handled (each closed the peer connection and re-offered). */
      get mediaResets() {
        return page.session.resets;
      },
      get offersSent() {
        return page.session.offersSent;
      },
      get floor() {
        return page.floor.state;
      },
      get position() {
        return page.floor.position;
      },
      get talker() {
        return person(page.roomState.talker);
      },
      get you() {
        return person(page.roomState.you);
      },
      get members() {
        return [...page.roomState.members.values()].map(person);
      },
      get room() {
        return page.room;
      },
      get remoteStream() {
        return page.link ? page.link.remoteStream : null;
      },
      get sending() {
        return page.link ? page.link.sending : false;
      },
      /** The level meter as drawn, 0..1. */
      get meter() {
        return page.view.meter.shown;
      },
      /** The talker's level from the RTP audio-level extension, 0..1 (-1: none received). */
      rtpLevel() {
        return page.link ? page.link.remoteLevel() : -1;
      },
      stats() {
        return page.link ? page.link.stats() : Promise.resolve(null);
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
  const page = new RoomPage(room, params);
  Object.defineProperty(window, "walkie", { value: page.testHook(), enumerable: true });
  page.start(params);
}
