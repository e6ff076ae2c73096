"""Workers that die, hang or keep crashing, with real processes on 127.0.0.1.

A killed worker is replaced on its own UDP port and every peer it had gets a ``reset``
event; a stopped worker whose channel fills is given up without the caller ever blocking;
requests for a restarting worker wait for it; a worker that cannot start backs off.
"""

from __future__ import annotations

import logging
import os
import signal

import pytest

import sfu
from sfu.pool import RESET_REASON, PoolTuning, WorkerGone, WorkerPool

from .peerclient import PeerClient
from .poolkit import close, join, kill_and_take_port, stopped, talk, until, worker_children


def resets(events: list[sfu.PeerEvent]) -> list[tuple[str, str, str]]:
    return sorted((e.peer_id, e.room_id, e.reason) for e in events if e.kind == "reset")


async def test_kill_9_restarts_the_worker_on_its_port_and_resets_its_peers(
    pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[sfu.PeerEvent] = []
    pool.add_listener(events.append)
    caplog.set_level(logging.WARNING, logger="walkie.sfu.pool")
    xs, _ = await join(pool, "x", "a", "b")
    ys, _ = await join(pool, "y", "c", "d")
    fresh: list[PeerClient] = []
    try:
        doomed, survivor = pool.worker_of("x"), pool.worker_of("y")
        assert doomed is not None and survivor is not None and doomed is not survivor
        await until(lambda: pool.stats()["spare_ready"], "the warm spare")
        port, old_pid, spare = doomed.address[1], doomed.pid, pool.stats()["spare_pid"]
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)

        await until(lambda: len(resets(events)) == 2, "reset events for a and b")
        assert resets(events) == [("a", "x", RESET_REASON), ("b", "x", RESET_REASON)]
        await until(lambda: doomed.alive, "the restarted worker")
        assert doomed.address[1] == port and doomed.pid not in (None, old_pid)
        assert doomed.restarts == 1 and doomed.last_exit == "killed by SIGKILL"
        entry = pool.stats()["workers"][doomed.index]  # type: ignore[index]
        assert entry["restarts"] == 1 and entry["state"] == "ready"
        print(f"\nrestart after kill -9: {entry['last_restart_ms']} ms "
              f"(spare pid {spare} -> worker pid {entry['pid']})")
        assert any("restarted in" in r.getMessage() for r in caplog.records)
        assert pool.worker_of("x") is None  # its rooms were forgotten with their peers
        with pytest.raises(KeyError):
            pool.set_speaker("x", "a")
        pool.remove_peer("a")  # gone already: a no-op

        # The other worker's room never noticed.
        await talk(pool, "y", ys[0], ys[1])
        # The same members offer again (same ids): the least-loaded worker is the new one,
        # on the old port, and audio flows there.
        again, ports = await join(pool, "x", "a", "b")
        fresh += again
        assert ports == {port}
        await talk(pool, "x", again[1], again[0])
        assert resets(events) == [("a", "x", RESET_REASON), ("b", "x", RESET_REASON)]
        await until(lambda: pool.stats()["spare_pid"] not in (None, spare), "a new warm spare")
    finally:
        close(*xs, *ys, *fresh)


async def test_an_offer_waits_for_a_restarting_worker() -> None:
    """Without a warm spare a restart takes a whole process start: an offer that arrives
    meanwhile waits for it, then succeeds."""
    pool = await WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=0),
                                  PoolTuning(spare=False))
    a = PeerClient("a")
    try:
        (worker,) = pool.workers
        os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
        await until(lambda: not worker.alive, "the death noticed")
        assert worker.state == "restarting"
        await a.join(pool, "x")  # waits, then is answered by the new process
        await a.connect()
        assert a.srtp is not None and worker.alive and worker.restarts == 1
    finally:
        a.close()
        await pool.close()
    assert worker_children() == []


async def test_a_stopped_worker_whose_channel_fills_is_replaced_and_never_blocks() -> None:
    pool = await WorkerPool.start(
        2, sfu.RouterConfig(host="127.0.0.1", port=0), PoolTuning(max_buffered=64 * 1024)
    )
    events: list[sfu.PeerEvent] = []
    pool.add_listener(events.append)
    clients: list[PeerClient] = []
    try:
        xs, _ = await join(pool, "x", "a", "b")
        ys, _ = await join(pool, "y", "c", "d")
        clients += xs + ys
        slow = pool.worker_of("x")
        assert slow is not None
        pid = slow.pid
        with stopped(pid):  # SIGKILL (the pool's) also ends a stopped process
            calls = 0
            # One-way messages pile up for a worker that reads nothing: each call returns
            # at once, until the bound gives the worker up (then room x is forgotten).
            while pool.worker_of("x") is not None:
                assert calls < 1_000_000, "the channel bound never tripped"
                pool.set_speaker("x", "a" if calls % 2 else None)
                calls += 1
            assert calls > 100
            assert not slow.alive
            assert resets(events) == []  # delivered from the loop, never from inside a call
            await until(lambda: len(resets(events)) == 2, "reset events for a and b")
        await until(lambda: slow.alive, "the replacement worker")
        assert slow.pid != pid and slow.restarts == 1
        assert "reader that does not read" in str(slow.last_exit)
        await talk(pool, "y", ys[0], ys[1])  # the other worker never noticed
        again, _ = await join(pool, "x", "a", "b")
        clients += again
        await talk(pool, "x", again[0], again[1])
    finally:
        close(*clients)
        await pool.close()
    assert worker_children() == []


async def test_a_worker_that_cannot_start_backs_off_and_recovers() -> None:
    """Its port is taken (by this test, right after the kill): every start fails, further
    and further apart; meanwhile new rooms go to the other worker."""
    tuning = PoolTuning(backoff_first=0.1, backoff_max=0.4)
    pool = await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=0), tuning)
    doomed = pool.workers[0]
    port = doomed.address[1]
    thief = kill_and_take_port(doomed.pid, port)
    z = PeerClient("z")
    try:
        await until(lambda: doomed.failures >= 3, "three failed starts in a row")
        # No spin: the starts are spaced by the back-off (0.1, 0.2, 0.4, 0.4 ... s).
        assert doomed.failures < 20
        assert "could not start" in str(doomed.last_exit)
        assert "in use" in str(doomed.last_exit)
        entry = pool.stats()["workers"][0]  # type: ignore[index]
        assert entry["state"] in ("backoff", "restarting") and not entry["alive"]
        await until(lambda: doomed.state == "backoff", "the back-off state")
        # A new room goes to the worker that works.
        await z.join(pool, "z")
        assert pool.worker_of("z") is pool.workers[1]
        thief.close()
        await until(lambda: doomed.alive, "the recovered worker", timeout=15)
        assert doomed.address[1] == port and doomed.restarts == 1
    finally:
        thief.close()
        z.close()
        await pool.close()
    assert worker_children() == []


async def test_with_every_worker_down_an_offer_fails_cleanly_after_its_timeout() -> None:
    pool = await WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=0),
                                  PoolTuning(request_timeout=0.5, backoff_first=30.0))
    (worker,) = pool.workers
    thief = kill_and_take_port(worker.pid, worker.address[1])
    a = PeerClient("a")
    try:
        await until(lambda: worker.state == "backoff", "the back-off after a failed restart")
        await a.open()
        with pytest.raises(WorkerGone, match="media worker 0 is not running"):
            await pool.negotiate("a", "x", a.offer())
        assert pool.worker_of("x") is None
    finally:
        thief.close()
        a.close()
        await pool.close()
