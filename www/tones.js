// Local walkie-talkie tones (talk permit, busy, end of transmission, attention) and the page's one
// shared AudioContext.
//
// Why local: the tones tell the *user* what the floor did; sending them to the room would
// waste the talker's first syllables and annoy everyone else. Why one AudioContext: browsers
// cap their number, and a context created before any user gesture starts "suspended", so
// the page resumes this one on the first gesture (see Speaker.unlock in device.js).

let ctx = null;

/** The shared AudioContext, created on first use; null if WebAudio is unavailable. */
export function audioContext() {
  if (ctx) return ctx;
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return null;
  try {
    ctx = new Ctor({ latencyHint: "interactive" });
  } catch {
    ctx = null;
  }
  return ctx;
}

/** Resume the context if a browser autoplay policy suspended it (call from a user gesture). */
export function resumeAudio() {
  const c = audioContext();
  if (c && c.state === "suspended") c.resume().catch(() => {});
}

// Each tone is a list of [frequency start Hz, frequency end Hz, duration s, gap after s].
const TONES = {
  // Talk permit: a short rising chirp, so the talker knows the channel is theirs.
  permit: [[880, 1320, 0.09, 0.0]],
  // Busy: two low beeps (somebody else has the floor).
  busy: [
    [420, 420, 0.13, 0.07],
    [420, 420, 0.13, 0.0],
  ],
  // End of transmission: a short falling chirp ("over").
  end: [[1100, 700, 0.1, 0.0]],
  // Someone started talking while the tab is hidden (attention.js): two high notes.
  attention: [
    [988, 988, 0.07, 0.05],
    [1319, 1319, 0.09, 0.0],
  ],
};

const LEVEL = 0.12; // quiet: the tone must not drown the room nor leak much into the mic

/** Play a named tone ("permit", "busy", "end", "attention"); silently does nothing without WebAudio. */
export function playTone(name) {
  const parts = TONES[name];
  const c = audioContext();
  if (!parts || !c) return;
  if (c.state === "suspended") c.resume().catch(() => {});
  let t = c.currentTime + 0.01;
  for (const [f0, f1, dur, gap] of parts) {
    const osc = c.createOscillator();
    const gain = c.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(f0, t);
    if (f1 !== f0) osc.frequency.exponentialRampToValueAtTime(f1, t + dur);
    // Short attack / release ramps avoid clicks.
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(LEVEL, t + 0.008);
    gain.gain.setValueAtTime(LEVEL, t + dur - 0.015);
    gain.gain.linearRampToValueAtTime(0, t + dur);
    osc.connect(gain).connect(c.destination);
    osc.start(t);
    osc.stop(t + dur + 0.01);
    t += dur + gap;
  }
}
