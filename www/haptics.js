// Vibration on the floor's three moments that matter without looking: granted (you are on
// air), denied (busy) and ended (end of transmission, yours or revoked). They follow the
// floor machine's `tone` actions (ptt.js), so sound and touch always agree.
//
// `navigator.vibrate` exists on Android browsers; elsewhere (desktop, iOS Safari, Firefox
// since 129) it is missing or does nothing, and so does this. Chrome also ignores it until
// the user has interacted with the page, which joining or any press already is.

/** Vibration pattern (ms on, off, on, ...) by tone name: short and told apart by rhythm. */
export const VIBRATION = Object.freeze({
  permit: Object.freeze([60]), // one short buzz: talk
  busy: Object.freeze([90, 60, 90, 60, 90]), // three: no
  end: Object.freeze([30, 50, 30]), // two light taps: over
});

/** The pattern for a tone name, or null for a tone with no vibration. */
export function vibrationFor(name) {
  return Object.hasOwn(VIBRATION, name) ? [...VIBRATION[name]] : null;
}

/** Vibrate for a tone name where the device can; true if the browser took the pattern. */
export function vibrate(name, nav = navigator) {
  const pattern = vibrationFor(name);
  if (!pattern || typeof nav.vibrate !== "function") return false;
  try {
    return nav.vibrate(pattern) === true;
  } catch {
    return false;
  }
}
