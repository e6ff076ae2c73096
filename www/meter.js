// Live level meter for "who is talking and how loud".
//
// Levels come from the cheapest honest source: the RTP audio-level header extension the SFU
// carries through (receiver.getContributingSources / getSynchronizationSources), else an
// AnalyserNode on the stream. Drawn with a transform on one element per animation frame, so
// the meter costs no layout work.

import { audioContext } from "./tones.js";

/** Map a linear level 0..1 to a meter fraction 0..1 over a -60..0 dBov range. */
export function levelToFraction(level) {
  if (!(level > 0)) return 0;
  const db = 20 * Math.log10(Math.min(1, level));
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

/**
 * A function returning the RMS level (0..1) of `stream` through an AnalyserNode, or null if
 * WebAudio is unavailable. The node is disconnected by calling `.dispose()` on the result.
 */
export function analyserLevel(stream) {
  const ctx = audioContext();
  if (!ctx || !stream) return null;
  let source;
  try {
    source = ctx.createMediaStreamSource(stream);
  } catch {
    return null;
  }
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const read = () => {
    if (ctx.state !== "running") return -1;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    return Math.sqrt(sum / buf.length);
  };
  read.dispose = () => {
    try {
      source.disconnect();
    } catch {
      /* ignore */
    }
  };
  return read;
}

export class LevelMeter {
  /** @param {HTMLElement} bar the element scaled horizontally (transform-origin: left) */
  constructor(bar) {
    this.bar = bar;
    this.source = null;
    this.shown = 0;
    this._raf = 0;
    this._tick = this._tick.bind(this);
  }

  /** `fn()` returns a linear level 0..1, or a negative number when unknown; null stops. */
  setSource(fn) {
    this.source = fn;
    if (fn && !this._raf) this._raf = requestAnimationFrame(this._tick);
    if (!fn) this._draw(0);
  }

  _tick() {
    this._raf = 0;
    if (!this.source) return;
    const level = this.source();
    const target = levelToFraction(level);
    // Fast attack, slow decay: reads like a VU meter and hides packet jitter.
    this.shown = target > this.shown ? target : this.shown * 0.85 + target * 0.15;
    this._draw(this.shown);
    this._raf = requestAnimationFrame(this._tick);
  }

  _draw(fraction) {
    this.shown = fraction;
    this.bar.style.transform = `scaleX(${fraction.toFixed(3)})`;
  }
}
