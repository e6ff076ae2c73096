"""The worker pool with real worker processes on 127.0.0.1, driven by synthetic peers.

Rooms are placed whole (one UDP port per room's answers), audio is forwarded in each room,
errors and events come back through the asynchronous API, and bad offers are refused in the
caller's process without any worker. The failure tests (stopped workers, kill -9, crash
loops) are in test_pool_failures.py.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time

import pytest

import sfu
from sfu.pool import PoolTuning, WorkerGone, WorkerPool
from sfu.sdp import SdpError, parse_offer, select_audio

from .peerclient import CLIENT_CERT, PeerClient, make_offer
from .poolkit import answer_port, close, join, stopped, talk, until, worker_children

#: A well-formed offer for nobody in particular (the tests that use it never connect).
SOME_OFFER = make_offer("abcd", "p" * 22, CLIENT_CERT.fingerprint_text("sha-256"), 1, 9)


@pytest.fixture
def events(pool: WorkerPool) -> list[sfu.PeerEvent]:
    got: list[sfu.PeerEvent] = []
    pool.add_listener(got.append)
    return got


async def test_rooms_live_whole_on_the_least_loaded_worker_and_forward(
    pool: WorkerPool, events: list[sfu.PeerEvent]
) -> None:
    assert len(set(pool.addresses)) == 2 and pool.address == pool.addresses[0]
    xs, x_ports = await join(pool, "x", "x1", "x2", "x3")
    ys, y_ports = await join(pool, "y", "y1", "y2")
    zs: list[PeerClient] = []
    try:
        assert len(x_ports) == 1 and len(y_ports) == 1  # a room never spans workers
        assert x_ports != y_ports
        assert x_ports | y_ports == {port for _, port in pool.addresses}
        # A third room goes to the worker with fewer peers (y's: 2 against 3).
        zs, z_ports = await join(pool, "z", "z1")
        assert z_ports == y_ports
        await until(lambda: len(events) == 6, "six connected events")
        assert sorted((e.kind, e.peer_id, e.room_id) for e in events) == [
            ("connected", name, name[0]) for name in ("x1", "x2", "x3", "y1", "y2", "z1")
        ]
        await talk(pool, "x", xs[1], xs[0], xs[2])
        await talk(pool, "y", ys[0], ys[1])
        placed = [(w["placed_rooms"], w["placed_peers"]) for w in pool.stats()["workers"]]  # type: ignore[index]
        assert placed == [(1, 3), (2, 3)]

        def reported() -> bool:  # each worker pushes its Router's stats once a second
            return pool.stats().get("packets_forwarded") == 5 * 2 + 5 * 1

        await until(reported, "stats reports with the forwarded packets")
        stats = pool.stats()
        assert stats["rooms"] == 3 and stats["peers"] == 6 and stats["connected_peers"] == 6
        for worker in stats["workers"]:  # type: ignore[attr-defined]
            assert worker["alive"] and worker["state"] == "ready" and worker["restarts"] == 0
            assert worker["pid"] != os.getpid() and worker["report_age_s"] is not None
        assert isinstance(stats["spare_pid"], int)  # the warm spare
    finally:
        close(*xs, *ys, *zs)


async def test_set_speaker_and_remove_peer(pool: WorkerPool) -> None:
    (a,), _ = await join(pool, "x", "a")
    (b,), _ = await join(pool, "y", "b")
    c, a2, a3 = PeerClient("c"), PeerClient("a"), PeerClient("a")
    try:
        with pytest.raises(KeyError, match="no room 'nowhere'"):
            pool.set_speaker("nowhere", "a")
        with pytest.raises(KeyError, match="not in room"):
            pool.set_speaker("x", "b")  # b exists, but in another room (on another worker)
        pool.set_speaker("nowhere", None)  # like Router: clearing an unknown room is a no-op
        first = pool.worker_of("x")
        assert first is not None and first is not pool.worker_of("y")
        pool.remove_peer("a")
        pool.remove_peer("a")  # idempotent
        assert pool.worker_of("x") is None
        with pytest.raises(KeyError):
            pool.set_speaker("x", "a")
        # The freed worker is the least loaded again: a new room goes there, and the id is
        # free again too.
        assert answer_port(await c.join(pool, "z")) == first.address[1]
        assert answer_port(await a2.join(pool, "y")) == b.server[1]
        with pytest.raises(ValueError, match="already exists"):
            await a3.join(pool, "x")
        await until(lambda: [w.get("peers") for w in pool.stats()["workers"]] == [1, 2],  # type: ignore[attr-defined]
                    "the workers' own peer counts")
    finally:
        close(a, b, c, a2, a3)


async def test_a_listen_only_peer_s_permission_reaches_its_worker(pool: WorkerPool) -> None:
    """Answered here (a=sendonly), enforced there: the selection carries ``listen_only`` to
    the worker, which drops whatever the peer sends anyway and counts it."""
    (a,), _ = await join(pool, "x", "a")
    lee = PeerClient("lee")
    try:
        answer = await lee.join(pool, "x", listen_only=True)
        assert "a=sendonly" in answer.split("\r\n")
        await lee.connect()
        pool.set_speaker("x", "lee")  # signaling never does this; nothing leaks anyway
        for _ in range(3):
            lee.send_audio()
        assert await a.drain() == []
        await until(lambda: pool.stats().get("rtp_not_sending") == 3,
                    "the worker's report of lee's dropped packets")
        await talk(pool, "x", a, lee)  # and lee hears the room
    finally:
        close(a, lee)


async def test_bad_offers_are_refused_here_and_never_reach_a_worker(pool: WorkerPool) -> None:
    """Both workers are stopped: a refusal that needed one could not come back at all."""
    bad: dict[str, str] = {}
    for sdp in ("v=0\r\nthis is not sdp\r\n", SOME_OFFER.replace("m=audio", "m=video")):
        with pytest.raises(SdpError) as direct:
            select_audio(parse_offer(sdp))
        bad[sdp] = str(direct.value)
    with stopped(pool.workers[0].pid), stopped(pool.workers[1].pid):
        for sdp, reason in bad.items():
            for _ in range(50):
                with pytest.raises(sfu.OfferError) as refused:
                    await pool.negotiate("p", "x", sdp)
                assert type(refused.value) is sfu.OfferError and str(refused.value) == reason
        assert pool.worker_of("x") is None  # a refused first offer places no room
        assert all(w.alive for w in pool.workers)


async def test_an_event_of_a_removed_or_earlier_peer_is_never_delivered(
    pool: WorkerPool, events: list[sfu.PeerEvent]
) -> None:
    """The worker reports a peer lost after the parent removed it and opened another of the
    same id (a re-offer): the report is about the old peer and must not reach listeners."""
    (a, b), _ = await join(pool, "x", "a", "b")
    await until(lambda: len(events) == 2, "both connected")
    worker = pool.worker_of("x")
    assert worker is not None and worker.process is not None
    channel_socket = worker.process.channel._transport.get_extra_info("socket")  # type: ignore[union-attr]
    again = PeerClient("a")
    try:
        for client in (a, b):
            assert client.dtls is not None
            for datagram in client.dtls.close():  # DTLS close_notify: the worker drops them
                client.send(datagram)
        # Block this loop until the worker has written both "closed" events, unread.
        readable, _, _ = select.select([channel_socket], [], [], 10)
        assert readable, "the worker never reported the closed peers"
        time.sleep(0.2)  # let the second event follow the first into the socket
        pool.remove_peer("b")  # removed by the caller: its report is stale
        pool.remove_peer("a")
        await again.open()
        answer = await pool.negotiate("a", "x", again.offer())  # a new peer "a"
        again.take_answer(answer)
        await again.connect()
        await until(lambda: len(events) == 3, "the new a's connected event")
        await asyncio.sleep(0.1)  # anything else would have been delivered by now
        assert [(e.kind, e.peer_id) for e in events] == [
            ("connected", "a"), ("connected", "b"), ("connected", "a")
        ]
    finally:
        close(a, b, again)


async def test_close_stops_every_process_and_later_calls_fail_cleanly() -> None:
    pool = await WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=0))
    await until(lambda: pool.stats()["spare_ready"], "the warm spare")
    assert len(worker_children()) == 2  # the worker and the spare
    await pool.close()
    assert worker_children() == []
    with pytest.raises(WorkerGone):
        await pool.negotiate("a", "x", SOME_OFFER)
    pool.remove_peer("a")
    pool.set_speaker("x", None)
    await pool.close()  # idempotent


async def test_start_refuses_a_port_in_use_and_leaves_nothing_running() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(OSError, match="media worker 0"):
            await WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=port))
        # port - 1 and port: the second worker cannot bind; the first was stopped too.
        with pytest.raises(OSError, match="media worker 1"):
            await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=port - 1))
        assert worker_children() == []
    finally:
        blocker.close()
    with pytest.raises(ValueError):
        await WorkerPool.start(0, sfu.RouterConfig(host="127.0.0.1", port=0))
    with pytest.raises(ValueError):
        await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=65535))
    assert worker_children() == []


async def test_a_slow_request_times_out_alone() -> None:
    """A stopped worker fails the one request sent to it; another worker's requests, and the
    caller's loop, go on meanwhile; once resumed, the late open is undone there."""
    pool = await WorkerPool.start(
        2, sfu.RouterConfig(host="127.0.0.1", port=0), PoolTuning(request_timeout=1.5)
    )
    clients: list[PeerClient] = []
    try:
        (x1,), _ = await join(pool, "x", "x1")
        (y1,), _ = await join(pool, "y", "y1")
        clients += [x1, y1]
        slow = pool.worker_of("x")
        assert slow is not None
        with stopped(slow.pid):
            late = PeerClient("late")
            clients.append(late)
            await late.open()
            pending = asyncio.ensure_future(pool.negotiate("late", "x", late.offer()))
            # Meanwhile the other worker serves a new member who connects and hears y1.
            (y2,), _ = await join(pool, "y", "y2")
            clients.append(y2)
            assert not pending.done()
            await talk(pool, "y", y1, y2)
            assert pool.stats()["workers"][slow.index]["alive"]  # type: ignore[index]
            with pytest.raises(WorkerGone, match="did not answer within 1.5 s"):
                await pending
            # No trace in the parent: x1 alone is placed there.
            assert pool.stats()["workers"][slow.index]["placed_peers"] == 1  # type: ignore[index]
        assert pool.worker_of("x") is slow and slow.alive
        # The late open ran after all, and the pool's undo right after it.
        await until(lambda: pool.stats()["workers"][slow.index].get("peers") == 1,  # type: ignore[index]
                    "the stopped worker's own count back to x1 alone")
        again = PeerClient("late")
        clients.append(again)
        assert answer_port(await again.join(pool, "x")) == slow.address[1]
    finally:
        close(*clients)
        await pool.close()
