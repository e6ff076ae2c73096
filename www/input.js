// Talk input: which pointer, key, headset and page events press or release the Talk button.
//
// `TalkInput` holds the rules and no DOM (so tests can feed it plain values); it answers each
// event with the floor operation to perform: "press", "release", "toggle" or null.
// `bindTalkInput` connects it to the page's events. The rules:
// - a primary pointer (mouse button 0, a finger, a pen) on the button presses; its own up,
//   cancel or lost capture releases; a second finger meanwhile changes nothing;
// - the Talk key (Space unless the user chose another, settings.js) does the same, outside
//   text fields and only while talking is possible; key repeats change nothing;
// - a headset button (Media Session, headset.js, which binds it) is a tap, never a hold: it
//   toggles, in latch mode or not, and its "stop" only ever releases;
// - in latch mode each press toggles instead, and nothing happens on release;
// - Enter or a click on the button does nothing: talking needs a hold (or latch);
// - losing focus or hiding the page releases whatever a pointer or the key held (else we
//   would talk forever), but not a latched or tapped talk: with the screen locked, hidden
//   is exactly when a headset talks.

/** @typedef {"press"|"release"|"toggle"|null} FloorOp */

export class TalkInput {
  constructor() {
    this.latch = false;
    /** The pointer holding the button, or null. */
    this.activePointer = null;
    /** The Talk key is down. */
    this.keyDown = false;
  }

  /** @returns {FloorOp} */
  pointerDown(pointerId) {
    if (this.latch) return "toggle";
    if (this.activePointer !== null) return null; // a second finger changes nothing
    this.activePointer = pointerId;
    return "press";
  }

  /** Pointer up, cancel, or lost capture. @returns {FloorOp} */
  pointerUp(pointerId) {
    if (pointerId !== this.activePointer) return null;
    this.activePointer = null;
    return this.latch ? null : "release";
  }

  /**
   * Talk key down. `repeat`: an auto-repeat; the caller has already ignored keys typed into
   * fields and keys while talking is impossible. @returns {FloorOp}
   */
  keyDownEvent(repeat) {
    if (repeat || this.keyDown) return null;
    this.keyDown = true;
    return this.latch ? "toggle" : "press";
  }

  /** @returns {FloorOp} */
  keyUpEvent() {
    if (!this.keyDown) return null;
    this.keyDown = false;
    return this.latch ? null : "release";
  }

  /**
   * The window lost focus or the page was hidden: release what a pointer or the key held.
   * @returns {FloorOp}
   */
  lostFocus() {
    const holding = this.activePointer !== null || this.keyDown;
    this.reset();
    return holding && !this.latch ? "release" : null;
  }

  /**
   * Whether the page should show tap-style texts ("Tap to stop"): latch mode, or the floor is
   * `held` with no pointer nor key down, i.e. a headset tap latched it.
   */
  latched(held) {
    return this.latch || (held && this.activePointer === null && !this.keyDown);
  }

  /** The latch switch changed; turning it off ends a latched talk. @returns {FloorOp} */
  setLatch(on) {
    this.latch = on;
    return on ? null : "release";
  }

  /** The session ended (the floor was reset): forget what was held. */
  reset() {
    this.activePointer = null;
    this.keyDown = false;
  }
}

/** A key event typed into a text field (not meant for the Talk button). */
function typing(target, button) {
  if (!target || target === button) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
}

/**
 * Connect `input` to the page. `ptt` is the Talk button, `latch` the latch checkbox.
 * `handlers.op(floorOp)` performs an operation (or only re-renders, for null);
 * `handlers.canTalk()` says whether the Talk key may talk now; `handlers.isTalkKey(event)`
 * whether a key event is the Talk key's (settings.js `matchesKey`); `handlers.gesture()` runs
 * on every pointer or key gesture (to unlock audio); `handlers.visible()` runs when the page
 * becomes visible again.
 */
export function bindTalkInput(ptt, latch, input, handlers) {
  const op = (o) => handlers.op(o);
  ptt.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    const o = input.pointerDown(e.pointerId);
    if (o === "press") {
      try {
        ptt.setPointerCapture(e.pointerId);
      } catch {
        /* the pointer may already be gone */
      }
    }
    op(o);
  });
  const up = (e) => op(input.pointerUp(e.pointerId));
  ptt.addEventListener("pointerup", up);
  ptt.addEventListener("pointercancel", up);
  ptt.addEventListener("lostpointercapture", up);
  for (const type of ["contextmenu", "selectstart", "dragstart", "click"]) {
    // No menu, selection or drag on a long press; Enter / click do nothing (see the top).
    ptt.addEventListener(type, (e) => e.preventDefault());
  }

  window.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || !handlers.isTalkKey(e) || typing(e.target, ptt) || !handlers.canTalk()) return;
    e.preventDefault();
    op(input.keyDownEvent(e.repeat));
  });
  window.addEventListener("keyup", (e) => {
    if (!handlers.isTalkKey(e) || !input.keyDown) return;
    e.preventDefault();
    op(input.keyUpEvent());
  });
  window.addEventListener("blur", () => op(input.lostFocus()));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") op(input.lostFocus());
    else handlers.visible();
  });
  // Any gesture anywhere may unlock audio the browser refused to autoplay.
  window.addEventListener("pointerdown", () => handlers.gesture(), { capture: true });
  window.addEventListener("keydown", () => handlers.gesture(), { capture: true });

  latch.addEventListener("change", () => op(input.setLatch(latch.checked)));
}
