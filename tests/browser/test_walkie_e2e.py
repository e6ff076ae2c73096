"""End to end: three browser pages, the real server, real audio through the real SFU.

The scenario of the product: Alice holds Talk, Bob and Chloé hear her 440 Hz "voice" and see
her as the talker; Alice does not hear herself; Bob pressing meanwhile is queued (the UI
says so); when Alice lets go, Bob, still holding, gets the floor and Alice hears him.
"""

from __future__ import annotations

import secrets

import pytest

from . import roomkit as rk

pytestmark = pytest.mark.browser


def test_three_pages_take_turns(browser, server) -> None:
    room = "e2e-" + secrets.token_hex(3)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    alice, bob, chloe = (
        rk.open_room(context, server.room_url(room, name)) for name in ("Alice", "Bob", "Chloé")
    )
    pages = (alice, bob, chloe)
    for page in pages:
        rk.wait_ready(page)
        rk.wait_members(page, 3)
    assert [m["name"] for m in rk.state(alice)["members"]] == ["Alice", "Bob", "Chloé"]
    assert rk.state(bob)["talker"] is None

    # Alice talks: Bob and Chloé hear ~440 Hz and show her as the talker.
    alice_heard_before = rk.inbound_packets(alice)
    rk.hold(alice)
    rk.wait_floor(alice, "talking")
    assert alice.locator("#ptt").get_attribute("data-state") == "talking"
    assert rk.state(alice)["sending"] is True
    for listener in (bob, chloe):
        rk.wait_talker(listener, "Alice")
        hz = rk.wait_tone(listener)
        assert 430 <= hz <= 450
        assert listener.locator("#talker-label").inner_text().startswith("Alice is talking")
        assert listener.locator('#members li[data-talking="yes"]').inner_text().startswith("A")
        # The live meter moves, fed by the RTP audio-level extension the SFU carries through
        # (a -6 dBFS tone reads about -9 dBov there: 0.35 linear).
        listener.wait_for_function("() => window.walkie.meter > 0.5 && window.walkie.rtpLevel() > 0.1")

    # The talker never hears itself: not one RTP packet reaches Alice while only she talks.
    alice.wait_for_timeout(800)
    assert rk.inbound_packets(alice) == alice_heard_before

    # Bob presses while Alice holds the floor: queued (the default) or busy, and the page says so.
    rk.hold(bob)
    got = rk.wait_floor(bob, "queued", "busy")
    button = bob.locator("#ptt")
    assert button.get_attribute("data-state") == got
    if got == "queued":
        assert "Queued #1" in button.inner_text()
        assert rk.state(bob)["sending"] is False  # nothing goes up until the grant
    else:
        assert "Busy" in button.inner_text()
    assert rk.state(chloe)["talker"]["name"] == "Alice"

    # Alice lets go: Bob (still holding) gets the floor, Alice and Chloé hear him.
    rk.let_go(alice)
    rk.wait_floor(alice, "idle")
    if got == "busy":  # a denied request is not remembered: press again
        rk.let_go(bob)
        rk.hold(bob)
    rk.wait_floor(bob, "talking")
    for listener in (alice, chloe):
        rk.wait_talker(listener, "Bob")
    hz = rk.wait_tone(alice)
    assert 430 <= hz <= 450
    assert rk.inbound_packets(alice) > alice_heard_before

    rk.let_go(bob)
    for page in pages:
        rk.wait_talker(page, None)
    assert alice.locator("#talker-label").inner_text() == "Channel clear"
    context.close()
