"""Several media workers behind one synchronous control API: ``walkie serve --workers N``.

Why: one Python process forwards about 130 rooms of 15 on one core. A server with N cores runs
N worker processes, each a real :class:`~sfu.router.Router` on its own UDP port and its own
event loop, each owning WHOLE rooms (a room never spans workers: its fan-out stays in one
process and needs no cross-process hop per packet).

The signaling hub calls the control API synchronously and never awaits, so
:class:`WorkerPool` offers exactly the Router's methods: ``add_peer`` sends the request down
the worker's pipe and blocks (bounded) for the matching reply; ``remove_peer`` and
``set_speaker`` are one-way (a pipe preserves order, so a later request/reply on the same
worker is a barrier). Events come back on the same pipes and reach listeners as real
:class:`~sfu.router.PeerEvent` objects, in the order each worker emitted them.

Only control messages cross the pipe (a few per join, leave and floor change), never media.

Wire format on each pipe (pickled tuples, both directions trusted: we spawned the child):

- parent → worker: ``("add", req, peer, room, sdp)``, ``("peer_stats", req, peer)``,
  ``("room_stats", req, room)``, ``("stats", req)``, ``("close", req)``,
  ``("remove", peer)``, ``("speaker", room, peer|None)``.
- worker → parent: ``("ready", (ip, port))`` or ``("failed", type name, message)`` once at
  start; ``("reply", req, ok, value | (type name, message))``;
  ``("event", kind, peer, room, reason)``.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import itertools
import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .router import OfferError, PeerEvent, Router, RouterConfig

log = logging.getLogger("walkie.sfu.pool")

#: Longest a control call waits for its worker's reply. A worker that cannot answer in this
#: long cannot forward audio either; the caller gets an error instead of a hung hub.
CALL_TIMEOUT = 5.0
#: Longest a worker may take to import, make its certificate and bind its port.
START_TIMEOUT = 30.0
#: Longest ``close()`` waits for a worker to say goodbye to its peers and exit.
CLOSE_TIMEOUT = 5.0

#: Event kinds after which the worker's Router has already forgotten the peer.
_PEER_GONE = frozenset({"consent_lost", "dtls_failed", "closed"})

_ERRORS: dict[str, type[Exception]] = {
    "OfferError": OfferError,
    "ValueError": ValueError,
    "KeyError": KeyError,
}


def _rebuild_error(name: str, message: str) -> Exception:
    """The parent-side exception for a worker's ``(type name, message)``.

    The Router's documented errors keep their type (the hub catches ``ValueError`` and shows
    ``str()`` to the client); anything else is a bug in the worker and stays loud.
    """
    cls = _ERRORS.get(name)
    if cls is not None:
        return cls(message)
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, OSError):
        return builtin(message)  # e.g. a port in use at start: the caller reports OSError
    return RuntimeError(f"media worker raised {name}: {message}")


def _describe(exc: BaseException) -> tuple[str, str]:
    """``(type name, message)`` for the pipe; KeyError's ``str()`` would add quotes."""
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return type(exc).__name__, message


class WorkerGone(OfferError):
    """The media worker for this request exited or did not answer in time.

    A subclass of :class:`OfferError` (so of ``ValueError``) on purpose: the hub already turns
    those into a clean ``bad_offer`` answer for the client instead of crashing a session.
    """


class MediaWorker:
    """The parent's handle on one worker process: its pipe, its address and its load."""

    __slots__ = ("address", "alive", "conn", "index", "peers", "process")

    def __init__(self, index: int, process: BaseProcess, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.address: tuple[str, int] = ("", 0)
        self.alive = False
        #: peers placed on this worker (the placement metric: fewest peers wins a new room)
        self.peers = 0

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<MediaWorker {self.index} {state} udp {self.address[0]}:{self.address[1]}>"


@dataclasses.dataclass(slots=True)
class _Placement:
    """Where a room lives and who is in it (parent-side bookkeeping)."""

    worker: MediaWorker
    members: set[str]


class WorkerPool:
    """N media worker processes with the synchronous control API of :class:`Router`.

    Create it with :meth:`start`; use it where a Router would go (``add_peer``,
    ``remove_peer``, ``set_speaker``, ``peer_stats``, ``room_stats``, ``stats``,
    ``add_listener``, ``address``, ``announced_ip``, ``await close()``).

    One difference from an in-process Router, made on purpose: after ``remove_peer(p)`` no
    event for ``p`` is delivered, even one the worker emitted before it saw the removal
    (stale events would otherwise reach a hub that already reused the member id).
    """

    def __init__(self, config: RouterConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        self.workers: list[MediaWorker] = []
        self._rooms: dict[str, _Placement] = {}
        self._peer_room: dict[str, str] = {}
        self._listeners: list[Callable[[PeerEvent], None]] = []
        self._pending: deque[PeerEvent] = deque()
        self._flush_scheduled = False
        self._flushing = False
        self._ids = itertools.count(1)
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def start(cls, workers: int, config: RouterConfig) -> WorkerPool:
        """Spawn ``workers`` processes; worker i binds ``config.port + i`` (0: ephemeral each).

        Raises ``ValueError`` for a bad count or port range and ``OSError`` (e.g. port in use)
        if a worker cannot bind; nothing is left running on error.
        """
        if workers < 1:
            raise ValueError(f"need at least one media worker, not {workers}")
        configs = [
            dataclasses.replace(config, port=config.port + i if config.port else 0)
            for i in range(workers)
        ]  # RouterConfig checks each port's range
        pool = cls(config, asyncio.get_running_loop())
        ctx = multiprocessing.get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        try:
            for i, cfg in enumerate(configs):
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                process = ctx.Process(
                    target=worker_main,
                    args=(child_conn, cfg, level),
                    name=f"walkie-media-{i}",
                    daemon=True,  # never outlive the parent, whatever happens to it
                )
                pool.workers.append(MediaWorker(i, process, parent_conn))
                process.start()
                child_conn.close()  # ours must close, or a dead worker never reads as EOF
            replies = await asyncio.gather(
                *(asyncio.to_thread(_await_ready, w.conn, START_TIMEOUT) for w in pool.workers)
            )
            for worker, reply in zip(pool.workers, replies):
                if reply[0] != "ready":
                    raise _rebuild_error(reply[1], f"media worker {worker.index}: {reply[2]}")
                worker.address = (reply[1][0], reply[1][1])
                worker.alive = True
                pool._loop.add_reader(worker.conn.fileno(), pool._on_readable, worker)
        except BaseException:
            await pool.close()
            raise
        log.info("%d media workers on %s", workers,
                 ", ".join(f"{w.address[0]}:{w.address[1]}" for w in pool.workers))
        return pool

    async def close(self) -> None:
        """Ask every worker to close its Router (DTLS goodbyes), then stop and reap them all."""
        self._closed = True
        for worker in self.workers:
            if worker.alive:
                self._loop.remove_reader(worker.conn.fileno())
                worker.alive = False
            if worker.process.pid is not None and worker.process.is_alive():
                try:  # also a worker that started while a sibling failed: it is serving
                    worker.conn.send(("close", 0))
                except OSError:
                    pass
        await asyncio.gather(*(asyncio.to_thread(_reap, w) for w in self.workers))
        for worker in self.workers:
            worker.conn.close()
        self._rooms.clear()
        self._peer_room.clear()
        self._pending.clear()

    # ------------------------------------------------------------------ where things are

    @property
    def address(self) -> tuple[str, int]:
        """The first worker's UDP address (what a single Router's ``address`` would be)."""
        return self.workers[0].address

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [w.address for w in self.workers]

    @property
    def announced_ip(self) -> str:
        return self.config.announced_ip or self.address[0]

    def worker_of(self, room_id: str) -> MediaWorker | None:
        """The worker that owns ``room_id`` now, or None if the room has no peer."""
        placement = self._rooms.get(room_id)
        return None if placement is None else placement.worker

    # ------------------------------------------------------------------ control API

    def add_listener(self, callback: Callable[[PeerEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`PeerEvent` of every worker (loop thread)."""
        self._listeners.append(callback)

    def add_peer(self, peer_id: str, room_id: str, offer_sdp: str) -> str:
        """Like :meth:`Router.add_peer`, on the room's worker (a new room: the least loaded).

        Raises OfferError (WorkerGone if the worker exited or did not answer) or ValueError.
        """
        if peer_id in self._peer_room:
            raise ValueError(f"peer {peer_id!r} already exists")
        placement = self._rooms.get(room_id)
        worker = placement.worker if placement is not None else self._least_loaded()
        try:
            answer = self._call(worker, "add", peer_id, room_id, offer_sdp)
        except WorkerGone:
            if worker.alive:  # timed out: if the add lands later, undo it (pipe keeps order)
                self._send(worker, ("remove", peer_id))
            raise
        placement = self._rooms.get(room_id)  # may have gone while we waited (worker events)
        if placement is None:
            placement = self._rooms[room_id] = _Placement(worker, set())
        placement.members.add(peer_id)
        self._peer_room[peer_id] = room_id
        worker.peers += 1
        return answer

    def remove_peer(self, peer_id: str) -> None:
        """Forget a peer (idempotent). Its room's placement goes with its last member."""
        room_id = self._peer_room.get(peer_id)
        if room_id is None:
            return
        worker = self._rooms[room_id].worker
        self._forget(peer_id)
        self._send(worker, ("remove", peer_id))

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        """Like :meth:`Router.set_speaker`; KeyError for a room or peer the pool does not know."""
        placement = self._rooms.get(room_id)
        if placement is None:
            if peer_id is None:
                return
            raise KeyError(f"no room {room_id!r}")
        if peer_id is not None and peer_id not in placement.members:
            raise KeyError(f"peer {peer_id!r} is not in room {room_id!r}")
        self._send(placement.worker, ("speaker", room_id, peer_id))

    def peer_stats(self, peer_id: str) -> dict[str, object] | None:
        """Like :meth:`Router.peer_stats` (None if unknown); WorkerGone if its worker fails."""
        room_id = self._peer_room.get(peer_id)
        if room_id is None:
            return None
        return self._call(self._rooms[room_id].worker, "peer_stats", peer_id)

    def room_stats(self, room_id: str) -> dict[str, object] | None:
        """Like :meth:`Router.room_stats`; a request/reply, so also a barrier for that worker."""
        placement = self._rooms.get(room_id)
        if placement is None:
            return None
        return self._call(placement.worker, "room_stats", room_id)

    def stats(self) -> dict[str, object]:
        """The Router's counters summed over live workers, plus each worker's own in ``workers``."""
        per_worker: list[dict[str, object]] = []
        total: dict[str, object] = {
            "address": list(self.address),
            "announced_ip": self.announced_ip,
        }
        for worker in self.workers:
            entry: dict[str, object] = {"index": worker.index, "alive": worker.alive}
            if worker.alive:
                try:
                    entry.update(self._call(worker, "stats"))
                except WorkerGone as exc:
                    entry["alive"] = worker.alive
                    entry["error"] = str(exc)
                for key, value in entry.items():
                    if isinstance(value, int) and not isinstance(value, bool) and key != "index":
                        total[key] = total.get(key, 0) + value  # type: ignore[operator]
            else:
                entry["address"] = list(worker.address)
            per_worker.append(entry)
        total["workers"] = per_worker
        return total

    # ------------------------------------------------------------------ pipes

    def _least_loaded(self) -> MediaWorker:
        live = [w for w in self.workers if w.alive]
        if not live:
            raise WorkerGone("no media worker is running")
        return min(live, key=lambda w: (w.peers, w.index))

    def _send(self, worker: MediaWorker, message: tuple[object, ...]) -> bool:
        """One message down a worker's pipe; a broken pipe means the worker is gone."""
        if not worker.alive:
            return False
        try:
            worker.conn.send(message)
        except OSError:
            self._worker_died(worker)
            return False
        return True

    def _call(self, worker: MediaWorker, kind: str, *args: object) -> Any:
        """Send a request and block (at most CALL_TIMEOUT) for its reply.

        Events read meanwhile are booked at once (so a peer lost before the reply is not
        mistaken for the new one) and delivered from the loop afterwards, in order.
        """
        req = next(self._ids)
        if not self._send(worker, (kind, req, *args)):
            raise WorkerGone(f"media worker {worker.index} exited")
        conn = worker.conn
        deadline = time.monotonic() + CALL_TIMEOUT
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not conn.poll(remaining):
                    raise WorkerGone(
                        f"media worker {worker.index} did not answer within {CALL_TIMEOUT:g} s"
                    )
                message = conn.recv()
                if message[0] == "event":
                    self._take_event(worker, message)
                elif message[0] == "reply" and message[1] == req:
                    _, _, ok, value = message
                    if ok:
                        return value
                    raise _rebuild_error(*value)
                # else: the reply to an earlier request that timed out; nobody waits for it
        except (EOFError, OSError):
            self._worker_died(worker)
            raise WorkerGone(f"media worker {worker.index} exited") from None
        finally:
            if self._pending:
                self._schedule_flush()

    def _on_readable(self, worker: MediaWorker) -> None:
        """The loop's reader for one worker's pipe: events, or EOF when the worker died."""
        conn = worker.conn
        try:
            while worker.alive and conn.poll():
                message = conn.recv()
                if message[0] == "event":
                    self._take_event(worker, message)
        except (EOFError, OSError):
            self._worker_died(worker)
        self._flush()

    def _take_event(self, worker: MediaWorker, message: tuple[object, ...]) -> None:
        _, kind, peer_id, room_id, reason = message
        assert isinstance(kind, str) and isinstance(peer_id, str) and isinstance(room_id, str)
        placement = self._rooms.get(room_id)
        if (
            placement is None
            or placement.worker is not worker
            or peer_id not in placement.members
        ):
            return  # about a peer the parent already removed: stale
        if kind in _PEER_GONE:
            self._forget(peer_id)
        self._pending.append(PeerEvent(kind, peer_id, room_id, str(reason)))

    def _forget(self, peer_id: str) -> None:
        room_id = self._peer_room.pop(peer_id)
        placement = self._rooms[room_id]
        placement.members.discard(peer_id)
        placement.worker.peers -= 1
        if not placement.members:
            del self._rooms[room_id]

    def _worker_died(self, worker: MediaWorker) -> None:
        """Tell listeners every peer of a dead worker is lost; never place a room on it again."""
        if not worker.alive:
            return
        worker.alive = False
        self._loop.remove_reader(worker.conn.fileno())
        if self._closed:
            return
        log.error("media worker %d exited (exit code %s)", worker.index, worker.process.exitcode)
        for room_id, placement in list(self._rooms.items()):
            if placement.worker is not worker:
                continue
            for peer_id in sorted(placement.members):
                self._forget(peer_id)
                self._pending.append(
                    PeerEvent("consent_lost", peer_id, room_id, "media worker exited")
                )
        self._schedule_flush()

    # ------------------------------------------------------------------ events

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Deliver queued events in arrival order (never from inside a control call)."""
        self._flush_scheduled = False
        if self._flushing:
            return  # the outer flush delivers what was queued meanwhile
        self._flushing = True
        try:
            while self._pending:
                event = self._pending.popleft()
                if self._closed:
                    continue
                for callback in list(self._listeners):
                    try:
                        callback(event)
                    except Exception:  # one bad listener must not stop the rest
                        log.exception("event listener failed for %s", event)
        finally:
            self._flushing = False


# ---------------------------------------------------------------------- parent-side helpers


def _await_ready(conn: Connection, timeout: float) -> tuple[object, ...]:
    """The worker's first message, in a thread (start is async; this must not block the loop)."""
    try:
        if not conn.poll(timeout):
            return ("failed", "TimeoutError", f"not ready within {timeout:g} s")
        return conn.recv()
    except (EOFError, OSError):
        return ("failed", "RuntimeError", "exited during start")


def _reap(worker: MediaWorker) -> None:
    """Wait for the close reply, then the exit; escalate to terminate and kill. Bounded."""
    process = worker.process
    if process.pid is None:  # never started
        return
    deadline = time.monotonic() + CLOSE_TIMEOUT
    try:
        while process.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not worker.conn.poll(remaining):
                break
            if worker.conn.recv()[0] == "reply":
                break
    except (EOFError, OSError):
        pass
    process.join(max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        process.terminate()
        process.join(1.0)
    if process.is_alive():
        process.kill()
        process.join(1.0)


# ---------------------------------------------------------------------- the worker process


def worker_main(conn: Connection, config: RouterConfig, log_level: int = logging.WARNING) -> None:
    """Entry point of a worker process: one event loop (uvloop if present), one Router."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(processName)s %(name)s: %(message)s")
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(conn, config))
    conn.close()


async def _serve(conn: Connection, config: RouterConfig) -> None:
    try:
        router = await Router.start(config)
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        conn.send(("failed", *_describe(exc)))
        return

    def on_event(event: PeerEvent) -> None:
        conn.send(("event", event.kind, event.peer_id, event.room_id, event.reason))

    router.add_listener(on_event)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int | None] = loop.create_future()
    handler = _Handler(router, conn, done)
    loop.add_reader(conn.fileno(), handler.readable)
    conn.send(("ready", tuple(router.address)))
    try:
        close_req = await done
    finally:
        loop.remove_reader(conn.fileno())
        await router.close()
    if close_req is not None:
        try:
            conn.send(("reply", close_req, True, None))
        except OSError:
            pass


class _Handler:
    """The worker's side of the pipe: run each request on the Router, reply when asked."""

    __slots__ = ("conn", "done", "router")

    def __init__(self, router: Router, conn: Connection, done: asyncio.Future[int | None]) -> None:
        self.router = router
        self.conn = conn
        self.done = done

    def readable(self) -> None:
        try:
            while not self.done.done() and self.conn.poll():
                self.handle(self.conn.recv())
        except (EOFError, OSError):  # the parent is gone: stop serving
            if not self.done.done():
                self.done.set_result(None)

    def handle(self, message: tuple[object, ...]) -> None:
        kind = message[0]
        router = self.router
        if kind == "remove":
            router.remove_peer(message[1])  # type: ignore[arg-type]
        elif kind == "speaker":
            try:
                router.set_speaker(message[1], message[2])  # type: ignore[arg-type]
            except KeyError:
                # The parent checked; the peer left here meanwhile (its event is on the way).
                log.debug("set_speaker%r: peer already gone", message[1:])
        elif kind == "close":
            self.done.set_result(message[1])  # type: ignore[arg-type]
        else:
            req = message[1]
            try:
                if kind == "add":
                    value: object = router.add_peer(*message[2:])  # type: ignore[arg-type]
                elif kind == "peer_stats":
                    value = router.peer_stats(message[2])  # type: ignore[arg-type]
                elif kind == "room_stats":
                    value = router.room_stats(message[2])  # type: ignore[arg-type]
                elif kind == "stats":
                    value = router.stats()
                else:
                    raise ValueError(f"unknown control request {kind!r}")
            except Exception as exc:  # noqa: BLE001 - every error goes back to the caller
                self.conn.send(("reply", req, False, _describe(exc)))
            else:
                self.conn.send(("reply", req, True, value))


__all__ = ["CALL_TIMEOUT", "MediaWorker", "WorkerGone", "WorkerPool", "worker_main"]
