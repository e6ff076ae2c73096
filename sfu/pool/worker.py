"""A media worker process: ``python -m sfu.pool.worker FD`` (started by the pool only).

It imports the media plane, says :class:`~.messages.Idle` on the control channel (file
descriptor ``FD``, one end of a socketpair) and waits: a warm spare, ready to become a
worker in milliseconds. On :class:`~.messages.Serve` it starts a :class:`~sfu.router.Router`
and from then on runs the parent's requests on it, using only the Router's public control
API (``start``, ``open_peer``, ``remove_peer``, ``set_speaker``, ``start_replay``,
``stop_replay``, ``stats``, ``add_listener``, ``close``, ``address``), pushes its events and, every second, its stats.

It ends on :class:`~.messages.Shutdown` or when the parent's end of the channel closes (the
parent died): it never outlives the signaling process. SIGINT and SIGTERM are ignored, so
that Ctrl-C or a service manager signalling the whole process group lets the parent stop
its workers in order; ``kill -9`` still ends one at once (the parent then restarts it).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time

from ..core import OfferError, PeerEvent
from ..replay import ReplayEvent
from ..logs import configure
from ..router import Router
from .channel import Channel
from .messages import (
    PEER_GONE,
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
    StartReplay,
    StatsReport,
    StopReplay,
)

log = logging.getLogger("walkie.sfu.pool")

#: Bytes the worker may have queued for a parent that does not read (a stopped or hung
#: signaling process). Beyond it the worker gives up and exits; events are ~150 bytes.
MAX_BUFFERED_TO_PARENT = 16 << 20



class Worker:
    """The worker's side of the control channel: one Router and the parent's requests."""

    def __init__(self) -> None:
        self.channel: Channel | None = None
        self.router: Router | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opened_by: dict[str, int] = {}  # peer id -> request that opened it
        self._stats_interval = 1.0
        self._stats_timer: asyncio.TimerHandle | None = None
        self._starting: asyncio.Future[None] | None = None  # Router.start, kept referenced

    def send(self, message: Message) -> None:
        if self.channel is not None:
            self.channel.send(message)

    def on_lost(self, why: str) -> None:
        log.debug("control channel ended (%s): stopping", why)
        self._finish()

    def on_message(self, message: Message) -> None:
        router = self.router
        if isinstance(message, OpenPeer):
            self._open(message)
        elif isinstance(message, RemovePeer):
            self._opened_by.pop(message.peer_id, None)
            if router is not None:
                router.remove_peer(message.peer_id)
        elif isinstance(message, SetSpeaker):
            if router is not None:
                try:
                    router.set_speaker(message.room_id, message.peer_id)
                except KeyError:  # the peer left here meanwhile; its event is on the way
                    log.debug("set_speaker(%s, %s): peer already gone", message.room_id,
                              message.peer_id)
        elif isinstance(message, (StartReplay, StopReplay)):
            self._replay(message)
        elif isinstance(message, Serve):
            self._starting = asyncio.ensure_future(self._serve(message))
        elif isinstance(message, Shutdown):
            self._finish()
        else:
            log.error("unexpected control message %s", type(message).__name__)

    async def _serve(self, message: Serve) -> None:
        logging.getLogger().setLevel(message.log_level)
        self._stats_interval = message.stats_interval
        try:
            router = await Router.start(message.config)
        except Exception as exc:  # noqa: BLE001 - the parent reports it and backs off
            self.send(StartFailed(type(exc).__name__, str(exc)))
            self._finish()
            return
        self.router = router
        # What start-up made (modules, the certificate, the loop) lives as long as the
        # process: the collector need never trace it again (a worker has one job).
        gc.freeze()
        router.add_listener(self._on_event)
        self.send(Ready(tuple(router.address), os.getpid()))  # type: ignore[arg-type]
        self._report()

    def _open(self, message: OpenPeer) -> None:
        router = self.router
        try:
            if router is None:
                raise RuntimeError("not serving yet")
            local = router.open_peer(message.peer_id, message.room_id, message.selection)
        except OfferError as exc:
            self.send(Failed(message.request, "offer", str(exc)))
        except ValueError as exc:
            self.send(Failed(message.request, "value", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug here must fail one request only
            log.exception("open_peer(%s) failed", message.peer_id)
            self.send(Failed(message.request, "internal", f"{type(exc).__name__}: {exc}"))
        else:
            self._opened_by[message.peer_id] = message.request
            self.send(PeerOpened(message.request, local))

    def _replay(self, message: StartReplay | StopReplay) -> None:
        router = self.router
        if router is None:
            return
        try:
            if isinstance(message, StartReplay):
                router.start_replay(message.room_id, message.peer_id, message.transmission_id)
            else:
                router.stop_replay(message.room_id, message.peer_id)
        except (KeyError, ValueError) as exc:  # the peer left meanwhile, or replay is off
            log.debug("%s: %s", type(message).__name__, exc)

    def _on_event(self, event: PeerEvent | ReplayEvent) -> None:
        if event.kind == "transmission":  # a finished turn: to the recorder, if recording
            if self.router is not None and self.router.config.record:
                self.send(Notice(event, 0))
            return
        if event.kind in PEER_GONE:
            opened_by = self._opened_by.pop(event.peer_id, 0)
        else:
            opened_by = self._opened_by.get(event.peer_id, 0)
        self.send(Notice(event, opened_by))

    def _report(self) -> None:
        """Push the stats, unless the last report still waits for the parent to read it."""
        self._stats_timer = asyncio.get_running_loop().call_later(
            self._stats_interval, self._report
        )
        if self.router is not None and self.channel is not None and not self.channel.buffered:
            self.send(StatsReport(os.getpid(), time.process_time(), self.router.stats()))

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    async def close(self) -> None:
        if self._stats_timer is not None:
            self._stats_timer.cancel()
        if self.router is not None:
            await self.router.close()  # DTLS goodbyes while the port is still ours
        if self.channel is not None:
            self.channel.close()


async def _run(sock: socket.socket) -> None:
    worker = Worker()
    worker.channel = await Channel.connect(
        sock, worker.on_message, worker.on_lost, MAX_BUFFERED_TO_PARENT
    )
    worker.send(Idle(os.getpid()))
    try:
        await worker.done
    finally:
        await worker.close()


def main(argv: list[str]) -> int:
    """Entry point; ``argv[1]`` is the control channel's file descriptor."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Text or JSON lines, as the parent's (WALKIE_LOG_FORMAT, inherited; sfu/logs.py).
    configure(logging.WARNING,
              text_format="%(asctime)s %(levelname)s media worker %(process)d %(name)s: "
                          "%(message)s")
    sock = socket.socket(fileno=int(argv[1]))
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        asyncio.run(_run(sock))
    else:
        uvloop.run(_run(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
