// Room page: /r/<room>[?name=<display name>][&raw=1][#token=<signed join link: walkie token>]
//
// Wires the parts and decides nothing itself:
//   session.js, negotiation.js   the connection life cycle (sans-IO)
//   driver.js   performs the session's actions: WebSocket, RTCPeerConnection, timer, devices
//   ptt.js      the floor machine (sans-IO): may I talk?
//   room.js     members, talker, queue, you
//   input.js    pointer / space bar / latch / focus rules -> floor operations
//   view.js     draws it all (with ui.js)
//   device.js   mic, speaker, wake lock, link sharing
//   settings.js the Talk key (chosen by the user, kept in localStorage)
//   notify.js   headset and lock screen (Media Session), hidden-tab title and tone, live region
//   haptics.js  vibration with the floor's tones; install.js the service worker (sw.js)
//   replay.js   say-again (sans-IO): what the room keeps, our replay; replayview.js draws it
//   recording.js whether the room is recorded: the join form's note, the "Recording" badge
// The mic is opened once per visit; every (re)join gets a fresh WebSocket and peer connection
// reusing that mic track, and a media reset a fresh peer connection on the same WebSocket.

import { Session } from "./session.js";
import { SessionDriver } from "./driver.js";
import { FloorMachine, State } from "./ptt.js";
import { RoomState } from "./room.js";
import { TalkInput, bindTalkInput } from "./input.js";
import { RoomView, roomTitle } from "./view.js";
import { Microphone, ScreenWakeLock, Speaker, canShare, copyLink, shareRoom } from "./device.js";
import { playTone } from "./tones.js";
import { vibrate } from "./haptics.js";
import { Notifier } from "./notify.js";
import { bindKeyChooser, loadTalkKey, matchesKey, saveTalkKey } from "./settings.js";
import { registerServiceWorker } from "./install.js";
import { SayAgain } from "./replay.js";
import { bindReplay, renderReplay } from "./replayview.js";
import { describeRecording, renderRecording, serverRecords } from "./recording.js";
import { checkName, normalizeRoom, rememberName } from "./names.js";
import { tokenFromFragment } from "./joinlink.js";
import { els, renderConn, renderMode, renderNotice, renderTalkKey, renderTalkKeyStatus } from "./ui.js";

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

class RoomPage {
  constructor(room, params) {
    this.room = room;
    this.roomLink = `${location.origin}/r/${encodeURIComponent(room)}`;
    this.session = new Session(room);
    this.floor = new FloorMachine();
    this.roomState = new RoomState();
    this.sayAgain = new SayAgain();
    this.input = new TalkInput();
    this.mic = new Microphone(params.get("raw") === "1", () => this.feed((s) => s.micEnded()));
    this.speaker = new Speaker(els.remoteAudio, els.soundHint);
    this.wakeLock = new ScreenWakeLock();
    this.view = new RoomView(() => this.levelNow(), () => this.render());
    this.notifier = new Notifier(room, els.announcer, roomTitle(room));
    this.talkKey = loadTalkKey();
    this.serverRecords = null; // /healthz's `recording`, for the join form (recording.js)
    this.driver = new SessionDriver(
      this.session,
      { mic: this.mic, speaker: this.speaker, wakeLock: this.wakeLock },
      { act: (a) => this.act(a), changed: () => this.render() },
    );
  }

  start(params) {
    this.view.showRoom(this.room, this.roomLink);
    this.bindUi();
    this.driver.watchNetwork(); // a new network: resume on a new socket and peer connection
    this.render();
    serverRecords().then((on) => {
      this.serverRecords = on;
      this.render();
    });
    const link = tokenFromFragment(location.hash);
    if (link) {
      // A signed link (walkie token): it admits us and names us; no form, no password. A
      // listen-only link never opens the mic: its peer connection only receives.
      this.feed((s) => s.join(link.name, "", link.token, link.listenOnly));
      return;
    }
    const fromUrl = params.get("name");
    const checked = fromUrl !== null ? checkName(fromUrl) : null;
    const name = checked ? checked.name : "";
    const nameError = checked && checked.error ? `That name cannot be used: ${checked.error}.` : "";
    this.feed((s) => (name ? s.join(name, "") : s.showForm(nameError)));
  }

  /** One input into the session machine (performed by the driver, then a redraw). */
  feed(input) {
    this.driver.feed(input);
  }

  /** The session's actions about the room, the floor and the form. */
  act(a) {
    switch (a.type) {
      case "room":
        return this.roomMessage(a.message);
      case "leaveRoom":
        this.roomState.clear();
        this.sayAgain.clear();
        this.input.reset();
        return this.applyFloor(this.floor.reset());
      case "showForm":
        return this.view.showJoinForm(a.name, a.nameError, a.passwordError);
      default:
        throw new Error(`unknown session action ${a.type}`);
    }
  }

  /** Room news for the room state and the floor machine. */
  roomMessage(msg) {
    this.roomState.handle(msg, performance.now());
    this.sayAgain.handle(msg);
    if (msg.type === "joined" && msg.resumed === true) return this.applyFloor(this.floor.resumed(msg.floor));
    this.applyFloor(msg.type === "joined" ? this.floor.setReady(msg.you.id) : this.floor.handle(msg));
  }

  /** Perform the floor machine's actions. Never awaits: a press must act at once. */
  applyFloor(actions) {
    for (const a of actions) {
      if (a.type === "mic") this.driver.perform(this.session.setMic(a.on));
      else if (a.type === "send") this.driver.perform(this.session.relay(a.message));
      else if (a.type === "tone") {
        playTone(a.name);
        vibrate(a.name); // granted, denied, ended: felt with the phone in a pocket
      }
    }
  }

  levelNow() {
    if (this.floor.state === State.TALKING) return this.mic.level();
    if (!this.roomState.talker) return 0;
    const link = this.driver.link;
    const level = link ? link.remoteLevel() : -1;
    return level >= 0 ? level : this.speaker.level();
  }

  /** A floor operation ("press", "release", "toggle") from any input, or null: redraw only. */
  floorOp(op) {
    if (op) this.applyFloor(this.floor[op]());
    this.render();
  }

  bindUi() {
    bindTalkInput(els.ptt, els.latch, this.input, {
      op: (op) => this.floorOp(op),
      canTalk: () => this.session.canTalk && !this.roomState.listenOnly,
      isTalkKey: (e) => matchesKey(e, this.talkKey),
      gesture: () => this.speaker.unlock(),
      visible: () => {
        if (!this.session.stopped) this.wakeLock.acquire();
        this.render(); // the hidden tab's title goes back
      },
    });
    // A headset tap talks only when the Talk button would; its stop always may.
    this.notifier.bindHeadset((op) => this.floorOp(op === "release" || (this.session.canTalk && !this.roomState.listenOnly) ? op : null));
    bindKeyChooser(els.talkKeyChange, renderTalkKeyStatus, (key) => {
      this.talkKey = key;
      saveTalkKey(key);
      this.render();
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
    bindReplay(
      (id) => this.replay(this.sayAgain.request(id)),
      () => this.replay(this.sayAgain.stop()),
    );
    window.addEventListener("pagehide", () => this.feed((s) => s.pageHide()));
  }

  /** Send a say-again request (or nothing), then redraw. */
  replay(message) {
    if (message) {
      this.speaker.unlock(); // a click: let audio play
      this.driver.perform(this.session.relay(message));
    }
    this.render();
  }

  render() {
    renderReplay(this.sayAgain, this.session.canTalk && !this.roomState.talker && this.floor.state !== State.TALKING);
    this.view.render({
      session: this.session,
      floor: this.floor,
      room: this.roomState,
      latch: this.input.latched(this.floor.held),
      now: performance.now(),
    });
    renderTalkKey(this.talkKey.label);
    renderRecording(describeRecording(this.serverRecords, this.roomState.recorded));
    this.notifier.update({
      joined: this.session.joined,
      hidden: document.visibilityState === "hidden",
      you: this.roomState.you,
      talker: this.roomState.talker,
      members: [...this.roomState.members.values()],
      floor: this.floor,
    });
  }

  /** Read-only view for automated tests (and curious people in the console): www/README.md. */
  testHook() {
    const person = (p) => (p ? { id: p.id, name: p.name } : null);
    const link = () => this.driver.link;
    const fields = {
      connection: () => this.session.connection,
      connectionDetail: () => this.session.detail,
      phase: () => this.session.phase, // session.js Phase
      mediaResets: () => this.session.resets, // each closed the peer connection and re-offered
      resumes: () => this.session.resumes, // sockets replaced keeping our member (a resume)
      offersSent: () => this.session.offersSent,
      floor: () => this.floor.state,
      position: () => this.floor.position,
      talker: () => person(this.roomState.talker),
      you: () => person(this.roomState.you),
      members: () => [...this.roomState.members.values()].map(person),
      room: () => this.room,
      remoteStream: () => (link() ? link().remoteStream : null),
      sending: () => (link() ? link().sending : false),
      meter: () => this.view.meter.shown, // the level meter as drawn, 0..1
      talkKey: () => this.talkKey.code, // KeyboardEvent.code of the Talk key
      headsetActions: () => [...this.notifier.mediaSession.actions], // Media Session actions bound
      replay: () => ({ // say-again: what the room keeps and what replays to us
        seconds: this.sayAgain.seconds,
        items: this.sayAgain.items.map((t) => ({ id: t.id, talker: t.talker.name, durationMs: t.durationMs })),
        playing: this.sayAgain.playing ? this.sayAgain.playing.id : null,
        note: this.sayAgain.note,
      }),
      recorded: () => this.roomState.recorded, // joined.recorded: the "Recording" badge
    };
    const hook = {
      /** The talker's level from the RTP audio-level extension, 0..1 (-1: none received). */
      rtpLevel: () => (link() ? link().remoteLevel() : -1),
      stats: () => (link() ? link().stats() : Promise.resolve(null)),
      /** Kill the WebSocket as a network change would (close code 4000: resumable). */
      dropSocket: () => this.driver.dropSocket(),
    };
    for (const [name, get] of Object.entries(fields)) Object.defineProperty(hook, name, { get, enumerable: true });
    return Object.freeze(hook);
  }
}

registerServiceWorker();
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
