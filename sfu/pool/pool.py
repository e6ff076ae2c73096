"""``WorkerPool``: the media plane as N worker processes behind an asynchronous control API.

Why processes: signaling (WebSockets, SDP parsing, floor control) and media share nothing but
a few control messages per join, leave and floor change, so no signaling load can delay a
packet, and one Python process per core forwards in parallel. A worker is a
:class:`~sfu.router.Router` on its own UDP port owning WHOLE rooms (placement.py).

The signaling loop never blocks on a worker: messages go out through buffered, non-blocking
channels (channel.py); :meth:`WorkerPool.negotiate` awaits its reply with a timeout, so a
slow or dead worker fails that one request (:class:`WorkerGone`), never the server; the SDP
offer is parsed and answered here, in the caller's process, and only the typed selection and
the worker's :class:`~sfu.sdp.LocalParams` cross (messages.py).

A worker that dies is noticed at once (channel EOF, pidfd) and replaced on the same UDP port,
usually by the warm spare, a process that already did its imports: every peer it had gets a
``PeerEvent("reset", ...)`` so that signaling can have the browser offer again. Requests for
a restarting worker wait for it (within their timeout). A worker that keeps dying right after
it starts is restarted with an exponential back-off, and ``stats()`` shows it.

This file is the supervisor; the state per worker lives in :class:`WorkerSlot`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Callable

from ..router import OfferError, PeerEvent, RouterConfig
from ..sdp import AudioSelection, LocalParams, SdpError, build_answer, parse_offer, select_audio
from .messages import (
    Failed,
    Idle,
    Message,
    Notice,
    OpenPeer,
    PeerOpened,
    Ready,
    RemovePeer,
    Serve,
    SetSpeaker,
    Shutdown,
    StartFailed,
    StatsReport,
)
from .channel import CHANNEL_EOF
from .placement import Placement
from .process import WorkerProcess

__all__ = ["PoolTuning", "RESET_REASON", "WorkerGone", "WorkerPool", "WorkerSlot"]

log = logging.getLogger("walkie.sfu.pool")

#: ``PeerEvent.reason`` of the ``reset`` events sent for the peers of a worker that died.
RESET_REASON = "media worker restarted"


class WorkerGone(OfferError):
    """The media worker for this request exited, is restarting too long, or did not answer.

    A subclass of :class:`OfferError` (so of ``ValueError``) on purpose: signaling already
    turns those into a clean ``bad_offer`` answer for that one client.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class PoolTuning:
    """Timers and bounds of the pool (the defaults are the production values)."""

    request_timeout: float = 5.0  # an offer's whole wait: a restarting worker + the round trip
    start_timeout: float = 30.0  # spawn to Ready at start (imports on a loaded machine)
    close_timeout: float = 5.0  # Shutdown to exit, before SIGKILL
    max_buffered: int = 1 << 20  # bytes queued for one worker before it counts as failed
    stats_interval: float = 1.0  # each worker pushes its stats this often
    hang_timeout: float = 10.0  # silence after which a worker is killed and restarted
    backoff_first: float = 0.5  # delay before the 2nd start in a row of a crashing worker
    backoff_max: float = 30.0  # ... doubling up to this
    stable_after: float = 10.0  # a worker up this long has not crashed "at start"
    spare: bool = True  # keep a warm spare process (restart in milliseconds, not ~0.3-1 s)


class WorkerSlot:
    """One worker position: its UDP port and the process serving it now (or being started).

    ``state``: ``starting`` (first start), ``ready``, ``restarting`` (a new process is being
    readied), ``backoff`` (it crashed repeatedly; the next start waits), ``closed``.
    """

    def __init__(self, index: int, config: RouterConfig) -> None:
        self.index = index
        self.config = config  # its port becomes the bound one at the first Ready
        self.state = "starting"
        self.process: WorkerProcess | None = None
        self.dying: WorkerProcess | None = None  # failed, waiting for its exit (port release)
        self.address: tuple[str, int] = (config.host, config.port)
        self.restarts = 0
        self.failures = 0  # deaths in a row without a stable run
        self.last_exit: str | None = None
        self.died_at: float | None = None
        self.ready_at: float | None = None
        self.last_restart_s: float | None = None
        self.next_start: float | None = None
        self.retry: asyncio.TimerHandle | None = None
        self.waiters: list[asyncio.Future[None]] = []
        self.start_error: BaseException | None = None  # why the pool's first start failed
        self.last_heard = 0.0
        self.report: StatsReport | None = None
        self.report_at = 0.0
        self.cpu_percent: float | None = None

    @property
    def alive(self) -> bool:
        return self.state == "ready"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def wake(self) -> None:
        """Let everyone waiting for this slot look at its state again."""
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def __repr__(self) -> str:
        return f"<WorkerSlot {self.index} {self.state} udp {self.address[0]}:{self.address[1]}>"


class WorkerPool:
    """N media worker processes with the asynchronous control API signaling uses.

    Create it with :meth:`start`. The API: ``await negotiate(peer, room, offer_sdp)`` (or
    ``await open_peer(peer, room, selection)``), ``remove_peer``, ``set_speaker``,
    ``add_listener``, ``stats()`` (a snapshot), ``address``/``addresses``/``announced_ip``
    and ``await close()``. ``remove_peer`` and ``set_speaker`` are one-way and never block.

    After ``remove_peer(p)`` no event about that ``p`` is delivered, even one its worker sent
    before it saw the removal (a re-offer reuses the id: the old peer's events would otherwise
    be taken for the new one's).
    """

    def __init__(
        self, configs: list[RouterConfig], tuning: PoolTuning, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.config = configs[0]
        self.tuning = tuning
        self._loop = loop
        self.workers = [WorkerSlot(i, cfg) for i, cfg in enumerate(configs)]
        self._placement = Placement(len(configs))
        #: request id -> (its reply, its worker slot, its peer)
        self._requests: dict[int, tuple[asyncio.Future[Message], int, str]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[PeerEvent], None]] = []
        self._events: deque[tuple[PeerEvent, int | None]] = deque()
        self._flush_scheduled = False
        self._spare: WorkerProcess | None = None
        self._spare_failures = 0
        self._spare_spawning = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def start(
        cls, workers: int, config: RouterConfig, tuning: PoolTuning | None = None
    ) -> WorkerPool:
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
        pool = cls(configs, tuning or PoolTuning(), asyncio.get_running_loop())
        try:
            for slot in pool.workers:
                pool._launch(slot)
            deadline = pool._loop.time() + pool.tuning.start_timeout
            for slot in pool.workers:
                await pool._until_ready(slot, deadline, starting=True)
        except BaseException:
            await pool.close()
            raise
        pool._started = True
        pool._ensure_spare()
        pool._watchdog = pool._loop.call_later(pool.tuning.stats_interval, pool._watch)
        log.info("%d media worker(s) on %s", workers,
                 ", ".join(f"{w.address[0]}:{w.address[1]}" for w in pool.workers))
        return pool

    async def close(self) -> None:
        """Ask every worker to close its Router (DTLS goodbyes), then reap them all."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for future, _, _ in self._requests.values():
            if not future.done():
                future.set_exception(WorkerGone("the media plane is shutting down"))
        processes = [self._spare] if self._spare is not None else []
        for slot in self.workers:
            slot.state = "closed"
            if slot.retry is not None:
                slot.retry.cancel()
            slot.wake()
            processes += [p for p in (slot.process, slot.dying) if p is not None]
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        running = [p for p in processes if p.running]
        for process in running:
            if not process.send(Shutdown()):
                process.kill()
        if running:
            await asyncio.wait([p.exited for p in running], timeout=self.tuning.close_timeout)
        for process in running:
            process.kill()  # a no-op for those that exited
        if running:
            await asyncio.wait([p.exited for p in running], timeout=self.tuning.close_timeout)
        self._events.clear()

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

    def worker_of(self, room_id: str) -> WorkerSlot | None:
        """The worker that owns ``room_id`` now, or None if the room has no peer."""
        index = self._placement.slot_of_room(room_id)
        return None if index is None else self.workers[index]

    # ------------------------------------------------------------------ control API

    def add_listener(self, callback: Callable[[PeerEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`PeerEvent` of every worker (loop thread).

        Kinds are the Router's plus ``reset``: the peer's worker died and was restarted; the
        peer is gone (its browser must offer again).
        """
        self._listeners.append(callback)

    async def negotiate(self, peer_id: str, room_id: str, offer_sdp: str) -> str:
        """Answer a browser's offer: parse and answer here, open the transport on a worker.

        Raises :class:`OfferError` (the offer is unusable; it never reached a worker),
        :class:`WorkerGone` (its worker died, restarted too long or did not answer) or
        ``ValueError`` (``peer_id`` is in use).
        """
        try:
            offer = parse_offer(offer_sdp)
            selection = select_audio(offer)
        except SdpError as exc:
            raise OfferError(str(exc)) from None
        local = await self.open_peer(peer_id, room_id, selection)
        try:
            return build_answer(offer, selection, local)
        except SdpError as exc:
            self.remove_peer(peer_id)
            raise OfferError(str(exc)) from None

    async def open_peer(
        self, peer_id: str, room_id: str, selection: AudioSelection
    ) -> LocalParams:
        """``Router.open_peer`` on the room's worker (a new room: the least-loaded one)."""
        if self._closed:
            raise WorkerGone("the media plane is shut down")
        slot = self._slot_for(room_id)
        request = next(self._ids)
        booking = self._placement.book(peer_id, room_id, slot.index, request)  # ValueError
        deadline = self._loop.time() + self.tuning.request_timeout
        future: asyncio.Future[Message] = self._loop.create_future()
        sent = False
        try:
            await self._until_ready(slot, deadline)
            if self._placement.peers.get(peer_id) is not booking:
                raise WorkerGone(f"peer {peer_id!r} was removed while its offer waited")
            self._requests[request] = (future, slot.index, peer_id)
            message = OpenPeer(request, peer_id, room_id, selection)
            if slot.process is None or not slot.process.send(message):
                raise WorkerGone(f"media worker {slot.index} is gone; send the offer again")
            sent = True
            remaining = max(0.0, deadline - self._loop.time())
            try:
                reply = await asyncio.wait_for(future, remaining)
            except TimeoutError:
                raise WorkerGone(
                    f"media worker {slot.index} did not answer within "
                    f"{self.tuning.request_timeout:g} s"
                ) from None
        except BaseException:
            if self._placement.peers.get(peer_id) is booking:
                self._placement.forget(peer_id)
                if sent and slot.process is not None:
                    # If the open lands later (a slow worker), undo it: the channel keeps order.
                    slot.process.send(RemovePeer(peer_id))
            raise
        finally:
            self._requests.pop(request, None)
        if isinstance(reply, Failed):
            if self._placement.peers.get(peer_id) is booking:
                self._placement.forget(peer_id)
            raise _request_error(reply)
        if self._placement.peers.get(peer_id) is not booking:
            raise WorkerGone(f"peer {peer_id!r} was removed while its offer was answered")
        assert isinstance(reply, PeerOpened)
        return reply.local

    def remove_peer(self, peer_id: str) -> None:
        """Forget a peer (idempotent; one-way). Its room's placement goes with its last member."""
        booking = self._placement.forget(peer_id)
        if booking is None:
            return
        slot = self.workers[booking.slot]
        if slot.process is not None and slot.state == "ready":
            slot.process.send(RemovePeer(peer_id))

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        """Like :meth:`Router.set_speaker` (one-way); KeyError for an unknown room or peer."""
        index = self._placement.slot_of_room(room_id)
        if index is None:
            if peer_id is None:
                return
            raise KeyError(f"no room {room_id!r}")
        if peer_id is not None:
            booking = self._placement.peers.get(peer_id)
            if booking is None or booking.room_id != room_id or not booking.accepted:
                raise KeyError(f"peer {peer_id!r} is not in room {room_id!r}")
        slot = self.workers[index]
        if slot.process is not None and slot.state == "ready":
            slot.process.send(SetSpeaker(room_id, peer_id))

    def stats(self) -> dict[str, object]:
        """A snapshot (never waits): the workers' last reports summed, plus one entry each.

        Each worker's entry has its ``index``, ``pid``, ``state``, ``alive``, ``restarts``,
        ``last_restart_ms``, ``last_exit``, ``report_age_s``, ``cpu_percent``, the peers and
        rooms placed on it, and the counters of its Router's last report (which start from
        zero again in a restarted worker).
        """
        now = self._loop.time()
        total: dict[str, object] = {"address": list(self.address), "announced_ip": self.announced_ip}
        entries: list[dict[str, object]] = []
        for slot in self.workers:
            entry: dict[str, object] = {}
            if slot.report is not None and slot.state == "ready":
                entry.update(slot.report.router)
                for key, value in slot.report.router.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        total[key] = total.get(key, 0) + value  # type: ignore[operator]
            entry.update(
                index=slot.index,
                pid=slot.pid,
                state=slot.state,
                alive=slot.alive,
                address=list(slot.address),
                restarts=slot.restarts,
                last_restart_ms=None if slot.last_restart_s is None
                else round(slot.last_restart_s * 1000, 1),
                last_exit=slot.last_exit,
                report_age_s=round(now - slot.report_at, 2) if slot.report else None,
                cpu_percent=slot.cpu_percent,
                placed_peers=self._placement.load(slot.index),
                placed_rooms=self._placement.room_count(slot.index),
            )
            entries.append(entry)
        total["workers"] = entries
        spare = self._spare
        total["spare_pid"] = spare.pid if spare is not None else None
        total["spare_ready"] = spare is not None and spare.idle  # imports done: restart in ms
        return total

    # ------------------------------------------------------------------ placement and waiting

    def _slot_for(self, room_id: str) -> WorkerSlot:
        index = self._placement.slot_of_room(room_id)
        if index is None:
            ready = [s.index for s in self.workers if s.state == "ready"]
            index = self._placement.choose(room_id, ready)
        if index is None:
            # Nobody is ready: wait for the one that will be ready soonest.
            waiting = [s for s in self.workers if s.state != "closed"]
            if not waiting:
                raise WorkerGone("no media worker is running")
            soonest = min(waiting, key=lambda s: (s.state == "backoff", s.next_start or 0.0,
                                                  s.index))
            index = soonest.index
        return self.workers[index]

    async def _until_ready(self, slot: WorkerSlot, deadline: float, starting: bool = False) -> None:
        while slot.state != "ready" or slot.process is None:
            if starting and slot.start_error is not None:
                raise slot.start_error
            if slot.state == "closed":
                raise WorkerGone("the media plane is shut down")
            remaining = deadline - self._loop.time()
            waiter: asyncio.Future[None] = self._loop.create_future()
            slot.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, remaining))
            except TimeoutError:
                if starting:
                    raise RuntimeError(f"media worker {slot.index} was not ready within "
                                       f"{self.tuning.start_timeout:g} s") from None
                raise WorkerGone(f"media worker {slot.index} is not running ({slot.state}; "
                                 f"last exit: {slot.last_exit}); try again") from None
            finally:
                if waiter in slot.waiters:
                    slot.waiters.remove(waiter)

    # ------------------------------------------------------------------ processes

    def _launch(self, slot: WorkerSlot) -> None:
        """Give ``slot`` a process: the warm spare if there is one, else a new one."""
        slot.retry = None
        slot.next_start = None
        slot.ready_at = None
        if slot.state != "starting":
            slot.state = "restarting"
        spare, self._spare = self._spare, None
        if spare is not None and spare.running:
            spare.slot = slot.index
            slot.process = spare
            slot.last_heard = self._loop.time()
            if spare.idle:
                self._serve(slot, spare)
        else:
            self._spawn(slot)
        self._ensure_spare()

    def _spawn(self, slot: WorkerSlot | None) -> None:
        """Start a new process for ``slot`` (None: the spare), from a task: spawn awaits."""
        if slot is None:
            self._spare_spawning = True

        async def spawn() -> None:
            try:
                process = await WorkerProcess.spawn(
                    None if slot is None else slot.index,
                    self._on_message, self._on_lost, self._on_exit, self.tuning.max_buffered,
                )
            except OSError as exc:  # e.g. out of processes or file descriptors
                log.error("cannot start a media worker process: %s", exc)
                if slot is not None:
                    slot.last_exit = f"spawn failed: {exc}"
                    if self._started:
                        self._schedule_restart(slot)
                    else:
                        slot.start_error = exc
                        slot.wake()
                return
            finally:
                if slot is None:
                    self._spare_spawning = False
            if self._closed:
                process.kill()
            elif slot is None:
                self._spare = process
            else:
                slot.process = process
                slot.last_heard = self._loop.time()

        task = self._loop.create_task(spawn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_spare(self) -> None:
        if (self.tuning.spare and self._started and not self._closed and self._spare is None
                and not self._spare_spawning):
            self._spawn(None)

    def _serve(self, slot: WorkerSlot, process: WorkerProcess) -> None:
        process.send(Serve(slot.config, self._log_level, self.tuning.stats_interval))

    def _on_message(self, process: WorkerProcess, message: Message) -> None:
        slot = None if process.slot is None else self.workers[process.slot]
        if slot is not None:
            if process is not slot.process:
                return  # from a process we already gave up on
            slot.last_heard = self._loop.time()
        if isinstance(message, Notice):
            if slot is not None:
                self._take_notice(slot, message)
        elif isinstance(message, (PeerOpened, Failed)):
            entry = self._requests.get(message.request)
            if entry is not None and not entry[0].done():
                future, _, peer_id = entry
                booking = self._placement.peers.get(peer_id)
                if isinstance(message, PeerOpened) and booking is not None and (
                    booking.opened_by == message.request
                ):
                    booking.accepted = True  # from now on, its worker's death resets it
                future.set_result(message)
        elif isinstance(message, StatsReport):
            if slot is not None:
                self._take_report(slot, message)
        elif isinstance(message, Idle):
            process.idle = True
            if slot is not None:
                self._serve(slot, process)
        elif isinstance(message, Ready):
            if slot is not None:
                self._ready(slot, message)
        elif isinstance(message, StartFailed):
            if slot is not None:
                if not self._started:
                    slot.start_error = _start_error(slot.index, message)
                    slot.wake()
                self._worker_failed(slot, f"could not start: {message.kind}: {message.message}")
        else:
            log.error("unexpected message %s from media worker pid %d",
                      type(message).__name__, process.pid)

    def _ready(self, slot: WorkerSlot, message: Ready) -> None:
        now = self._loop.time()
        slot.state = "ready"
        slot.address = message.address
        slot.config = dataclasses.replace(slot.config, port=message.address[1])
        slot.ready_at = now
        if slot.died_at is not None:
            slot.restarts += 1
            slot.last_restart_s = now - slot.died_at
            log.warning("media worker %d restarted in %.0f ms on udp %s:%d (pid %d; last exit: "
                        "%s)", slot.index, slot.last_restart_s * 1000, *message.address,
                        message.pid, slot.last_exit)
            slot.died_at = None
        slot.wake()

    def _take_report(self, slot: WorkerSlot, report: StatsReport) -> None:
        now = self._loop.time()
        last = slot.report
        if last is not None and last.pid == report.pid and now > slot.report_at:
            busy = (report.cpu_seconds - last.cpu_seconds) / (now - slot.report_at)
            slot.cpu_percent = round(100 * busy, 1)
        slot.report, slot.report_at = report, now

    def _on_lost(self, process: WorkerProcess, why: str) -> None:
        if process.slot is not None and process is self.workers[process.slot].process:
            self._worker_failed(self.workers[process.slot], why)
        else:
            process.kill()  # the spare, or one we gave up on: it must not linger

    def _on_exit(self, process: WorkerProcess) -> None:
        if process.slot is None:  # the spare
            if self._spare is process:
                self._spare = None
            self._spare_failures = 0 if process.idle else self._spare_failures + 1
            if self._started and not self._closed:
                delay = self._backoff(self._spare_failures)
                log.error("the spare media worker exited (%s)", process.exit_status)
                self._loop.call_later(delay, self._ensure_spare)
            return
        slot = self.workers[process.slot]
        if process is slot.process:
            self._worker_failed(slot, process.exit_status or "exited")
        if process is slot.dying:
            slot.dying = None
            if slot.last_exit in (None, CHANNEL_EOF):
                slot.last_exit = process.exit_status
            elif slot.last_exit != process.exit_status:
                slot.last_exit = f"{slot.last_exit}; {process.exit_status}"
            if self._started and not self._closed:
                self._schedule_restart(slot)
            elif not self._closed:
                if slot.start_error is None:
                    slot.start_error = RuntimeError(
                        f"media worker {slot.index} exited during start ({slot.last_exit})"
                    )
                slot.wake()

    def _worker_failed(self, slot: WorkerSlot, why: str) -> None:
        """Give up on ``slot``'s process: fail its requests, reset its peers, kill it."""
        process = slot.process
        if process is None or self._closed:
            return
        slot.process, slot.dying = None, process
        slot.last_exit = why
        if slot.died_at is None:  # the restart time counts from the first of a series
            slot.died_at = self._loop.time()
        was_ready = slot.state == "ready"
        slot.state = "restarting"
        process.close_channel()
        process.kill()
        gone = WorkerGone(f"media worker {slot.index} exited ({why}); send the offer again")
        for future, index, _ in self._requests.values():
            if index == slot.index and not future.done():
                future.set_exception(gone)
        reset = [
            (peer_id, booking) for peer_id, booking in self._placement.peers.items()
            if booking.slot == slot.index and booking.accepted
        ]
        for peer_id, booking in reset:
            self._placement.forget(peer_id)
            self._events.append((PeerEvent("reset", peer_id, booking.room_id, RESET_REASON), None))
        if was_ready or reset:
            log.error("media worker %d (pid %d) lost: %s; %d peer(s) reset",
                      slot.index, process.pid, why, len(reset))
        self._schedule_flush()

    def _schedule_restart(self, slot: WorkerSlot) -> None:
        now = self._loop.time()
        stable = slot.ready_at is not None and now - slot.ready_at >= self.tuning.stable_after
        slot.failures = 1 if stable else slot.failures + 1
        delay = self._backoff(slot.failures)
        if delay <= 0:
            self._launch(slot)
            return
        slot.state = "backoff"
        slot.next_start = now + delay
        log.error("media worker %d failed %d times in a row (last: %s); next start in %.1f s",
                  slot.index, slot.failures, slot.last_exit, delay)
        slot.retry = self._loop.call_later(delay, self._launch, slot)

    def _backoff(self, failures: int) -> float:
        """No wait for a first failure; then backoff_first, doubling up to backoff_max."""
        if failures <= 1:
            return 0.0
        return min(self.tuning.backoff_max, self.tuning.backoff_first * 2 ** (failures - 2))

    def _watch(self) -> None:
        """Kill a worker silent (not even its stats) for ``hang_timeout``, or one that was not
        ready within ``start_timeout``; either is then restarted."""
        self._watchdog = self._loop.call_later(self.tuning.stats_interval, self._watch)
        now = self._loop.time()
        for slot in self.workers:
            silent = now - slot.last_heard
            if slot.state == "ready" and silent > self.tuning.hang_timeout:
                self._worker_failed(slot, f"silent for {silent:.0f} s (hung)")
            elif slot.process is not None and silent > self.tuning.start_timeout:
                self._worker_failed(slot, f"not ready after {silent:.0f} s")

    # ------------------------------------------------------------------ events

    def _take_notice(self, slot: WorkerSlot, notice: Notice) -> None:
        event = notice.event
        if not self._placement.is_current(event.peer_id, slot.index, notice.opened_by):
            return  # about a peer the parent already removed, or an earlier one of that id
        if event.kind in ("consent_lost", "dtls_failed", "closed"):
            self._placement.forget(event.peer_id)
        self._events.append((event, notice.opened_by))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._events and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Deliver events in arrival order, after the replies read with them took effect."""
        self._flush_scheduled = False
        while self._events:
            event, opened_by = self._events.popleft()
            if self._closed:
                continue
            booking = self._placement.peers.get(event.peer_id)
            if booking is not None and opened_by is not None and booking.opened_by != opened_by:
                continue  # the id was re-offered meanwhile: this is about the old peer
            for callback in list(self._listeners):
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - one bad listener must not stop the rest
                    log.exception("event listener failed for %s", event)


def _request_error(reply: Failed) -> Exception:
    """The caller-side exception for a worker's Failed reply."""
    if reply.kind == "offer":
        return OfferError(reply.message)
    if reply.kind == "value":
        return ValueError(reply.message)
    return WorkerGone(f"media worker error: {reply.message}")


def _start_error(index: int, failed: StartFailed) -> Exception:
    """``OSError`` (e.g. the port is in use) or ``ValueError`` as Router.start raised it."""
    cls = getattr(builtins, failed.kind, None)
    if isinstance(cls, type) and issubclass(cls, (OSError, ValueError)):
        return cls(f"media worker {index}: {failed.message}")
    return RuntimeError(f"media worker {index} could not start: {failed.kind}: {failed.message}")

