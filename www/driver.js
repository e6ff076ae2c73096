// The I/O driver of the session machine: performs its actions and feeds back what happens.
//
// session.js (and negotiation.js) decide and never touch the browser; this owns what their
// numbers refer to (the one WebSocket, the one RTCPeerConnection, the one timer) plus the
// mic, speaker and wake lock, and turns their events into the machine's inputs. Actions
// about the room, the floor and the form (`room`, `leaveRoom`, `showForm`) go to the page.

import { SignalingSocket, signalingUrl } from "./signaling.js";
import { MediaLink, MicError } from "./media.js";

const errorText = (err) => (err && err.message) || String(err);

export class SessionDriver {
  /**
   * @param {import("./session.js").Session} session
   * @param {{mic: import("./device.js").Microphone, speaker: import("./device.js").Speaker,
   *          wakeLock: import("./device.js").ScreenWakeLock}} devices
   * @param {{act: (action: object) => void, changed: () => void}} page `act` performs the
   *   page's actions; `changed` runs after every input (to redraw)
   */
  constructor(session, devices, page) {
    this.session = session;
    this.devices = devices;
    this.page = page;
    this.sock = null;
    this.sockId = 0;
    /** The current MediaLink (media.js), or null. */
    this.link = null;
    this.linkId = 0;
    this.timer = 0;
    this.timerId = 0;
    this.queue = [];
    this.draining = false;
  }

  /** One input into the machine, e.g. `feed((s) => s.retry())`; then its actions, a redraw. */
  feed(input) {
    this.perform(input(this.session));
    this.page.changed();
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
    const { mic, speaker, wakeLock } = this.devices;
    switch (a.type) {
      case "openMic":
        mic.open().then(
          () => this.feed((s) => s.micReady()),
          (err) => this.feed((s) => s.micFailed(err instanceof MicError ? err.message : `Microphone error: ${err}`)),
        );
        return;
      case "releaseMic":
        return mic.release();
      case "wakeLock":
        return void wakeLock.acquire();
      case "releaseWakeLock":
        return wakeLock.release();
      case "openSocket":
        return this.openSocket(a.socket);
      case "closeSocket":
        if (a.socket === this.sockId) {
          this.sock?.close(a.code ?? 1000); // 4000: reconnecting, the server holds our member
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
          speaker.detach();
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
      case "warn":
        return console.warn("walkie:", a.text);
      case "goHome":
        return location.assign("/");
      default:
        return this.page.act(a);
    }
  }

  /**
   * Network changes: `online`, and a new `navigator.connection.type` (Wi-Fi to cellular;
   * where the browser has the Network Information API). Its other fields (effectiveType,
   * rtt, downlink) change with every estimate and are not a new network.
   */
  watchNetwork(target = window, connection = navigator.connection) {
    const changed = () => this.feed((s) => s.networkChanged());
    target.addEventListener("online", changed);
    if (connection && typeof connection.addEventListener === "function") {
      let type = connection.type;
      connection.addEventListener("change", () => {
        if (connection.type === type) return;
        type = connection.type;
        changed();
      });
    }
  }

  /** Test hook: the socket dies as on a network change (the server holds our member). */
  dropSocket() {
    this.sock?.ws?.close(4000, "dropped (test)");
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

  /** A new peer connection with the mic track (none when listen-only); its offer, state and
   * stream come back as inputs. */
  openPeer({ peer: id, iceServers, policy, sending, listenOnly }) {
    this.linkId = id;
    try {
      this.link = new MediaLink(
        listenOnly ? null : this.devices.mic.stream,
        iceServers,
        {
          onRemoteStream: (stream) => {
            if (id === this.linkId) this.devices.speaker.attach(stream);
          },
          onState: (state) => {
            if (state === "connected") this.feed((s) => s.peerConnected(id));
            else if (state === "failed") this.feed((s) => s.peerFailed(id));
            else if (state === "disconnected") this.feed((s) => s.peerDisconnected(id));
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
}
