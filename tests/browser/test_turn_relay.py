"""Media through coturn: two Chromium pages forced onto TURN relay candidates talk via walkie.

The server runs with ``--turn-url``, ``--turn-secret`` (from WALKIE_TURN_SECRET, as the
deployment guide recommends) and ``--force-relay``; coturn runs with ``use-auth-secret``.
The browsers' only local candidates are then relay candidates, so a heard tone proves the
whole path: browser -> coturn -> SFU -> coturn -> browser. With a wrong secret on the
walkie side coturn answers 401, no candidate exists, and the page must say why.
"""

from __future__ import annotations

import secrets

import pytest

from ..signaling.test_turn_coturn import Coturn, coturn_skip_reason
from . import roomkit as rk

pytestmark = [pytest.mark.browser, pytest.mark.turn]


@pytest.fixture
def coturn(tmp_path, browser):  # browser first: skip the same way the other browser tests do
    reason = coturn_skip_reason()
    if reason:
        pytest.skip(reason)
    server = Coturn(tmp_path, "coturn-" + secrets.token_hex(12))
    yield server
    server.stop()


def local_candidate_type(page) -> str:
    stats = page.evaluate("() => window.walkie.stats()")
    return stats["localCandidateType"] if stats else ""


def test_two_pages_talk_through_the_turn_relay(browser, coturn, server_factory, monkeypatch):
    monkeypatch.setenv("WALKIE_TURN_SECRET", coturn.secret)
    server = server_factory("--turn-url", coturn.url, "--force-relay")
    room = "relay-" + secrets.token_hex(3)
    context = browser.new_context()
    alice = rk.open_room(context, server.room_url(room, "Alice"))
    bob = rk.open_room(context, server.room_url(room, "Bob"))
    for page in (alice, bob):
        rk.wait_ready(page)
        rk.wait_members(page, 2)
        # The selected pair's local candidate is the relay: media goes through coturn.
        page.wait_for_function(
            "async () => (await window.walkie.stats()).localCandidateType !== ''"
        )
        assert local_candidate_type(page) == "relay"

    rk.hold(alice)
    rk.wait_floor(alice, "talking")
    rk.wait_talker(bob, "Alice")
    assert 430 <= rk.wait_tone(bob) <= 450
    rk.let_go(alice)
    rk.wait_talker(bob, None)

    turn_log = coturn.log()
    assert "ALLOCATE processed, success" in turn_log
    # coturn relayed to the SFU's UDP port (a loopback peer, allowed for this test only).
    assert "CREATE_PERMISSION processed, success" in turn_log
    assert coturn.secret not in server.log()
    context.close()


def test_wrong_secret_shows_a_relay_error(browser, coturn, server_factory, monkeypatch):
    monkeypatch.setenv("WALKIE_TURN_SECRET", "wrong-" + coturn.secret)
    server = server_factory("--turn-url", coturn.url, "--force-relay")
    context = browser.new_context()
    page = rk.open_room(context, server.room_url("relay-" + secrets.token_hex(3), "Ann"))
    page.wait_for_function("() => window.walkie && window.walkie.connection === 'failed'",
                           timeout=20000)
    notice = page.locator("#notice-text")
    assert notice.is_visible()
    text = notice.inner_text()
    assert "Could not reach the media relay (TURN)" in text
    assert "401" in text  # coturn's own answer, passed on by the browser
    assert page.locator("#notice-retry").is_visible()
    assert "401" in coturn.log()
    context.close()
