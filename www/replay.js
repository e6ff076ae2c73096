// Say-again on the page, sans-IO: what the room keeps, our own replay, and what to say.
//
// Fed with the server's messages (docs/PROTOCOL.md, "Say again"): joined.replay (how long the
// room keeps audio, and what it keeps now), replay_list, replay_started, replay_ended, and the
// errors about a replay request (replay_unavailable, rate_limited). The audio itself comes on
// our usual downlink; the server stops a replay as soon as anyone talks, and says so.
// No DOM, no I/O, no clock: times are passed in. Names only ever reach the DOM as text.

/** Why a replay ended, as the page says it ("" = nothing to say). */
const ENDED_TEXT = {
  done: "",
  stopped: "",
  live: "Replay stopped: someone is talking.",
  gone: "That message is no longer kept.",
};

/** A kept transmission as the page keeps it, or null if unusable. */
function entry(t) {
  if (!t || typeof t !== "object" || typeof t.id !== "string" || !t.talker) return null;
  return {
    id: t.id,
    talker: { id: String(t.talker.id), name: String(t.talker.name || "Someone") },
    startedAt: Number.isFinite(t.started_at) ? t.started_at : 0,
    durationMs: Number.isFinite(t.duration_ms) ? Math.max(0, t.duration_ms) : 0,
    truncated: t.truncated === true,
  };
}

export class SayAgain {
  constructor() {
    this.clear();
  }

  /** Session over: forget everything (a rejoin starts from its own `joined`). */
  clear() {
    /** Seconds the room keeps audio (joined.replay.seconds); null: it keeps none. */
    this.seconds = null;
    /** Kept transmissions, newest first. */
    this.items = [];
    /** The transmission replaying to us now, or null. */
    this.playing = null;
    /** The id we asked for and wait to hear about, or null. */
    this.pending = null;
    /** A sentence about the last request or replay ("" = none). */
    this.note = "";
  }

  /** The room keeps audio: the page must say so. */
  get keeps() {
    return this.seconds !== null;
  }

  /** Apply one server message; others are ignored. */
  handle(msg) {
    switch (msg && msg.type) {
      case "joined":
        this.clear();
        if (msg.replay && Number.isFinite(msg.replay.seconds)) {
          this.seconds = msg.replay.seconds;
          this._list(msg.replay.transmissions);
        }
        return;
      case "replay_list":
        if (this.keeps) this._list(msg.transmissions);
        return;
      case "replay_started": {
        const item = entry(msg);
        if (!item) return;
        this.playing = item;
        this.pending = null;
        this.note = "";
        return;
      }
      case "replay_ended":
        if ((this.playing && this.playing.id === msg.id) || this.pending === msg.id) {
          this.playing = null;
          this.pending = null;
          this.note = ENDED_TEXT[msg.reason] ?? `Replay ended (${String(msg.reason)}).`;
        }
        return;
      case "error":
        if (this.pending === null) return;
        if (msg.code === "replay_unavailable" || msg.code === "rate_limited") {
          this.pending = null;
          this.note = msg.code === "rate_limited" ? "Too many replays. Wait a moment." : `Cannot replay: ${String(msg.message)}.`;
        }
        return;
      default:
    }
  }

  /** The message asking to hear `id` again, or null when it is not kept. */
  request(id) {
    if (!this.items.some((t) => t.id === id)) return null;
    this.pending = id;
    this.note = "";
    return { type: "replay", id };
  }

  /** The message stopping our replay, or null when none plays or is asked for. */
  stop() {
    if (!this.playing && this.pending === null) return null;
    return { type: "replay_stop" };
  }

  _list(list) {
    const items = (Array.isArray(list) ? list : []).map(entry).filter(Boolean);
    this.items = items.reverse();
    if (this.playing && !this.items.some((t) => t.id === this.playing.id)) {
      this.playing = null; // no longer kept (its media worker restarted): nothing plays
    }
  }
}

/** "12:03" in the page's local time (deterministic: no locale). */
export function clockTime(ms, zoneOffsetMin = new Date(ms).getTimezoneOffset()) {
  const local = new Date(ms - zoneOffsetMin * 60000);
  return `${String(local.getUTCHours()).padStart(2, "0")}:${String(local.getUTCMinutes()).padStart(2, "0")}`;
}

/** "0:04" for a length in milliseconds (at least 0:01 for any sound at all). */
export function clockLength(ms) {
  const s = ms > 0 ? Math.max(1, Math.round(ms / 1000)) : 0;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** What the page says about keeping audio, plainly: "" when the room keeps none. */
export function describeKeeping(seconds) {
  if (!Number.isFinite(seconds)) return "";
  let span;
  if (seconds >= 120 && seconds % 60 === 0) span = `${seconds / 60} minutes`;
  else if (seconds === 60) span = "minute";
  else span = `${seconds} seconds`;
  const last = seconds === 60 ? "the last minute" : `the last ${span}`;
  return `This room keeps ${last} of audio for say-again. Only you hear what you replay.`;
}

/** One kept transmission's button: visible text and accessible name. */
export function describeItem(item, zoneOffsetMin) {
  const at = clockTime(item.startedAt, zoneOffsetMin);
  const length = clockLength(item.durationMs);
  const cut = item.truncated ? " (cut short)" : "";
  return {
    text: `${item.talker.name} · ${at} · ${length}${cut}`,
    label: `Play again: ${item.talker.name} at ${at}, ${length}${cut}`,
  };
}

/** The visible state of our own replay ("" = none). */
export function describePlaying(playing, zoneOffsetMin) {
  return playing ? `Replaying ${playing.talker.name}, ${clockTime(playing.startedAt, zoneOffsetMin)}` : "";
}
