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

A worker that dies is replaced on the same UDP port (supervisor.py); every peer it had gets
a ``PeerEvent("reset", ...)`` so that signaling can have the browser offer again. Requests
for a restarting worker wait for it (within their timeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Callable

from ..core import OfferError, PeerEvent
from ..replay import ReplayEvent
from ..router import RouterConfig
from ..sdp import AudioSelection, LocalParams, SdpError, build_answer, parse_offer, select_audio
from .messages import (
    PEER_GONE,
    Failed,
    Message,
    Notice,
    OpenPeer,
    PeerOpened,
    RemovePeer,
    SetSpeaker,
    StartReplay,
    StopReplay,
)
from .placement import Placement
from .supervisor import PoolTuning, Supervisor, WorkerSlot

__all__ = ["PoolTuning", "RESET_REASON", "WorkerGone", "WorkerPool", "WorkerSlot"]

log = logging.getLogger("walkie.sfu.pool")

#: ``PeerEvent.reason`` of the ``reset`` events sent for the peers of a worker that died.
RESET_REASON = "media worker restarted"


class WorkerGone(OfferError):
    """The media worker for this request exited, is restarting too long, or did not answer.

    A subclass of :class:`OfferError` (so of ``ValueError``) on purpose: signaling already
    turns those into a clean ``bad_offer`` answer for that one client.
    """


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

    def __init__(self, configs: list[RouterConfig], tuning: PoolTuning) -> None:
        self.config = configs[0]
        self.tuning = tuning
        self._loop = asyncio.get_running_loop()
        self._supervisor = Supervisor(configs, tuning, self._on_message, self._on_lost)
        self.workers = self._supervisor.workers
        self._placement = Placement(len(configs))
        #: request id -> (its reply, its worker slot, its peer)
        self._requests: dict[int, tuple[asyncio.Future[Message], int, str]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[PeerEvent | ReplayEvent], None]] = []
        self._events: deque[tuple[PeerEvent | ReplayEvent, int | None]] = deque()
        self._flush_scheduled = False
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
        pool = cls(configs, tuning or PoolTuning())
        try:
            await pool._supervisor.start()
        except BaseException:
            await pool.close()
            raise
        log.info("%d media worker(s) on %s", workers,
                 ", ".join(f"{w.address[0]}:{w.address[1]}" for w in pool.workers))
        return pool

    async def close(self) -> None:
        """Ask every worker to close its Router (DTLS goodbyes), then reap them all."""
        if self._closed:
            return
        self._closed = True
        for future, _, _ in self._requests.values():
            if not future.done():
                future.set_exception(WorkerGone("the media plane is shutting down"))
        self._events.clear()
        await self._supervisor.close()

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

    def add_listener(self, callback: Callable[[PeerEvent | ReplayEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`PeerEvent` of every worker (loop thread).

        Kinds are the Router's plus ``reset``: the peer's worker died and was restarted; the
        peer is gone (its browser must offer again). With replay on, the workers'
        :class:`~sfu.replay.ReplayEvent` events too.
        """
        self._listeners.append(callback)

    async def negotiate(self, peer_id: str, room_id: str, offer_sdp: str, *,
                        listen_only: bool = False) -> str:
        """Answer a browser's offer: parse and answer here, open the transport on a worker
        (``listen_only`` as for ``Router.add_peer``: it travels in the selection).

        Raises :class:`OfferError` (the offer is unusable; it never reached a worker),
        :class:`WorkerGone` (its worker died, restarted too long or did not answer) or
        ``ValueError`` (``peer_id`` is in use).
        """
        try:
            offer = parse_offer(offer_sdp)
            selection = select_audio(offer, listen_only=listen_only)
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
            if not await self._supervisor.until_ready(slot, deadline):
                raise WorkerGone(f"media worker {slot.index} is not running ({slot.state}; "
                                 f"last exit: {slot.last_exit}); try again")
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

    def start_replay(self, room_id: str, peer_id: str, transmission_id: str) -> None:
        """Like :meth:`Router.start_replay` (one-way: the answer is an event); KeyError for
        a peer not accepted in that room."""
        self._send_replay(room_id, peer_id, StartReplay(room_id, peer_id, transmission_id))

    def stop_replay(self, room_id: str, peer_id: str) -> None:
        """Like :meth:`Router.stop_replay` (one-way)."""
        self._send_replay(room_id, peer_id, StopReplay(room_id, peer_id))

    def _send_replay(self, room_id: str, peer_id: str, message: StartReplay | StopReplay) -> None:
        booking = self._placement.peers.get(peer_id)
        if booking is None or booking.room_id != room_id or not booking.accepted:
            raise KeyError(f"peer {peer_id!r} is not in room {room_id!r}")
        slot = self.workers[booking.slot]
        if slot.process is not None and slot.state == "ready":
            slot.process.send(message)

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
            entry.update(slot.describe(now))
            entry.update(placed_peers=self._placement.load(slot.index),
                         placed_rooms=self._placement.room_count(slot.index))
            entries.append(entry)
        total["workers"] = entries
        spare = self._supervisor.spare
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

    def _on_message(self, slot: WorkerSlot, message: Message) -> None:
        """A reply or a notice from the process serving ``slot``."""
        if isinstance(message, Notice):
            self._take_notice(slot, message)
        elif isinstance(message, (PeerOpened, Failed)):
            entry = self._requests.get(message.request)
            if entry is None or entry[0].done():
                return  # its caller gave up (timeout): the open was undone by a RemovePeer
            future, _, peer_id = entry
            booking = self._placement.peers.get(peer_id)
            if isinstance(message, PeerOpened) and booking is not None and (
                booking.opened_by == message.request
            ):
                booking.accepted = True  # from now on, its worker's death resets it
            future.set_result(message)
        else:
            log.error("unexpected %s from media worker %d", type(message).__name__, slot.index)

    def _on_lost(self, slot: WorkerSlot, why: str) -> None:
        """``slot``'s process is given up: fail its requests, reset its peers."""
        if self._closed:
            return
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
        if self._supervisor.started:
            log.error("media worker %d lost: %s; %d peer(s) reset", slot.index, why, len(reset))
        self._schedule_flush()

    # ------------------------------------------------------------------ events

    def _take_notice(self, slot: WorkerSlot, notice: Notice) -> None:
        event = notice.event
        if event.kind == "transmission":  # kept even when its talker has left since
            self._events.append((event, None))
            self._schedule_flush()
            return
        if not event.peer_id:  # about a room (its kept transmissions): still placed there?
            if self._placement.slot_of_room(event.room_id) == slot.index:
                self._events.append((event, None))
                self._schedule_flush()
            return
        if not self._placement.is_current(event.peer_id, slot.index, notice.opened_by):
            return  # about a peer the parent already removed, or an earlier one of that id
        if event.kind in PEER_GONE:
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
    return RuntimeError(f"media worker error: {reply.message}")  # a bug: a server error
