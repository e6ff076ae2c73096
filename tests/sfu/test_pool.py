"""The worker pool with two real worker processes on 127.0.0.1, driven by synthetic peers.

Shows that rooms are placed whole on one worker each (different UDP ports in the answers),
that audio is forwarded in each room through the pool, that events, errors and removals come
back through the parent's synchronous API, and that a killed worker costs only its own rooms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from collections.abc import AsyncIterator, Callable

import pytest

import sfu
from sfu.pool import WorkerGone, WorkerPool

from .peerclient import PeerClient


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=0))
    yield p
    await p.close()
    for worker in p.workers:
        assert not worker.process.is_alive()


@pytest.fixture
def events(pool: WorkerPool) -> list[sfu.PeerEvent]:
    got: list[sfu.PeerEvent] = []
    pool.add_listener(got.append)
    return got


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (bounded) for something another process does; fail with ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _answer_port(answer: str) -> int:
    match = re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", answer)
    assert match is not None
    return int(match.group(1))


async def _join(pool: WorkerPool, room: str, *names: str) -> tuple[list[PeerClient], set[int]]:
    clients, ports = [], set()
    for name in names:
        client = PeerClient(name)
        ports.add(_answer_port(await client.join(pool, room)))
        await client.connect()
        assert client.srtp is not None, f"{name} did not connect"
        clients.append(client)
    return clients, ports


async def _talk(pool: WorkerPool, room: str, talker: PeerClient, *listeners: PeerClient) -> None:
    """Give ``talker`` the floor, send five packets, check every listener gets exactly them."""
    pool.set_speaker(room, talker.name)
    stats = pool.room_stats(room)  # request/reply on the same pipe: set_speaker is applied
    assert stats is not None and stats["speaker"] == talker.name
    sent = [talker.send_audio() for _ in range(5)]
    for listener in listeners:
        got = await listener.drain()
        assert [p.payload for p in got] == sent
        assert all(p.csrcs == [talker.ssrc] for p in got)
    assert await talker.drain() == []  # the talker never hears itself


def _close(*clients: PeerClient) -> None:
    for client in clients:
        client.close()


async def test_rooms_live_on_different_workers_and_forward(
    pool: WorkerPool, events: list[sfu.PeerEvent]
) -> None:
    assert len(set(pool.addresses)) == 2 and pool.address == pool.addresses[0]
    xs, x_ports = await _join(pool, "x", "x1", "x2", "x3")
    ys, y_ports = await _join(pool, "y", "y1", "y2")
    try:
        assert len(x_ports) == 1 and len(y_ports) == 1  # a room never spans workers
        assert x_ports != y_ports
        assert x_ports | y_ports == {port for _, port in pool.addresses}
        await _until(lambda: len(events) == 5, "five connected events")
        assert sorted((e.kind, e.peer_id, e.room_id) for e in events) == [
            ("connected", name, name[0]) for name in ("x1", "x2", "x3", "y1", "y2")
        ]
        await _talk(pool, "x", xs[1], xs[0], xs[2])
        await _talk(pool, "y", ys[0], ys[1])
        stats = pool.stats()
        assert stats["rooms"] == 2 and stats["peers"] == 5 and stats["connected_peers"] == 5
        assert stats["packets_forwarded"] == 5 * 2 + 5 * 1
        assert [w["peers"] for w in stats["workers"]] == [3, 2]  # type: ignore[index]
        peer = pool.peer_stats("y2")
        assert peer is not None and peer["connected"] and peer["room_id"] == "y"
        assert pool.peer_stats("nobody") is None and pool.room_stats("nowhere") is None
    finally:
        _close(*xs, *ys)


async def test_set_speaker_errors_and_none(pool: WorkerPool) -> None:
    (a,), _ = await _join(pool, "x", "a")
    (b,), _ = await _join(pool, "y", "b")
    try:
        with pytest.raises(KeyError, match="no room 'nowhere'"):
            pool.set_speaker("nowhere", "a")
        with pytest.raises(KeyError, match="not in room"):
            pool.set_speaker("x", "b")  # b exists, but in another room (on another worker)
        pool.set_speaker("nowhere", None)  # like Router: clearing an unknown room is a no-op
        pool.set_speaker("x", "a")
        pool.set_speaker("x", None)
        stats = pool.room_stats("x")
        assert stats is not None and stats["speaker"] is None and stats["bursts"] == 2
    finally:
        _close(a, b)


async def test_remove_peer_frees_the_room(pool: WorkerPool) -> None:
    a = PeerClient("a")
    b = PeerClient("b")
    c = PeerClient("c")
    try:
        port_a = _answer_port(await a.join(pool, "x"))
        port_b = _answer_port(await b.join(pool, "y"))
        assert port_a != port_b
        first = pool.worker_of("x")
        assert first is not None and first.peers == 1
        pool.remove_peer("a")
        pool.remove_peer("a")  # idempotent
        assert pool.worker_of("x") is None and pool.room_stats("x") is None
        assert pool.peer_stats("a") is None
        stats = pool.stats()  # a request/reply per worker: each has applied the removal
        assert stats["rooms"] == 1 and stats["peers"] == 1
        assert [w["rooms"] for w in stats["workers"]] == [0, 1]  # type: ignore[index]
        with pytest.raises(KeyError):
            pool.set_speaker("x", "a")
        # the freed worker is the least loaded again: a new room goes there
        assert _answer_port(await c.join(pool, "z")) == port_a
        # the id is free again too
        assert _answer_port(await PeerClient("a").join(pool, "y")) == port_b
    finally:
        _close(a, b, c)


async def test_offer_errors_come_back_with_their_type_and_message(pool: WorkerPool) -> None:
    bad_offer = "v=0\r\nthis is not sdp\r\n"
    local = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    try:
        with pytest.raises(sfu.OfferError) as direct:
            local.add_peer("p", "x", bad_offer)
    finally:
        await local.close()
    with pytest.raises(sfu.OfferError) as pooled:
        pool.add_peer("p", "x", bad_offer)
    assert type(pooled.value) is sfu.OfferError
    assert str(pooled.value) == str(direct.value) != ""
    assert pool.worker_of("x") is None  # a failed first offer places no room
    assert pool.stats()["peers"] == 0
    a = PeerClient("a")
    try:
        await a.join(pool, "x")
        with pytest.raises(ValueError, match="already exists"):
            await PeerClient("a").join(pool, "y")
    finally:
        a.close()


async def test_killed_worker_loses_its_peers_and_the_other_keeps_working(
    pool: WorkerPool, events: list[sfu.PeerEvent]
) -> None:
    xs, _ = await _join(pool, "x", "x1", "x2")
    ys, _ = await _join(pool, "y", "y1", "y2")
    try:
        await _until(lambda: len(events) == 4, "four connected events")
        doomed = pool.worker_of("x")
        survivor = pool.worker_of("y")
        assert doomed is not None and survivor is not None and doomed is not survivor
        doomed.process.kill()

        def lost() -> list[sfu.PeerEvent]:
            return [e for e in events if e.kind == "consent_lost"]

        await _until(lambda: len(lost()) == 2, "consent_lost for the dead worker's peers")
        assert sorted((e.peer_id, e.room_id, e.reason) for e in lost()) == [
            ("x1", "x", "media worker exited"),
            ("x2", "x", "media worker exited"),
        ]
        assert not doomed.alive and pool.worker_of("x") is None
        await _talk(pool, "y", ys[1], ys[0])
        # new rooms (even the lost one) go to the survivor; the dead worker is never used again
        z = PeerClient("z")
        xs.append(z)
        assert _answer_port(await z.join(pool, "x")) == survivor.address[1]
        stats = pool.stats()
        alive = [w["alive"] for w in stats["workers"]]  # type: ignore[attr-defined]
        assert alive == [w is survivor for w in pool.workers]
        assert stats["peers"] == 3
        with pytest.raises(KeyError):
            pool.set_speaker("x", "x1")
        await asyncio.sleep(0.05)
        assert len(lost()) == 2  # each loss reported once
    finally:
        _close(*xs, *ys)


async def test_all_workers_dead_means_a_clean_offer_error(pool: WorkerPool) -> None:
    for worker in pool.workers:
        worker.process.kill()
    await _until(lambda: not any(w.alive for w in pool.workers), "both deaths noticed")
    with pytest.raises(WorkerGone, match="no media worker"):
        pool.add_peer("a", "x", "v=0\r\n")


async def test_start_refuses_a_port_in_use_and_leaves_nothing_running() -> None:
    first = await WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=0))
    try:
        port = first.address[1]
        with pytest.raises(OSError):
            await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=port))
        # the failed pool's other worker (port + 1 bound fine) was stopped too
        media = [p.pid for p in multiprocessing.active_children() if p.name.startswith("walkie-media")]
        assert media == [first.workers[0].process.pid]
        with pytest.raises(ValueError):
            await WorkerPool.start(0, sfu.RouterConfig(host="127.0.0.1", port=0))
        with pytest.raises(ValueError):
            await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=65535))
    finally:
        await first.close()
    assert not first.workers[0].process.is_alive()


async def test_events_read_during_a_call_are_booked_at_once_and_delivered_after() -> None:
    """Peers that never connect lose consent in the worker while the parent is busy: the
    events wait in the pipe, a control call reads them, and they reach listeners afterwards."""
    config = sfu.RouterConfig(host="127.0.0.1", port=0, consent_timeout=0.3)
    pool = await WorkerPool.start(2, config)
    events: list[sfu.PeerEvent] = []
    pool.add_listener(events.append)
    clients = [PeerClient(name) for name in ("a1", "a2", "b")]
    try:
        await clients[0].join(pool, "x")
        await clients[1].join(pool, "x")
        await clients[2].open()
        worker = pool.worker_of("x")
        assert worker is not None
        # Block this loop (so its pipe reader cannot run) until the worker has written.
        assert worker.conn.poll(5.0), "the worker never reported the lost peers"
        answer = pool.add_peer("b", "x", clients[2].offer())  # reads both events, then its reply
        assert "a=ice-ufrag:" in answer
        assert events == []  # not delivered from inside the call
        assert pool.worker_of("x") is worker  # a1, a2 gone, b placed on the same worker
        assert pool.peer_stats("a1") is None and pool.peer_stats("b") is not None
        await _until(lambda: len(events) == 2, "the queued events")
        assert [(e.kind, e.peer_id) for e in events] == [
            ("consent_lost", "a1"),
            ("consent_lost", "a2"),
        ]
        assert pool.stats()["peers"] == 1
    finally:
        _close(*clients)
        await pool.close()


async def test_a_worker_that_does_not_answer_gives_an_error_not_a_hang(
    pool: WorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    import sfu.pool

    monkeypatch.setattr(sfu.pool, "CALL_TIMEOUT", 0.3)
    a = PeerClient("a")
    await a.open()
    worker = pool.workers[0]
    assert worker.process.pid is not None
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(WorkerGone, match="did not answer"):
            pool.add_peer("a", "x", a.offer())
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    try:
        assert worker.alive and pool.worker_of("x") is None
        # The late add ran, the pool's undo followed it, and its stale reply is skipped.
        stats = pool.stats()
        assert stats["workers"][0]["peers"] == 0  # type: ignore[index]
        assert _answer_port(await a.join(pool, "x")) == worker.address[1]
    finally:
        a.close()
