"""End to end: the media worker is killed while Ann talks, and every page hears her again.

A real `walkie serve` (signaling in its process, media in one worker process, the default)
and three pages of one Chromium whose fake mic plays 440 Hz. Ann holds Talk; Ben and Cy hear
~440 Hz; Cy waits in the queue. Then the test sends SIGKILL to the media worker, found by the pid /healthz reports
and checked to be a child of the server this test started. Nobody clicks or presses
anything: on `media` `reset` every page makes a new peer connection and offers again on the
same WebSocket (docs/PROTOCOL.md), the server's warm spare worker takes the same UDP port,
and Ben and Cy hear Ann again, on new remote streams. Membership and floor never move: no
`member_left` / `member_joined` / `floor` message, the same member ids everywhere, Ann still
holds the floor and Cy is still first in the queue (and gets the floor when Ann lets go).

The time from the kill to the tone at each listener is printed and recorded with
record_property (`kill_to_audio_ms_<name>`); it is not asserted (a slow machine must not
fail the test: speed belongs to bench/).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Any

import pytest

from . import roomkit as rk
from .harness import Server

pytestmark = pytest.mark.browser

#: Generous bounds for a slow machine; the goal (issue 8) is audio again within 3 s.
RECOVERY_TIMEOUT_S = 30.0


def media_worker(server: Server) -> dict[str, Any]:
    (worker,) = server.healthz()["media"]["workers"]  # default settings: one worker
    return worker


def wait_spare_ready(server: Server, timeout_s: float = 20.0) -> None:
    """The pool keeps a warm spare; kill only once it is ready, as in production."""
    deadline = time.monotonic() + timeout_s
    while not server.healthz()["media"]["spare_ready"]:
        assert time.monotonic() < deadline, "the spare media worker never got ready"
        time.sleep(0.1)


def wait_new_worker(server: Server, old_pid: int) -> dict[str, Any]:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        worker = media_worker(server)
        if worker["pid"] != old_pid and worker["alive"] and worker["state"] == "ready":
            return worker
        assert time.monotonic() < deadline, f"no new media worker: {worker}"
        time.sleep(0.1)


def test_killed_media_worker_every_page_hears_the_talker_again_without_a_click(
    browser: Any, server: Server, record_property: Any
) -> None:
    room = "kill-" + secrets.token_hex(3)
    context = browser.new_context()
    names = ("Ann", "Ben", "Cy")
    pages: dict[str, Any] = {}
    logs: dict[str, rk.SocketLog] = {}
    for name in names:
        pages[name] = context.new_page()
        logs[name] = rk.SocketLog(pages[name])
        pages[name].goto(server.room_url(room, name))
    ann, ben, cy = pages.values()
    listeners = {"Ben": ben, "Cy": cy}
    for page in pages.values():
        rk.wait_ready(page)
        rk.wait_members(page, 3)

    # Ann talks; Ben and Cy hear ~440 Hz. Cy presses too and waits in the queue.
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    rk.hold(cy)
    rk.wait_floor(cy, "queued")
    for page in listeners.values():
        rk.wait_talker(page, "Ann")
        assert 430 <= rk.wait_tone(page) <= 450
    before = {name: rk.state(page) for name, page in pages.items()}
    assert [m["name"] for m in before["Ann"]["members"]] == list(names)

    # The media worker: a child of the server this test started, by the pid it reports.
    wait_spare_ready(server)
    worker = media_worker(server)
    pid, port = worker["pid"], worker["address"][1]
    assert worker["alive"] and server.is_parent_of(pid), worker
    seen = {name: len(log.received()) for name, log in logs.items()}
    for page in pages.values():
        assert page.evaluate("() => window.walkie.mediaResets") == 0
    for page in listeners.values():
        rk.watch_new_stream_tone(page)
    killed = time.time()
    os.kill(pid, signal.SIGKILL)

    # No click, no key: Ben and Cy hear Ann again, on new remote streams.
    heard = {name: rk.new_stream_tone_at(page, RECOVERY_TIMEOUT_S) - killed
             for name, page in listeners.items()}
    for name, seconds in heard.items():
        record_property(f"kill_to_audio_ms_{name}", round(seconds * 1000))
    print("\nkill -9 of the media worker -> 440 Hz again at "
          + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in heard.items()))

    # Every page re-established media on its own, on the same socket, and nothing else moved.
    for name, page in pages.items():
        page.wait_for_function(
            "() => window.walkie.mediaResets >= 1 && window.walkie.connection === 'ready'",
            timeout=RECOVERY_TIMEOUT_S * 1000,
        )
        now = rk.state(page)
        assert now["you"] == before[name]["you"], name
        assert now["members"] == before[name]["members"], name
        assert (now["floor"], now["position"]) == (before[name]["floor"], before[name]["position"])
        assert now["talker"] == before[name]["talker"] == {"id": before["Ann"]["you"]["id"], "name": "Ann"}
        log = logs[name]
        assert len(log.sockets) == 1, f"{name} opened another WebSocket"
        after = [m for m in log.received()[seen[name]:] if m["type"] != "pong"]
        kinds = [m["type"] for m in after]
        assert {"type": "media", "state": "reset", "reason": "media worker restarted"} in after, kinds
        assert not {"member_left", "member_joined", "joined", "floor"} & set(kinds), kinds
        # A re-offer may be refused while the worker restarts (docs/PROTOCOL.md); the page then
        # offers again. Any other error is a bug.
        assert all(m["code"] == "bad_offer" for m in after if m["type"] == "error"), after
        assert kinds[-2:] == ["answer", "media"] and after[-1]["state"] == "connected", kinds
    assert rk.state(ann)["floor"] == "talking" and rk.state(ann)["sending"] is True
    assert (rk.state(cy)["floor"], rk.state(cy)["position"]) == ("queued", 1)
    for page in listeners.values():  # fresh packets on the new connection, still 440 Hz
        packets = rk.inbound_packets(page)
        assert 430 <= rk.wait_tone(page) <= 450
        page.wait_for_timeout(300)
        assert rk.inbound_packets(page) > packets > 0

    # A new media worker, alive, a child of the same server, on the same UDP port.
    new = wait_new_worker(server, pid)
    record_property("worker_restart_ms", new["last_restart_ms"])
    print(f"restart (death noticed -> new worker ready): {new['last_restart_ms']} ms")
    assert server.is_parent_of(new["pid"]) and not server.is_parent_of(pid)
    assert new["restarts"] == 1 and new["address"][1] == port
    assert server.healthz()["members"] == 3

    # The floor still works on the same sockets: Ann lets go, Cy (still holding) gets it.
    rk.let_go(ann)
    rk.wait_floor(cy, "talking")
    for page in (ann, ben):
        rk.wait_talker(page, "Cy")
    rk.let_go(cy)
    for page in pages.values():
        rk.wait_talker(page, None)
    assert all(len(log.sockets) == 1 for log in logs.values())
    context.close()
