"""Say-again in Chromium: the real server (``walkie serve --replay``), the real page.

Ann talks (her fake mic plays a 440 Hz tone) while Bob is not in the room yet. Bob joins
later: the page tells him plainly that the room keeps audio, lists Ann's transmission
(talker, time, length) with a play button he can reach from the keyboard, and when he plays
it he hears Ann's tone on his usual downlink, with "Replaying Ann, HH:MM" shown and Ann not
shown as talking. Then live talk stops a replay: Ann presses Talk while Bob replays, and his
page says the replay stopped.
"""

from __future__ import annotations

import re
import secrets

import pytest

from . import roomkit as rk

pytestmark = pytest.mark.browser


def replay_state(page) -> dict:  # noqa: ANN001 - a Playwright page
    return page.evaluate("() => window.walkie.replay")


def energy(page) -> float:  # noqa: ANN001
    """totalAudioEnergy of the page's inbound audio (getStats): it grows while sound plays."""
    return page.evaluate("""async () => {
      const stats = await window.walkie.stats();
      return stats && stats.totalAudioEnergy ? stats.totalAudioEnergy : 0;
    }""")


def test_a_late_listener_replays_a_transmission_and_live_talk_stops_it(browser, server_factory) -> None:
    server = server_factory("--replay", "60")
    room = "replay-" + secrets.token_hex(3)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    ann = rk.open_room(context, server.room_url(room, "Ann"))
    rk.wait_ready(ann)
    assert ann.locator("#replay-keeps").inner_text() == (
        "This room keeps the last minute of audio for say-again. Only you hear what you replay.")

    # Ann talks alone for about three seconds: the room keeps it.
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    ann.wait_for_timeout(3000)
    rk.let_go(ann)
    rk.wait_floor(ann, "idle")
    ann.wait_for_function("() => window.walkie.replay.items.length === 1")

    # Bob comes later, and sees what the room keeps.
    bob = rk.open_room(context, server.room_url(room, "Bob"))
    rk.wait_ready(bob)
    bob.wait_for_function("() => window.walkie.replay.items.length === 1")
    (item,) = replay_state(bob)["items"]
    assert item["talker"] == "Ann" and 2500 <= item["durationMs"] <= 3800
    assert bob.get_by_text("This room keeps the last minute of audio").is_visible()
    play = bob.get_by_role("button", name="Play again: Ann at")
    assert play.is_enabled()
    label = play.get_attribute("aria-label")
    assert label is not None and re.fullmatch(r"Play again: Ann at \d\d:\d\d, 0:0[345]", label)

    # He plays it from the keyboard: his page shows the replay, and he hears Ann's tone.
    before = energy(bob)
    play.focus()
    bob.keyboard.press("Enter")
    bob.wait_for_function("() => window.walkie.replay.playing !== null")
    now = bob.locator("#replay-now")
    assert now.is_visible() and now.inner_text().startswith("Replaying Ann, ")
    hz = rk.wait_tone(bob)
    assert 430 <= hz <= 450
    assert rk.state(bob)["talker"] is None  # a replay is not somebody talking live
    bob.wait_for_function("() => window.walkie.replay.playing === null", timeout=10000)
    assert energy(bob) > before
    assert not bob.locator("#replay-now").is_visible()
    assert replay_state(bob)["note"] == ""  # it ended by itself: nothing to explain

    # Live talk stops a replay: Ann presses Talk while Bob replays again.
    play.click()
    bob.wait_for_function("() => window.walkie.replay.playing !== null")
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    bob.wait_for_function("() => window.walkie.replay.playing === null")
    assert replay_state(bob)["note"] == "Replay stopped: someone is talking."
    rk.wait_talker(bob, "Ann")
    assert not play.is_enabled()  # no replay while someone talks live
    rk.let_go(ann)
    rk.wait_talker(bob, None)
    bob.wait_for_function(
        "() => !document.querySelector('#replay-list button').disabled")
