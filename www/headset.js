// Headset buttons and the lock screen, through the Media Session API.
//
// A walkie is used with the phone in a pocket: a headset's play/pause button (or a car's, or
// the lock screen's) should talk. Browsers deliver those as Media Session actions to the page
// that plays audio, here the room's channel on its `<audio>` element. Each is a *tap*
// (input.js `headsetTap`): the first starts a talk, the next ends it, like latch mode; "stop"
// only ends. The metadata (what the lock screen and the notification show) says who talks in
// which room.
//
// `describeMediaSession` is the pure part (tests call it); `MediaSessionControls` registers
// the handlers and draws the metadata on change. Where `navigator.mediaSession` is missing
// (old browsers, insecure origins on some) everything here does nothing; an action a browser
// does not know (Firefox has no "togglemicrophone") is skipped.

/** Media Session actions that tap Talk (toggle) and that only end a talk. */
export const TAP_ACTIONS = Object.freeze(["play", "pause", "togglemicrophone"]);
export const STOP_ACTIONS = Object.freeze(["stop"]);

const ON_AIR = new Set(["requesting", "talking"]);

/**
 * What the lock screen shows: `{title, artist, album, playbackState, micActive}`.
 * `joined`: in the room; `talker`: the floor holder {id, name} or null; `youId`: our id;
 * `floor`: our floor state (ptt.js State).
 */
export function describeMediaSession({ room, joined, talker, youId, floor }) {
  let title = "Not connected";
  if (joined) {
    if (!talker) title = "Channel clear";
    else if (talker.id === youId) title = "You are talking";
    else title = `${talker.name} is talking`;
  }
  return {
    title,
    artist: `#${room}`,
    album: "walkie",
    // Our channel plays all the time we are in (silence between talks): "playing" makes the
    // headset's button send "pause", which taps Talk like "play" does.
    playbackState: joined ? "playing" : "none",
    micActive: joined && ON_AIR.has(floor),
  };
}

export class MediaSessionControls {
  /**
   * @param {MediaSession|undefined} session `navigator.mediaSession`
   * @param {typeof MediaMetadata|undefined} Metadata `window.MediaMetadata`
   */
  constructor(session = navigator.mediaSession, Metadata = window.MediaMetadata) {
    this.session = session || null;
    this.Metadata = Metadata || null;
    /** The actions this browser accepted a handler for. */
    this.actions = [];
    this._shown = "";
  }

  /** Register the handlers: `op("toggle")` for a tap, `op("release")` for stop. */
  bind(op) {
    if (!this.session) return [];
    const register = (action, floorOp) => {
      try {
        this.session.setActionHandler(action, () => op(floorOp));
        this.actions.push(action);
      } catch {
        /* an action this browser does not know */
      }
    };
    for (const action of TAP_ACTIONS) register(action, "toggle");
    for (const action of STOP_ACTIONS) register(action, "release");
    return this.actions;
  }

  /** Show `describeMediaSession`'s result; only changes reach the browser. */
  render(desc) {
    if (!this.session) return;
    const key = JSON.stringify(desc);
    if (key === this._shown) return;
    this._shown = key;
    if (this.Metadata) {
      const artwork = [{ src: "/static/icon.svg", sizes: "any", type: "image/svg+xml" }];
      this.session.metadata = new this.Metadata({ title: desc.title, artist: desc.artist, album: desc.album, artwork });
    }
    this.session.playbackState = desc.playbackState;
    try {
      this.session.setMicrophoneActive?.(desc.micActive); // Chrome: the mic's state on the lock screen
    } catch {
      /* not in this browser's Media Session, or not allowed now */
    }
  }
}
