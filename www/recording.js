// Whether the room's audio is recorded (walkie serve --record), said before and after joining.
//
// Before: the join form's note, from /healthz's `recording` (what this server does; in a
// cluster the node that hosts the room says it again). After: `joined.recorded` (the room's
// own node: authoritative) shows the "Recording" badge in the top bar for as long as we are
// in the room. `describeRecording` is pure (tests call it); `serverRecords` asks the
// server; `renderRecording` draws.

const JOIN_NOTE = "This server records rooms: what is said here is kept as audio files on the server.";

/**
 * @param {?boolean} serverRecords /healthz's `recording` (null: unknown)
 * @param {?boolean} recorded joined.recorded (null: not in the room)
 * @returns {{badge: boolean, joinNote: string}}
 */
export function describeRecording(serverRecords, recorded) {
  return { badge: recorded === true, joinNote: serverRecords === true ? JOIN_NOTE : "" };
}

/** Whether the server records (true/false), or null when it cannot be told. */
export async function serverRecords(fetchFn = fetch) {
  try {
    const response = await fetchFn("/healthz", { cache: "no-store" });
    if (!response.ok) return null;
    const health = await response.json();
    return typeof health.recording === "boolean" ? health.recording : null;
  } catch {
    return null;
  }
}

/** The badge (`#recording`) and the join form's note (`#join-recording`). */
export function renderRecording({ badge, joinNote }) {
  const el = document.getElementById("recording");
  const note = document.getElementById("join-recording");
  if (el) el.hidden = !badge;
  document.body.dataset.recording = badge ? "yes" : "no";
  if (note) {
    note.hidden = !joinNote;
    if (note.textContent !== joinNote) note.textContent = joinNote;
  }
}
