// What the page knows about the room: who is in it, who talks, how many wait, and who we are.
//
// Plain data fed with the server's room messages (docs/PROTOCOL.md: joined, member_joined,
// member_left, floor, floor_granted; joined.password_protected, joined.permissions,
// joined.recorded); no DOM, no I/O. Time is passed in for the talk deadline.
// Malformed entries are skipped rather than trusted: names only ever reach the DOM as text.

/** A member as the page keeps it: {id, name} with a string id, or null if unusable. */
function member(m) {
  return m && typeof m === "object" && typeof m.id === "string" ? { id: m.id, name: String(m.name) } : null;
}

export class RoomState {
  constructor() {
    /** Ourselves, {id, name}, once joined; null otherwise. */
    this.you = null;
    /** Members by id, in join order (Map keeps insertion order). */
    this.members = new Map();
    /** The floor holder {id, name}, or null when the channel is clear. */
    this.talker = null;
    this.queueLength = 0;
    /** When our talk time runs out (the caller's clock, ms); null = no limit or not talking. */
    this.talkDeadline = null;
    /** The room has a password (joined.password_protected); null until joined. */
    this.passwordProtected = null;
    /** Our signed link lets us listen but never talk (joined.permissions.listen_only). */
    this.listenOnly = false;
    /** The server keeps this room's audio (joined.recorded); null until joined. */
    this.recorded = null;
  }

  /** Session over: forget everything (a rejoin starts from its own `joined`). */
  clear() {
    this.you = null;
    this.members.clear();
    this.talker = null;
    this.queueLength = 0;
    this.talkDeadline = null;
    this.passwordProtected = null;
    this.listenOnly = false;
    this.recorded = null;
  }

  /** Apply one server message; others are ignored. `now` is the caller's clock in ms. */
  handle(msg, now) {
    switch (msg && msg.type) {
      case "joined": {
        this.clear();
        this.you = member(msg.you);
        for (const m of Array.isArray(msg.members) ? msg.members : []) this._add(m);
        this._floor(msg.floor || {});
        this.passwordProtected = msg.password_protected === true;
        this.listenOnly = !!(msg.permissions && msg.permissions.listen_only === true);
        this.recorded = msg.recorded === true;
        return;
      }
      case "member_joined":
        this._add(msg.member);
        return;
      case "member_left":
        this.members.delete(msg.id);
        return;
      case "floor":
        this._floor(msg);
        return;
      case "floor_granted":
        // The grant carries the time left (a repeated request gets what remains); null = no limit.
        this.talkDeadline = Number.isFinite(msg.max_ms) ? now + msg.max_ms : null;
        return;
      default:
    }
  }

  _add(m) {
    const entry = member(m);
    if (entry) this.members.set(entry.id, entry);
  }

  _floor(floor) {
    this.talker = member(floor.holder);
    this.queueLength = Number.isInteger(floor.queue_length) ? floor.queue_length : 0;
  }
}
