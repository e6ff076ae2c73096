// The signaling connection: JSON frames over one WebSocket at /ws (docs/PROTOCOL.md).
//
// Kept thin on purpose: it opens the socket, parses frames, keeps the connection honest
// with ping/pong, and reports open / message / close. Rejoin and backoff decisions live in
// the session machine (session.js), which knows whether a close was fatal.

/** ws: or wss: URL of the signaling endpoint for the page's own origin. */
export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

/**
 * Reconnect delay in ms for the n-th consecutive failed attempt (0-based): exponential from
 * 500 ms, capped at 10 s, with +-25 % jitter so a room of phones that lost the same Wi-Fi
 * does not reconnect in lockstep.
 */
export function backoffDelay(attempt, rand = Math.random) {
  const base = Math.min(10000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + 0.5 * rand()));
}

// The page's own check of the path to the server. The server does not rely on it: it sends
// WebSocket pings every 1.5 s (signaling/keepalive.py), which the browser answers itself even
// when this page's timers are throttled in a background tab, and those also keep NAT and
// proxy idle timers from cutting a quiet room. This ping only lets the page notice a dead
// network from its side: a talker whose network died (the server has revoked its floor
// within seconds) sees "reconnecting" within 10 s instead of 30 s. A throttled background tab
// only checks less often: its timers fire late, never early, so it is never dropped for it.
const PING_EVERY_MS = 5000;
const PONG_WITHIN_MS = 5000;

export class SignalingSocket {
  /**
   * @param {string} url
   * @param {{onOpen?: () => void, onMessage?: (msg: object) => void,
   *          onClose?: (info: {code: number, reason: string, opened: boolean}) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.opened = false;
    this.closed = false;
    this._pingTimer = 0;
    this._pongTimer = 0;
  }

  open() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      // A malformed URL throws synchronously; report it like any other failed connect.
      queueMicrotask(() => this._closed(1006, String(err)));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.opened = true;
      this._pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
      this.handlers.onOpen?.();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return; // the protocol is text frames only
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!msg || typeof msg !== "object" || typeof msg.type !== "string") return;
      if (msg.type === "pong") {
        clearTimeout(this._pongTimer);
        this._pongTimer = 0;
        return;
      }
      this.handlers.onMessage?.(msg);
    };
    ws.onclose = (ev) => this._closed(ev.code, ev.reason);
    ws.onerror = () => {}; // always followed by close, which carries what we need
  }

  /** Send one message; returns false if the socket is not open (the message is dropped). */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Close for good: no onClose callback follows. */
  close(code = 1000, reason = "") {
    this.closed = true;
    this._stopTimers();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.onopen = null;
      try {
        this.ws.close(code, reason);
      } catch {
        /* already closing */
      }
    }
  }

  _ping() {
    if (!this.send({ type: "ping" })) return;
    if (!this._pongTimer) {
      this._pongTimer = setTimeout(() => {
        // No pong: the path is dead even if the socket does not know yet.
        try {
          this.ws.close(4000, "pong timeout");
        } catch {
          /* ignore */
        }
        this._closed(4000, "pong timeout");
      }, PONG_WITHIN_MS);
    }
  }

  _stopTimers() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pingTimer = 0;
    this._pongTimer = 0;
  }

  _closed(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this._stopTimers();
    this.handlers.onClose?.({ code, reason, opened: this.opened });
  }
}
