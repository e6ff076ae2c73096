"""Cross-browser end to end: Chromium and Firefox ESR take turns through the real walkie.

Why: the SFU rewrites every listener's downlink (SSRC, sequence, timestamps, CSRC, extension
IDs) and answers each browser's own offer; Chromium alone proves none of that works with a
second WebRTC stack. Here a Chromium page (fake mic: 440 Hz WAV) and a Firefox page (fake mic:
Firefox's built-in 1 kHz tone) join one room on the real server. Chromium talks and Firefox
must receive RTP, show Chromium's name and hear ~440 Hz; then Firefox talks and Chromium must
show Firefox's name and hear ~1 kHz. Firefox is driven over WebDriver BiDi (tests/browser/
firefox.py) with a private PulseAudio null sink as its audio output.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import roomkit as rk
from .firefox import firefox_skip_reason, firefox_tab, pulseaudio_null_sink

pytestmark = pytest.mark.browser

CHROMIUM_NAME = "Carla"
FIREFOX_NAME = "Félix"

STATE_JS = """() => { const w = window.walkie; if (!w) return null;
  return {connection: w.connection, floor: w.floor, talker: w.talker,
          members: w.members.map((m) => m.name)}; }"""
STATS_JS = "() => window.walkie.stats()"


@pytest.fixture
def pulse_server(tmp_path: Path) -> Iterator[str]:
    reason = firefox_skip_reason()
    if reason:
        pytest.skip(reason)
    with pulseaudio_null_sink(tmp_path) as server:
        yield server


def test_chromium_and_firefox_take_turns(browser, server, pulse_server, tmp_path: Path) -> None:
    room = "xb-" + secrets.token_hex(3)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    chromium = rk.open_room(context, server.room_url(room, CHROMIUM_NAME))
    with firefox_tab(server.room_url(room, FIREFOX_NAME), pulse_server, tmp_path) as firefox:
        rk.wait_ready(chromium)
        # The page's state goes into the failure message; Firefox starting on a loaded
        # machine may take a while.
        firefox.wait_for("() => window.walkie ? `${window.walkie.connection}: ${window.walkie.connectionDetail}` : ''",
                         what="Firefox page ready", timeout_s=30, check=lambda s: s.startswith("ready"))
        rk.wait_members(chromium, 2)
        firefox.wait_for("() => window.walkie.members.length === 2", what="two members")
        ff_state = firefox.evaluate(STATE_JS)
        assert ff_state["members"] == [CHROMIUM_NAME, FIREFOX_NAME]
        assert ff_state["talker"] is None
        ff_before = firefox.evaluate(STATS_JS)["packetsReceived"]

        # Chromium talks: Firefox receives RTP, shows Carla as the talker, hears ~440 Hz.
        rk.hold(chromium)
        rk.wait_floor(chromium, "talking")
        firefox.wait_for(
            "(n) => { const t = window.walkie.talker; return !!t && t.name === n; }",
            CHROMIUM_NAME, what=f"talker {CHROMIUM_NAME}")
        stats = firefox.wait_for(
            STATS_JS, what="inbound RTP with audio energy",
            check=lambda s: s["packetsReceived"] > ff_before + 25 and s["audioLevel"] > 0
            and s["totalAudioEnergy"] > 0)
        assert stats["packetsReceived"] > ff_before
        label = firefox.evaluate("() => document.getElementById('talker-label').innerText")
        assert label.startswith(f"{CHROMIUM_NAME} is talking")
        hz = firefox.wait_tone(430.0, 450.0)
        assert 430 <= hz <= 450

        # Firefox's Media Session takes the headset's play / pause / stop (it knows no
        # "togglemicrophone") and shows the talker (www/README.md, per browser).
        firefox.wait_for("() => navigator.mediaSession.metadata.title", what="lock screen text",
                         check=lambda t: t == f"{CHROMIUM_NAME} is talking")
        assert firefox.evaluate("() => window.walkie.headsetActions") == ["play", "pause", "stop"]

        rk.let_go(chromium)
        rk.wait_floor(chromium, "idle")
        firefox.wait_for("() => window.walkie.talker === null", what="channel clear")

        # Firefox talks: Chromium shows Félix as the talker and hears ~1 kHz.
        chromium_before = rk.inbound_packets(chromium)
        firefox.hold()
        firefox.wait_for("() => window.walkie.floor === 'talking'", what="Firefox granted")
        rk.wait_talker(chromium, FIREFOX_NAME)
        hz = rk.wait_tone(chromium, 950.0, 1050.0)
        assert 950 <= hz <= 1050
        assert rk.inbound_packets(chromium) > chromium_before
        assert chromium.locator("#talker-label").inner_text().startswith(f"{FIREFOX_NAME} is talking")

        firefox.let_go()
        firefox.wait_for("() => window.walkie.floor === 'idle'", what="Firefox released")
        rk.wait_talker(chromium, None)
    context.close()
