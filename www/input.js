// Talk input: which pointer, key and page events press or release the Talk button.
//
// `TalkInput` holds the rules and no DOM (so tests can feed it plain values); it answers each
// event with the floor operation to perform: "press", "release", "toggle" or null.
// `bindTalkInput` connects it to the page's events. The rules:
// - a primary pointer (mouse button 0, a finger, a pen) on the button presses; its own up,
//   cancel or lost capture releases; a second finger meanwhile changes nothing;
// - the space bar does the same, outside text fields and only while talking is possible;
//   key repeats change nothing;
// - in latch mode each press toggles instead, and nothing happens on release;
// - Enter or a click on the button does nothing: talking needs a hold (or latch);
// - losing focus or hiding the page releases whatever was held (else we would talk forever).

/** @typedef {"press"|"release"|"toggle"|null} FloorOp */

export class TalkInput {
  constructor() {
    this.latch = false;
    /** The pointer holding the button, or null. */
    this.activePointer = null;
    this.spaceDown = false;
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
   * Space bar down. `repeat`: an auto-repeat; the caller has already ignored keys typed into
   * fields and keys while talking is impossible. @returns {FloorOp}
   */
  spaceDownEvent(repeat) {
    if (repeat || this.spaceDown) return null;
    this.spaceDown = true;
    return this.latch ? "toggle" : "press";
  }

  /** @returns {FloorOp} */
  spaceUpEvent() {
    if (!this.spaceDown) return null;
    this.spaceDown = false;
    return this.latch ? null : "release";
  }

  /** The window lost focus or the page was hidden. @returns {FloorOp} */
  lostFocus() {
    this.reset();
    return this.latch ? null : "release";
  }

  /** The latch switch changed; turning it off ends a latched talk. @returns {FloorOp} */
  setLatch(on) {
    this.latch = on;
    return on ? null : "release";
  }

  /** The session ended (the floor was reset): forget what was held. */
  reset() {
    this.activePointer = null;
    this.spaceDown = false;
  }
}

/** A key event typed into a text field (not meant for the Talk button). */
function typing(target, button) {
  if (!target || target === button) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
}

function isSpace(e) {
  return e.code === "Space" || e.key === " ";
}

/**
 * Connect `input` to the page. `ptt` is the Talk button, `latch` the latch checkbox.
 * `handlers.op(floorOp)` performs an operation (or only re-renders, for null);
 * `handlers.canTalk()` says whether the space bar may talk now; `handlers.gesture()` runs on
 * every pointer or key gesture (to unlock audio); `handlers.visible()` runs when the page
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
    if (!isSpace(e) || typing(e.target, ptt) || !handlers.canTalk()) return;
    e.preventDefault();
    op(input.spaceDownEvent(e.repeat));
  });
  window.addEventListener("keyup", (e) => {
    if (!isSpace(e) || !input.spaceDown) return;
    e.preventDefault();
    op(input.spaceUpEvent());
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
