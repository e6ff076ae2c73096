// The page's devices and browser services: the microphone, the speaker (remote audio and the
// autoplay rules), the screen wake lock, and sharing the room link.
//
// Each is a small wrapper that hides a browser API's quirks; none decides anything about the
// session (session.js does, app.js wires them).

import { openMic } from "./media.js";
import { analyserLevel } from "./meter.js";
import { resumeAudio } from "./tones.js";

/** The mic stream, opened once per visit and reused by every peer connection. */
export class Microphone {
  /** @param {() => void} onEnded the track ended on its own (another app, a phone call) */
  constructor(raw, onEnded) {
    this.raw = raw;
    this.onEnded = onEnded;
    this.stream = null;
    this._level = null;
  }

  /** Open it (throws media.js's MicError with a text for the user). */
  async open() {
    const stream = await openMic(this.raw);
    this.stream = stream;
    // A phone can stop the mic: say so instead of sending silence. Only the current stream
    // counts: a stream already released (or replaced) ends quietly.
    for (const track of stream.getAudioTracks()) {
      track.addEventListener("ended", () => {
        if (this.stream === stream) this.onEnded();
      });
    }
    return stream;
  }

  /** Stop the tracks and forget the stream. */
  release() {
    for (const t of this.stream?.getTracks() || []) t.stop();
    this.stream = null;
    this._level?.dispose();
    this._level = null;
  }

  /** Our own level 0..1 while talking (an AnalyserNode), or -1 if unknown. */
  level() {
    if (!this.stream) return -1;
    if (!this._level) this._level = analyserLevel(this.stream);
    return this._level ? this._level() : -1;
  }
}

/**
 * The room's channel on the `<audio>` element. Browsers refuse to play before a user gesture:
 * then `hint` (a "Tap to turn on sound" button) shows until the next gesture plays it.
 */
export class Speaker {
  constructor(audio, hint) {
    this.audio = audio;
    this.hint = hint;
    this._level = null;
  }

  attach(stream) {
    this.audio.srcObject = stream;
    this.play();
    this._level?.dispose();
    this._level = analyserLevel(stream);
  }

  detach() {
    this._level?.dispose();
    this._level = null;
    this.audio.srcObject = null;
  }

  play() {
    if (!this.audio.srcObject) return;
    const p = this.audio.play();
    if (p && p.catch) {
      p.then(() => {
        this.hint.hidden = true;
      }).catch(() => {
        this.hint.hidden = false; // autoplay refused (no gesture yet): the next tap plays it
      });
    }
  }

  /** Call from a user gesture: resume WebAudio (tones, meter) and a paused channel. */
  unlock() {
    resumeAudio();
    if (this.audio.srcObject && this.audio.paused) this.play();
  }

  /** The channel's level 0..1 from an AnalyserNode, or -1 if unknown. */
  level() {
    return this._level ? this._level() : -1;
  }
}

/** Keep the screen on while in the room (a phone in a pocket must not sleep mid-talk). */
export class ScreenWakeLock {
  constructor() {
    this.lock = null;
  }

  async acquire() {
    if (!navigator.wakeLock || document.visibilityState !== "visible") return;
    if (this.lock && !this.lock.released) return;
    try {
      this.lock = await navigator.wakeLock.request("screen");
    } catch {
      this.lock = null; // not allowed (battery saver, iframe): the page still works
    }
  }

  release() {
    this.lock?.release().catch(() => {});
    this.lock = null;
  }
}

/** Copy `url` to the clipboard (selecting `field` and copying it where the API is refused). */
export async function copyLink(url, field) {
  try {
    await navigator.clipboard.writeText(url);
  } catch {
    field.select();
    document.execCommand?.("copy");
  }
}

/** A system share sheet exists (phones). */
export function canShare() {
  return !!navigator.share;
}

export function shareRoom(room, url) {
  navigator.share({ title: `walkie #${room}`, text: `Talk with me on walkie #${room}`, url }).catch(() => {});
}
