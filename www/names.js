// Room and display-name rules shared by the landing and room pages, mirroring the server's
// checks (docs/PROTOCOL.md) so mistakes are shown before a round trip. The server stays the
// authority: it re-checks everything.

const ADJECTIVES = [
  "amber", "bold", "brave", "bright", "calm", "clever", "cosy", "crisp", "eager", "fast",
  "gentle", "golden", "happy", "jolly", "keen", "kind", "lucky", "mellow", "merry", "misty",
  "noble", "plucky", "proud", "quick", "quiet", "rapid", "rosy", "rusty", "shiny", "silver",
  "snowy", "sunny", "swift", "tidy", "witty", "blue", "green", "red", "teal", "violet",
];
const ANIMALS = [
  "badger", "bear", "beaver", "bison", "crane", "deer", "dolphin", "eagle", "falcon", "fox",
  "gecko", "heron", "ibex", "koala", "lark", "lemur", "lynx", "marten", "moose", "newt",
  "otter", "owl", "panda", "puffin", "quail", "raven", "robin", "seal", "sparrow", "stork",
  "swan", "tiger", "toucan", "walrus", "whale", "wolf", "wren", "yak", "zebra", "hare",
];

const ROOM_RE = /^[a-z0-9-]{1,64}$/;
// Control characters (C0, DEL, C1) are refused by the server; so are empty names.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

function randomInt(n) {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return buf[0] % n;
}

/** A readable random room name such as "blue-otter-42" (40 x 40 x 90 = 144,000 names). */
export function randomRoomName() {
  const a = ADJECTIVES[randomInt(ADJECTIVES.length)];
  const b = ANIMALS[randomInt(ANIMALS.length)];
  return `${a}-${b}-${10 + randomInt(90)}`;
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

/** Trimmed display name, or null if empty, longer than 32 characters or with control chars. */
export function cleanName(text) {
  const name = String(text ?? "").trim();
  const length = [...name].length; // code points, as the server counts them
  if (length < 1 || length > 32 || CONTROL_RE.test(name)) return null;
  return name;
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
