"""The page's side of `media` `reset`, through its real wiring, next to the real server.

To play resets at chosen moments (several in a row, too), the test stands between the page
and the server (Playwright's WebSocket routing) instead of killing media workers: it passes
frames on until it hands the page a `media` `reset` as the server would, then reads what the
page sends back. What the page must do (docs/PROTOCOL.md): a new RTCPeerConnection and a
new `offer` on the same WebSocket, without a click, while membership, room and floor stay as
they were; a few resets in a row without audio in between end on the "keeps failing" notice,
whose Try again rejoins.
The end-to-end test with a really killed media worker is test_worker_kill_e2e.py.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest

from . import roomkit as rk

pytestmark = pytest.mark.browser

RESET = json.dumps({"type": "media", "state": "reset", "reason": "media worker restarted"})


class Relay:
    """Stands between the page's WebSockets and the server, recording what the page sends.

    `reset()` plays a media worker's death as the page sees it: the server says `media`
    `reset`, then (having forgotten the page's media) no more about it. This server still
    holds the old media peer, so from then on the socket is cut off from it: the page's
    frames are recorded, not sent, and the server's (the old peer's end, a close) not shown.
    """

    def __init__(self, page: Any) -> None:
        self.routes: list[Any] = []
        self.sent: list[list[dict[str, Any]]] = []  # per socket: page -> server
        self.detached: set[int] = set()
        page.route_web_socket(re.compile(r".*/ws$"), self._route)

    def _route(self, ws: Any) -> None:
        index = len(self.routes)
        server = ws.connect_to_server()
        frames: list[dict[str, Any]] = []
        self.routes.append(ws)
        self.sent.append(frames)

        def from_page(message: str | bytes) -> None:
            frames.append(json.loads(message))
            if index not in self.detached:
                server.send(message)

        def from_server(message: str | bytes) -> None:
            if index not in self.detached:
                ws.send(message)

        def server_closed(code: int | None, reason: str | None) -> None:
            if index not in self.detached:
                ws.close(code=code, reason=reason)

        ws.on_message(from_page)
        server.on_message(from_server)
        server.on_close(server_closed)

    def offers(self, socket: int = -1) -> list[str]:
        return [f["sdp"] for f in self.sent[socket] if f["type"] == "offer"]

    def reset(self) -> None:
        self.detached.add(len(self.routes) - 1)
        self.routes[-1].send(RESET)

    def wait_offers(self, page: Any, count: int) -> list[str]:
        """Wait until the page sent `count` offers on its current socket (as the relay saw)."""
        for _ in range(200):
            if len(self.offers()) >= count:
                break
            page.wait_for_timeout(50)  # lets Playwright deliver the routed frames
        return self.offers()


def ufrag(sdp: str) -> str:
    m = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    assert m, sdp
    return m.group(1)


def test_reset_reoffers_on_the_same_socket_and_keeps_the_floor(browser, server) -> None:
    room = "reset-" + secrets.token_hex(3)
    context = browser.new_context()
    ann = context.new_page()
    relay = Relay(ann)
    ann.goto(server.room_url(room, "Ann"))
    bob = context.new_page()
    bob.goto(server.room_url(room, "Bob"))
    for page in (ann, bob):
        rk.wait_ready(page)
        rk.wait_members(page, 2)
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    rk.wait_talker(bob, "Ann")
    before = rk.state(ann)

    relay.reset()
    ann.wait_for_function("() => window.walkie.offersSent === 2")
    # Same socket, one new offer from a new peer connection (new ICE credentials), full SDP.
    first, second = relay.wait_offers(ann, 2)
    assert len(relay.sent) == 1
    assert ufrag(first) != ufrag(second)
    assert "m=audio " in second and "a=sendrecv" in second and "a=fingerprint:" in second
    assert [f["type"] for f in relay.sent[0]].count("join") == 1
    # Nothing else changed: same member, same room, still talking, the mic on the new sender.
    now = rk.state(ann)
    assert now["connection"] == "resetting" and now["floor"] == "talking" and now["sending"] is True
    assert now["you"] == before["you"] and now["members"] == before["members"]
    assert ann.evaluate("() => window.walkie.mediaResets") == 1
    assert ann.locator("#notice-text").inner_text() == "Reconnecting audio…"
    assert ann.locator("#notice-retry").is_hidden()  # nothing to click
    assert not ann.get_by_role("button", name="Talk").is_disabled()
    rk.let_go(ann)
    rk.wait_floor(ann, "idle")
    assert rk.state(ann)["sending"] is False
    assert relay.sent[0][-1] == {"type": "floor_release"}  # still on the same socket
    context.close()


def test_reset_storm_ends_on_try_again_which_rejoins(browser, server) -> None:
    page = browser.new_page()
    relay = Relay(page)
    page.goto(server.room_url("storm-" + secrets.token_hex(3), "Ann"))
    rk.wait_ready(page)
    relay.reset()
    page.wait_for_function("() => window.walkie.offersSent === 2")
    relay.reset()
    page.wait_for_function("() => window.walkie.mediaResets === 2")
    assert page.evaluate("() => window.walkie.connection") == "resetting"
    relay.reset()  # the third in a row without audio in between
    page.wait_for_function("() => window.walkie.connection === 'failed'")
    assert "keeps being reset (media worker restarted)" in page.locator("#notice-text").inner_text()
    page.get_by_role("button", name="Try again").click()
    rk.wait_ready(page)
    assert len(relay.sent) == 2 and len(relay.wait_offers(page, 1)) == 1  # a fresh session
