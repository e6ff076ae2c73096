// The Talk key: which keyboard key holds Talk (Space unless the user picks another in the room
// page's settings), kept in localStorage.
//
// Keys are matched by `KeyboardEvent.code`, the physical key, so the choice survives a
// keyboard layout switch. Tab, Enter and Escape cannot be chosen: keyboard users move around
// the page and press buttons with them. The rules (`chooseKey`, `keyLabel`, `matchesKey`,
// the stored form) are plain functions that tests call directly; `bindKeyChooser` is the
// "Change key" button's DOM side.

/** @typedef {{code: string, label: string}} TalkKey */

/** @type {TalkKey} */
export const DEFAULT_KEY = Object.freeze({ code: "Space", label: "Space" });

export const KEY_STORE = "walkie.talkKey";

const RESERVED = new Set(["Tab", "Enter", "NumpadEnter", "Escape"]);
const CODE_RE = /^[A-Za-z0-9]{1,32}$/;
const MODIFIER_RE = /^(Control|Shift|Alt|Meta)(Left|Right)$/;

/** A short name for the key with this `code` (`key`: the event's `key`, for the label only). */
export function keyLabel(code, key = "") {
  if (code === "Space") return "Space";
  let m = /^Key([A-Z])$/.exec(code) || /^Digit([0-9])$/.exec(code);
  if (m) return m[1];
  m = MODIFIER_RE.exec(code);
  if (m) return `${m[2]} ${m[1] === "Control" ? "Ctrl" : m[1]}`;
  m = /^Numpad(.+)$/.exec(code);
  if (m) return `Numpad ${m[1]}`;
  if (/^F[0-9]{1,2}$/.test(code)) return code;
  if ([...key].length === 1 && key.trim()) return key.toUpperCase();
  return code;
}

/**
 * The user pressed a key to become the Talk key: `{key: TalkKey}` or `{error}` (a sentence
 * for the page) when it cannot be one.
 */
export function chooseKey(code, key = "") {
  if (typeof code !== "string" || !CODE_RE.test(code)) {
    return { error: "This key cannot be told apart from others. Pick another one." };
  }
  if (RESERVED.has(code)) {
    return { error: "Tab, Enter and Escape stay for moving around the page. Pick another key." };
  }
  return { key: { code, label: keyLabel(code, key) } };
}

/** The TalkKey stored as `text` (JSON), or DEFAULT_KEY when there is none or it is unusable. */
export function parseStoredKey(text) {
  let stored;
  try {
    stored = JSON.parse(text);
  } catch {
    return DEFAULT_KEY;
  }
  if (!stored || typeof stored !== "object") return DEFAULT_KEY;
  const chosen = chooseKey(stored.code);
  if (!chosen.key) return DEFAULT_KEY;
  const label = stored.label;
  // The label is shown as text only; still, keep it short and printable.
  const usable = typeof label === "string" && label.trim() && [...label].length <= 24;
  return usable ? { code: chosen.key.code, label } : chosen.key;
}

/** Is this key event the Talk key's? (Some phone keyboards send no `code` for the space bar.) */
export function matchesKey(event, talkKey) {
  if (event.code) return event.code === talkKey.code;
  return talkKey.code === "Space" && event.key === " ";
}

/** The remembered Talk key (DEFAULT_KEY when none, or when storage is blocked). */
export function loadTalkKey() {
  try {
    return parseStoredKey(localStorage.getItem(KEY_STORE));
  } catch {
    return DEFAULT_KEY;
  }
}

export function saveTalkKey(talkKey) {
  try {
    localStorage.setItem(KEY_STORE, JSON.stringify({ code: talkKey.code, label: talkKey.label }));
  } catch {
    /* private mode: the choice lasts for this visit */
  }
}

/**
 * The "Change key" button: a click waits for the next key (Escape, Tab or leaving the button
 * cancels), which becomes the Talk key if `chooseKey` accepts it. While it waits it takes the
 * key for itself, so picking Space or T neither talks nor types. `say(text)` shows the
 * button's status line; `chosen(talkKey)` stores and applies the choice.
 */
export function bindKeyChooser(button, say, chosen) {
  let waiting = false;
  let swallowUp = ""; // the chosen key's code until its keyup: that keyup must not click or talk
  const stop = (text) => {
    waiting = false;
    button.setAttribute("aria-pressed", "false");
    say(text);
  };
  button.addEventListener("click", () => {
    if (waiting) return stop("");
    waiting = true;
    button.setAttribute("aria-pressed", "true");
    say("Press the key you want to hold to talk (Escape cancels).");
  });
  button.addEventListener("blur", () => {
    if (waiting) stop("");
  });
  window.addEventListener(
    "keydown",
    (e) => {
      if (!waiting) {
        if (!e.repeat) swallowUp = ""; // its keyup never came (focus went elsewhere)
        return;
      }
      if (e.code === "Tab") return stop(""); // moving on: the focus leaves as usual
      e.preventDefault();
      e.stopImmediatePropagation();
      if (e.code === "Escape") return stop("");
      const result = chooseKey(e.code, e.key);
      if (result.error) return say(result.error);
      stop(`Hold ${result.key.label} to talk.`);
      swallowUp = e.code;
      chosen(result.key);
    },
    { capture: true },
  );
  // Keyups while waiting, and the chosen key's own, are the chooser's too (a Space keyup on
  // the focused button would click it again).
  window.addEventListener(
    "keyup",
    (e) => {
      if (!waiting && e.code !== swallowUp) return;
      if (e.code === swallowUp) swallowUp = "";
      e.preventDefault();
      e.stopImmediatePropagation();
    },
    { capture: true },
  );
}
