// Room and display-name rules shared by the landing and room pages, mirroring the server's
// checks (docs/PROTOCOL.md) so mistakes are shown before a round trip. The server stays the
// authority: it re-checks everything. `checkName` is signaling/names.py `check_name` rule for
// rule and message for message; tests/name_cases.py runs both through the same cases.

import { ROOM_WORDS } from "./words.js";

/** Words in a generated room name: 6 x 11 bits = 66 bits, at most 6 x 8 + 5 = 53 characters. */
export const ROOM_NAME_WORDS = 6;
const WORD_SET = new Set(ROOM_WORDS);
const ROOM_RE = /^[a-z0-9-]{1,64}$/;

/**
 * A uniform integer in [0, n) from the browser's CSPRNG, never Math.random: a generated room
 * name is the only thing that keeps a room without a password private. Values at or above the
 * largest multiple of n are drawn again, so no word is likelier than another.
 */
function randomBelow(n) {
  const limit = Math.floor(2 ** 32 / n) * n;
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

/**
 * A new room's name: six words, e.g. "legal-winner-thank-year-wave-sausage". 2,048^6 = 2^66
 * names, so nobody finds the room by trying names (docs/SECURITY.md, "Rooms and names"),
 * and still easy to read out, over a radio too.
 */
export function randomRoomName() {
  const words = [];
  for (let i = 0; i < ROOM_NAME_WORDS; i += 1) words.push(ROOM_WORDS[randomBelow(ROOM_WORDS.length)]);
  return words.join("-");
}

/** True for a name randomRoomName can make; anything else was typed (and may be guessed). */
export function isGeneratedRoomName(room) {
  const words = String(room).split("-");
  return words.length === ROOM_NAME_WORDS && words.every((w) => WORD_SET.has(w));
}

/**
 * Normalise what a person typed as a room name: lower case, spaces and underscores to
 * hyphens. Returns the room or null if it still is not 1-64 of [a-z0-9-].
 */
export function normalizeRoom(text) {
  const room = String(text ?? "")
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, "-");
  return ROOM_RE.test(room) ? room : null;
}

export const MAX_NAME_CHARS = 32;
export const MAX_MARKS_PER_CHARACTER = 6;
// The reasons for each rule are in signaling/names.py.
const CONTROL_RE = /^[\p{Cc}\p{Cs}\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]$/u;
const FORMAT_RE = /^\p{Cf}$/u;
const MARK_RE = /^\p{M}$/u;
const IN_WORD_RE = /^[\p{L}\p{M}\p{S}]$/u;
const JOINERS = new Set(["\u200c", "\u200d"]);
const INVISIBLE_LETTERS = new Set(["\u115f", "\u1160", "\u3164", "\uffa0"]);

function code(ch) {
  return `U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * The display name the server will accept for `text` (NFC, trimmed), or why not:
 * {name, error} with exactly one of them non-empty; `error` is the server's own text.
 */
export function checkName(text) {
  const raw = String(text ?? "");
  const refuse = (error) => ({ name: "", error });
  if ([...raw].length > 4 * MAX_NAME_CHARS) return refuse(`name is longer than ${MAX_NAME_CHARS} characters`);
  for (const ch of raw) {
    if (CONTROL_RE.test(ch)) return refuse(`name contains a control character (${code(ch)})`);
  }
  const name = raw.normalize("NFC").trim();
  const chars = [...name];
  if (!chars.length) return refuse("name is empty");
  if (chars.length > MAX_NAME_CHARS) return refuse(`name is longer than ${MAX_NAME_CHARS} characters`);
  let marks = 0;
  for (let i = 0; i < chars.length; i += 1) {
    const ch = chars[i];
    if (INVISIBLE_LETTERS.has(ch)) return refuse(`name contains an invisible character (${code(ch)})`);
    if (FORMAT_RE.test(ch)) {
      const inWord = JOINERS.has(ch) && i > 0 && i < chars.length - 1 && IN_WORD_RE.test(chars[i - 1]) && IN_WORD_RE.test(chars[i + 1]);
      if (inWord) continue; // transparent: does not end a run of marks
      return refuse(`name contains an invisible formatting character (${code(ch)})`);
    }
    if (!MARK_RE.test(ch)) {
      marks = 0;
      continue;
    }
    if (i === 0) return refuse("name starts with a combining mark");
    marks += 1;
    if (marks > MAX_MARKS_PER_CHARACTER) {
      return refuse(`name has more than ${MAX_MARKS_PER_CHARACTER} combining marks on one character`);
    }
  }
  return { name, error: "" };
}

/** The display name the server will accept for `text`, or null. */
export function cleanName(text) {
  return checkName(text).name || null;
}

const NAME_KEY = "walkie.name";

/** The remembered display name ("" if none or storage is blocked). */
export function rememberedName() {
  try {
    return localStorage.getItem(NAME_KEY) || "";
  } catch {
    return "";
  }
}

export function rememberName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    /* private mode: fine, the user types it again next time */
  }
}
