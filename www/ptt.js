// Push-to-talk floor state machine: the page's own view of "may I talk?".
//
// Sans-IO on purpose: it takes user inputs (press / release / toggle) and server floor
// messages, and returns a list of actions for the caller to perform:
//   {type: "send", message: {...}}   a signaling message to send
//   {type: "mic", on: true|false}    switch the mic track into / out of the RTP sender
//   {type: "tone", name: "permit"|"busy"|"end"}
// No DOM, no WebSocket, no timers, so every transition is testable on its own.
//
// Why the "pending" counter: the user can press, release and press again faster than one
// round trip. The server answers every floor_request with exactly one of floor_granted /
// floor_queued / floor_denied, in order. Counting outstanding requests lets us recognise a
// reply to a request we already took back (its release is on the way and will cancel it),
// so a stale grant does not show "talking" and a stale deny does not play the busy tone.

/** Own floor states, also used as the button's data-state. */
export const State = Object.freeze({
  IDLE: "idle",
  REQUESTING: "requesting",
  TALKING: "talking",
  QUEUED: "queued",
  BUSY: "busy",
  REVOKED: "revoked",
});

const ACTIVE = new Set([State.REQUESTING, State.QUEUED, State.TALKING]);

export class FloorMachine {
  constructor() {
    /** @type {string} one of State */
    this.state = State.IDLE;
    /** Queue position while QUEUED (1 = next), else 0. */
    this.position = 0;
    /** Why we are BUSY or REVOKED (server reason), else "". */
    this.reason = "";
    /** Who pre-empted us (floor_revoked `by`'s name) while REVOKED for "preempted", else "". */
    this.revokedBy = "";
    /** Holder named in the last floor_denied, {id, name} or null. */
    this.busyHolder = null;
    /** The user is holding the button (or has latched it on). */
    this.held = false;
    /** floor_request messages sent whose reply has not arrived yet. */
    this.pending = 0;
    /** Our member id once joined; null while not in a room (presses then do nothing). */
    this.myId = null;
  }

  /** True while we have asked for, wait for, or hold the floor. */
  get active() {
    return ACTIVE.has(this.state);
  }

  /** Joined a room as `id`: presses now request the floor. Starts from a clean state. */
  setReady(id) {
    const actions = this.reset();
    this.myId = id;
    return actions;
  }

  /**
   * Connection lost (or left): the server has already dropped our floor and queue place.
   * `held` is cleared too, so the user must press again after a rejoin instead of the page
   * silently starting to talk.
   */
  reset() {
    const actions = [];
    if (this.state === State.REQUESTING || this.state === State.TALKING) {
      actions.push({ type: "mic", on: false });
    }
    this.myId = null;
    this.state = State.IDLE;
    this.pending = 0;
    this.held = false;
    this.position = 0;
    this.reason = "";
    this.busyHolder = null;
    return actions;
  }

  /**
   * Our member was resumed on a new socket (docs/PROTOCOL.md, "resume"): the state kept
   * through the outage meets the server's `floor` now. Talking but no longer the holder:
   * stop. The holder but no longer talking (Talk was let go meanwhile, and that release
   * never left): release now, so the floor is not kept for nothing.
   */
  resumed(floor) {
    const holderId = floor && floor.holder && typeof floor.holder === "object" ? floor.holder.id : null;
    if (this.myId === null) return [];
    if (this.state === State.TALKING && holderId !== this.myId) return this._broadcast({ type: "floor", holder: floor.holder });
    if (holderId === this.myId && !this.active) return [{ type: "send", message: { type: "floor_release" } }];
    return [];
  }

  /** Button down / space down / latch on. Sends at once: the SFU's pre-roll keeps the start. */
  press() {
    if (this.held) return [];
    this.held = true;
    if (this.myId === null) return [];
    this.state = State.REQUESTING;
    this.position = 0;
    this.reason = "";
    this.busyHolder = null;
    this.pending += 1;
    return [
      { type: "mic", on: true },
      { type: "send", message: { type: "floor_request" } },
    ];
  }

  /** Button up / space up / latch off. */
  release() {
    if (!this.held) return [];
    this.held = false;
    const was = this.state;
    this.state = State.IDLE;
    this.position = 0;
    if (this.myId === null) return [];
    if (was === State.BUSY || was === State.REVOKED || was === State.IDLE) {
      // Nothing asked of the server (denied, revoked or never sent): nothing to take back.
      this.reason = "";
      this.busyHolder = null;
      return [];
    }
    const actions = [];
    if (was !== State.QUEUED) actions.push({ type: "mic", on: false });
    actions.push({ type: "send", message: { type: "floor_release" } });
    if (was === State.TALKING) actions.push({ type: "tone", name: "end" });
    return actions;
  }

  /**
   * Latch mode: a tap turns talking on, the next tap turns it off. A tap after a deny or a
   * revoke starts a new request rather than only clearing the old state.
   */
  toggle() {
    if (this.active) return this.release();
    const actions = [];
    if (this.held) actions.push(...this.release());
    actions.push(...this.press());
    return actions;
  }

  /** A server message (any type; non-floor messages are ignored). */
  handle(msg) {
    switch (msg && msg.type) {
      case "floor_granted":
      case "floor_queued":
      case "floor_denied":
        return this._reply(msg);
      case "floor_revoked":
        return this._revoked(msg);
      case "floor":
        return this._broadcast(msg);
      case "error":
        // A rate-limited floor_request gets an error instead of a floor reply: count it as a
        // deny so the pending counter does not stay stuck above zero.
        if (msg.code === "rate_limited" && this.pending > 0) {
          return this._reply({ type: "floor_denied", reason: "rate_limited", holder: null });
        }
        return [];
      default:
        return []; // floor_released is only an ack; the broadcast says the rest
    }
  }

  _reply(msg) {
    if (this.pending > 0) {
      this.pending -= 1;
      // A reply to an earlier request that the user already took back: its release is
      // queued behind it at the server, so ignore it.
      if (this.pending > 0 || !this.held) return [];
    } else if (this.state !== State.QUEUED) {
      // Unsolicited and we are not waiting in the queue: stale, ignore.
      return [];
    }
    if (this.state !== State.REQUESTING && this.state !== State.QUEUED) return [];
    const from = this.state;
    if (msg.type === "floor_granted") {
      this.state = State.TALKING;
      this.position = 0;
      const actions = [];
      if (from === State.QUEUED) actions.push({ type: "mic", on: true });
      actions.push({ type: "tone", name: "permit" });
      return actions;
    }
    if (msg.type === "floor_queued") {
      this.state = State.QUEUED;
      this.position = Number.isInteger(msg.position) && msg.position > 0 ? msg.position : 1;
      return from === State.REQUESTING ? [{ type: "mic", on: false }] : [];
    }
    // floor_denied
    this.state = State.BUSY;
    this.position = 0;
    this.reason = typeof msg.reason === "string" ? msg.reason : "busy";
    this.busyHolder = msg.holder && typeof msg.holder === "object" ? msg.holder : null;
    const actions = [];
    if (from === State.REQUESTING) actions.push({ type: "mic", on: false });
    actions.push({ type: "tone", name: "busy" });
    return actions;
  }

  _revoked(msg) {
    if (this.state !== State.TALKING && this.state !== State.REQUESTING) return [];
    this.state = State.REVOKED;
    this.reason = typeof msg.reason === "string" ? msg.reason : "revoked";
    // Pre-empted: who took the floor (a member of higher priority), for "pre-empted by Ann".
    this.revokedBy = msg.by && typeof msg.by === "object" && typeof msg.by.name === "string" ? msg.by.name : "";
    return [{ type: "mic", on: false }, { type: "tone", name: "end" }];
  }

  /**
   * The room-wide floor broadcast is the server's truth. If we believe we talk but the
   * holder is someone else (or nobody) and no request of ours is in flight, we lost the
   * floor without being told (e.g. a message was lost across a server restart): stop sending.
   */
  _broadcast(msg) {
    if (this.state !== State.TALKING || this.pending > 0 || this.myId === null) return [];
    const holderId = msg.holder && typeof msg.holder === "object" ? msg.holder.id : null;
    if (holderId === this.myId) return [];
    this.state = State.REVOKED;
    this.reason = "lost";
    return [{ type: "mic", on: false }, { type: "tone", name: "end" }];
  }
}
