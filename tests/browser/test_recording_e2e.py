"""End to end with Chromium: a server that records says so before and after joining, and a
turn taken by a real browser is written as an Ogg Opus file with the talker's audio.

The browser's fake microphone plays the 440 Hz tone (tests/browser/conftest.py). The join
form says the server records; once in, the "Recording" badge is shown (an accessible
status); the talker holds Talk for about two seconds; the file that appears in the record
directory decodes (opuslib) to as long as the turn lasted, and to the tone, not silence.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from signaling.recordings import INDEX

from ..oggopus import decode, frequency, rms
from . import roomkit as rk

pytestmark = pytest.mark.browser
pytest.importorskip("opuslib")

HOLD_S = 2.0


def sent_packets(page) -> int:
    stats = page.evaluate("() => window.walkie.stats()")
    return int(stats["packetsSent"]) if stats else 0


def wait_for_index(directory: Path, timeout: float = 15.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = directory / INDEX
        if index.exists() and index.read_text().strip():
            return [json.loads(line) for line in index.read_text().splitlines()]
        time.sleep(0.05)
    raise AssertionError(f"no recording in {directory} within {timeout} s")


def test_a_recorded_room_says_so_and_its_turn_is_written(browser, server_factory,
                                                         tmp_path: Path) -> None:
    record_dir = tmp_path / "recordings"
    server = server_factory("--record", str(record_dir))
    room = "rec-" + secrets.token_hex(3)
    context = browser.new_context(viewport={"width": 390, "height": 844})

    talker = rk.open_room(context, server.room_url(room))  # no name: the join form first
    note = talker.locator("#join-recording")
    note.wait_for(state="visible", timeout=10000)
    assert "records" in note.inner_text()
    assert talker.locator("#recording").is_hidden()  # not in the room yet
    talker.locator("#join-name").fill("Rita")
    talker.locator("#join-submit").click()
    listener = rk.open_room(context, server.room_url(room, "Lee"))
    for page in (talker, listener):
        rk.wait_ready(page)
        rk.wait_members(page, 2)
        badge = page.get_by_role("status", name="Recording")
        badge.wait_for(state="visible", timeout=10000)
        assert badge.inner_text().strip() == "Recording"
        assert page.evaluate("() => window.walkie.recorded") is True

    sent_before = sent_packets(talker)
    rk.hold(talker)
    rk.wait_floor(talker, "talking")
    pressed = time.monotonic()
    rk.wait_tone(listener)  # the turn's audio flows
    talker.wait_for_timeout(max(0, int((HOLD_S - (time.monotonic() - pressed)) * 1000)))
    rk.let_go(talker)
    held = time.monotonic() - pressed
    rk.wait_floor(talker, "idle")
    talker.wait_for_timeout(500)  # past the turn's tail: the browser sends nothing more
    sent = sent_packets(talker) - sent_before

    (entry,) = wait_for_index(record_dir)
    assert (entry["room"], entry["talker"], entry["truncated"]) == (room, "Rita", False)
    data = (record_dir / str(entry["file"])).read_bytes()
    info, samples = decode(data)
    seconds = len(samples) / 48000
    assert seconds == pytest.approx(float(entry["duration_s"]), abs=0.01)
    # Every 20 ms packet the browser sent for this turn is in the file (on loopback the
    # grant comes long before the pre-roll's 300 ms run out), and nothing else; at least
    # as long as the button was held (the test's clock starts late, after the grant).
    assert seconds == pytest.approx(sent * 0.02, abs=0.021), (sent, seconds)
    assert seconds >= held - 0.1, (held, seconds)
    steady = samples[9600:-9600]
    assert rms(steady) > 1000  # not silence
    assert frequency(steady) == pytest.approx(440, abs=10)
    context.close()
