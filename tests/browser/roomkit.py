"""Driving the room page from Playwright (sync API): join, hold the button, listen.

Shared by the browser tests and tests/browser/screenshots.py. Everything is read through
what the page exposes on purpose: ``window.walkie`` (read-only state + the remote stream),
``data-state`` attributes and visible text.
"""

from __future__ import annotations

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


def inbound_packets(page: Any) -> int:
    stats = page.evaluate("() => window.walkie.stats()")
    return int(stats["packetsReceived"]) if stats else 0
