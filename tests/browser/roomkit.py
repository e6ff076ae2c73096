"""Driving the room page from Playwright (sync API): join, hold the button, listen.

Shared by the browser tests and tests/browser/screenshots.py. Everything is read through
what the page exposes on purpose: ``window.walkie`` (read-only state + the remote stream),
``data-state`` attributes and visible text.
"""

from __future__ import annotations

import json
import time
from typing import Any

# Installs (once per remote stream) an AnalyserNode with fftSize 8192 on the page's remote
# stream and returns the loudest bin: {hz, db}. 48 kHz / 8192 = 5.9 Hz per bin, so a 440 Hz
# talker lands in 430-450 Hz. Silence gives db = -Infinity (or below -100).
PROBE_JS = """async () => {
  const stream = window.walkie.remoteStream;
  if (!stream) return null;
  let p = window.__probe;
  if (!p || p.stream !== stream) {
    const ctx = p ? p.ctx : new AudioContext();
    await ctx.resume();
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(an);
    p = window.__probe = {ctx, an, stream, buf: new Float32Array(an.frequencyBinCount)};
  }
  p.an.getFloatFrequencyData(p.buf);
  let best = 1;
  for (let i = 2; i < p.buf.length; i++) if (p.buf[i] > p.buf[best]) best = i;
  const db = p.buf[best];
  return {hz: best * p.ctx.sampleRate / p.an.fftSize, db: Number.isFinite(db) ? db : -1000};
}"""

TONE_DB = -70.0  # a bin louder than this is a tone, not silence or codec noise

# Watches, inside the page, for the first tone within [lo, hi] Hz on a remote stream other than
# the one the page has now (a new peer connection's), and notes when it came (Date.now(), so
# the test's wall clock can be compared) in window.__toneWatch.at. Runs in the page so that
# the time is right however slowly the test process polls.
WATCH_NEW_STREAM_JS = f"""({{lo, hi, db}}) => {{
  const probe = {PROBE_JS};
  const old = window.walkie.remoteStream;
  const watch = window.__toneWatch = {{at: null, last: null}};
  const tick = async () => {{
    if (window.walkie.remoteStream && window.walkie.remoteStream !== old) {{
      const p = watch.last = await probe();
      if (p && p.db > db && lo <= p.hz && p.hz <= hi) {{
        watch.at = Date.now();
        return;
      }}
    }}
    setTimeout(tick, 10);
  }};
  tick();
}}"""


def open_room(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url)
    return page


def state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => { const w = window.walkie; return {connection: w.connection,
        floor: w.floor, position: w.position, talker: w.talker, members: w.members,
        you: w.you, sending: w.sending}; }"""
    )


def wait_ready(page: Any, timeout_ms: int = 20000) -> None:
    page.wait_for_function(
        "() => window.walkie && window.walkie.connection === 'ready'", timeout=timeout_ms
    )


def wait_members(page: Any, count: int, timeout_ms: int = 10000) -> None:
    page.wait_for_function(
        "(n) => window.walkie.members.length === n", arg=count, timeout=timeout_ms
    )


def wait_floor(page: Any, *states: str, timeout_ms: int = 10000) -> str:
    page.wait_for_function(
        "(s) => s.includes(window.walkie.floor)", arg=list(states), timeout=timeout_ms
    )
    return page.evaluate("() => window.walkie.floor")


def wait_talker(page: Any, name: str | None, timeout_ms: int = 10000) -> None:
    page.wait_for_function(
        "(n) => { const t = window.walkie.talker; return n === null ? t === null : !!t && t.name === n; }",
        arg=name,
        timeout=timeout_ms,
    )


def hold(page: Any) -> None:
    """Press and keep holding the Talk button with the page's mouse (pointer events)."""
    box = page.get_by_role("button", name="Talk").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def let_go(page: Any) -> None:
    page.mouse.up()


def probe(page: Any) -> dict[str, float] | None:
    return page.evaluate(PROBE_JS)


def wait_tone(page: Any, lo: float = 430.0, hi: float = 450.0, timeout_s: float = 10.0) -> float:
    """Wait until the page hears a dominant tone within [lo, hi] Hz; return its frequency."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe(page)
        if last and last["db"] > TONE_DB and lo <= last["hz"] <= hi:
            return last["hz"]
        page.wait_for_timeout(150)
    raise AssertionError(f"no {lo:.0f}-{hi:.0f} Hz tone heard; last probe: {last}")


def watch_new_stream_tone(page: Any, lo: float = 430.0, hi: float = 450.0) -> None:
    """From now on the page notes when it first hears a [lo, hi] Hz tone on a new remote
    stream (see `new_stream_tone_at`)."""
    page.evaluate(WATCH_NEW_STREAM_JS, {"lo": lo, "hi": hi, "db": TONE_DB})


def new_stream_tone_at(page: Any, timeout_s: float = 30.0) -> float:
    """Wait for the tone `watch_new_stream_tone` watches for; return when it came (Unix time,
    as time.time())."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("() => window.__toneWatch.at !== null", timeout=timeout_s * 1000)
    except PlaywrightTimeout as exc:
        last = page.evaluate("() => window.__toneWatch.last")
        raise AssertionError(f"no tone on a new stream within {timeout_s} s; last probe: {last}") from exc
    return page.evaluate("() => window.__toneWatch.at") / 1000


def inbound_packets(page: Any) -> int:
    stats = page.evaluate("() => window.walkie.stats()")
    return int(stats["packetsReceived"]) if stats else 0


class SocketLog:
    """Every WebSocket a page opens and every message it receives on it, in order.

    Only watches (Playwright's ``websocket`` / ``framereceived`` events): nothing is routed or
    changed. Make it on a new page, before ``page.goto``.
    """

    def __init__(self, page: Any) -> None:
        self.sockets: list[list[dict[str, Any]]] = []  # per socket: server -> page
        page.on("websocket", self._opened)

    def _opened(self, ws: Any) -> None:
        received: list[dict[str, Any]] = []
        self.sockets.append(received)
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    def received(self, socket: int = -1) -> list[dict[str, Any]]:
        return list(self.sockets[socket]) if self.sockets else []
