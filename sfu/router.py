"""The router: the media core driven by an asyncio (uvloop) event loop on one UDP port.

This is the thin I/O driver around :class:`~sfu.core.MediaCore`. Each time the socket is
readable it feeds what waits (up to 64 datagrams, one ``recvmmsg``) into the core, then
flushes all the core queued (one ``sendmmsg`` per batch; a big read batch also sends every
``FLUSH_AT`` queued datagrams on the way), hands the core's events to listeners and arms
one timer for the core's next deadline, on a 20 ms grid. Control calls (``add_peer``,
``remove_peer``, ``set_speaker``) run the core command and flush the same way. No protocol
rule lives here.

It is also the embedding API: ``await Router.start(RouterConfig(...))``, then the
synchronous control methods, in any asyncio program (README.md shows one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .capture import DEFAULT_MAX_BYTES
from .core import CoreConfig, MediaCore, OfferError, PeerEvent
from .replay import DEFAULT_REPLAY_BYTES, ReplayEvent, ReplayLimits
from .certificate import CertificateKeeper
from .sdp import AudioSelection, LocalParams, SdpError, build_answer, parse_offer, select_audio
from .udp import READ_BATCH, DatagramSocket, open_socket
from .uplinkcap import UplinkLimits

__all__ = ["OfferError", "PeerEvent", "Router", "RouterConfig"]

log = logging.getLogger("walkie.sfu")

#: The core's deadlines are served on a grid of this many seconds: whatever falls due within
#: one grain (RTCP reports, consent checks, DTLS retransmissions of hundreds of peers) runs
#: in one wake-up instead of one each. None of those timers needs finer precision.
TIMER_GRAIN = 0.02
#: Queued datagrams that make a read batch send before it is finished (see _receive).
FLUSH_AT = 64
#: Read batches taken from the socket before a speaker change (see set_speaker): bounded, so
#: that a flood cannot hold a floor command up.
DRAIN_BATCHES = 4


_UPLINK = UplinkLimits()


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Where the media plane listens and what it announces.

    ``announced_ip`` is the address written into the answer's candidate: the public address of
    a server behind 1:1 NAT, or ``None`` to announce ``host`` itself.
    """

    host: str = "127.0.0.1"
    port: int = 40000
    announced_ip: str | None = None
    consent_timeout: float = 30.0
    dtls_handshake_timeout: float = 10.0
    socket_buffer_bytes: int = 4 * 1024 * 1024
    #: recvmmsg/sendmmsg where the platform has them; False: one recvfrom/sendto per datagram
    batch_syscalls: bool = True
    #: each peer's uplink cap (sfu/uplinkcap.py says why these values): sustained packets/s
    #: and bytes/s of SRTP/SRTCP, and how much of each a burst may take at once
    uplink_packets_per_second: float = _UPLINK.packets_per_second
    uplink_packet_burst: float = _UPLINK.packet_burst
    uplink_bytes_per_second: float = _UPLINK.bytes_per_second
    uplink_byte_burst: float = _UPLINK.byte_burst
    #: say-again (sfu/replay.py): seconds each room's transmissions are kept after they
    #: end (0: nothing is kept), and the payload bytes one room may keep
    replay_seconds: float = 0.0
    replay_bytes: int = DEFAULT_REPLAY_BYTES
    #: keep each room's transmissions (sfu/capture.py), each at most this many seconds of
    #: audio and bytes: finished ones are ``transmission`` events; 0 seconds: off
    capture_seconds: float = 0.0
    capture_bytes: int = DEFAULT_MAX_BYTES
    #: a worker process (sfu/pool/worker.py) sends its ``transmission`` events to the
    #: signaling process, which writes them to disk (walkie serve --record)
    record: bool = False

    def __post_init__(self) -> None:
        # The announced address becomes the answer's one ICE candidate: it must be an IP
        # literal, or every offer would fail later with a confusing SDP error.
        announced = self.announced_ip or self.host
        try:
            ip = ipaddress.ip_address(announced)
        except ValueError:
            raise ValueError(
                f"announced address {announced!r} is not an IP address "
                "(set announced_ip to the address browsers can reach)"
            ) from None
        if ip.is_unspecified:
            raise ValueError(
                f"cannot announce {announced}: set announced_ip when binding a wildcard address"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"UDP port {self.port} is out of range")
        self.uplink_limits()  # ValueError if a cap is not a positive number
        self.replay_limits()  # ValueError if replay is on with bad bounds
        if self.capture_seconds < 0 or self.capture_bytes <= 0:
            raise ValueError("capture_seconds must be 0 (off) or more, capture_bytes above 0")
        if self.record and not self.capture_seconds:
            raise ValueError("record needs capture_seconds: recording keeps transmissions")

    def uplink_limits(self) -> UplinkLimits:
        """The uplink cap of every peer, as the media core takes it."""
        return UplinkLimits(
            packets_per_second=self.uplink_packets_per_second,
            packet_burst=self.uplink_packet_burst,
            bytes_per_second=self.uplink_bytes_per_second,
            byte_burst=self.uplink_byte_burst,
        )

    def replay_limits(self) -> ReplayLimits | None:
        """What each room keeps for say-again, or None when it is off."""
        if not self.replay_seconds:
            return None
        return ReplayLimits(self.replay_seconds, self.replay_bytes)


class Router:
    """A media worker: one UDP port, any number of rooms. Create it with :meth:`start`."""

    def __init__(
        self, config: RouterConfig, loop: asyncio.AbstractEventLoop, io: DatagramSocket
    ) -> None:
        self.config = config
        self._loop = loop
        self._io = io
        self.datagrams_sent = 0
        self.address: tuple[str, int] = io.sock.getsockname()[:2]
        self.certificates = CertificateKeeper()
        self.core = MediaCore(
            CoreConfig(
                candidate_ip=self.announced_ip,
                candidate_port=self.address[1],
                consent_timeout=config.consent_timeout,
                dtls_handshake_timeout=config.dtls_handshake_timeout,
                uplink=config.uplink_limits(),
                replay=config.replay_limits(),
                capture_seconds=config.capture_seconds,
                capture_bytes=config.capture_bytes,
            ),
            self.certificates,
            wall_offset=time.time() - time.monotonic(),
        )
        self._listeners: list[Callable[[PeerEvent | ReplayEvent], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")
        self._delivering = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def start(cls, config: RouterConfig | None = None) -> Router:
        """Bind the UDP port and start serving on the running event loop."""
        config = config or RouterConfig()
        sock = open_socket(config.host, config.port, config.socket_buffer_bytes)
        io = DatagramSocket(sock, batched=config.batch_syscalls)
        router = cls(config, asyncio.get_running_loop(), io)
        router._loop.add_reader(router._io.fd, router._on_readable)
        log.info("media plane listening on udp %s:%d", *router.address)
        return router

    async def close(self) -> None:
        """Say goodbye over DTLS to every connected peer, then release the port and timer."""
        if self._closed:
            return
        self._closed = True
        self.core.close()
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop.remove_reader(self._io.fd)
        self._io.close()

    # ------------------------------------------------------------------ control API

    @property
    def announced_ip(self) -> str:
        return self.config.announced_ip or self.address[0]

    def add_listener(self, callback: Callable[[PeerEvent | ReplayEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`PeerEvent` and, with replay on, every
        :class:`~sfu.replay.ReplayEvent` (on the event loop thread)."""
        self._listeners.append(callback)

    def add_peer(self, peer_id: str, room_id: str, offer_sdp: str, *,
                 listen_only: bool = False) -> str:
        """Accept a browser's SDP offer for ``room_id`` and return our SDP answer.

        ``listen_only``: the peer only hears the room; the answer does not let it send
        (``a=sendonly``) and any RTP it sends anyway is dropped and counted.
        Raises :class:`OfferError` with a clear reason when the offer cannot be served, and
        ``ValueError`` when ``peer_id`` is already in use. Nothing changes on error.
        """
        try:
            offer = parse_offer(offer_sdp)
            selection = select_audio(offer, listen_only=listen_only)
        except SdpError as exc:
            raise OfferError(str(exc)) from None
        local = self.open_peer(peer_id, room_id, selection)
        try:
            return build_answer(offer, selection, local)
        except SdpError as exc:
            self.remove_peer(peer_id)
            raise OfferError(str(exc)) from None

    async def negotiate(self, peer_id: str, room_id: str, offer_sdp: str, *,
                        listen_only: bool = False) -> str:
        """:meth:`add_peer` behind the asynchronous control API that signaling uses."""
        return self.add_peer(peer_id, room_id, offer_sdp, listen_only=listen_only)

    def open_peer(self, peer_id: str, room_id: str, selection: AudioSelection) -> LocalParams:
        """Create the transport for an offer already parsed and selected; return our side.

        This is :meth:`add_peer` without SDP text: a caller in another process parses the
        offer and builds the answer itself (``build_answer(offer, selection, local)``), so
        that only this small, typed request crosses to the media worker.
        """
        local = self.core.open_peer(peer_id, room_id, selection, time.monotonic())
        self._flush()
        return local

    def remove_peer(self, peer_id: str) -> None:
        """Forget a peer (idempotent). Its room disappears when it was the last member."""
        self.core.remove_peer(peer_id)
        self._flush()

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        """Choose whose audio the room forwards (``None``: nobody); KeyError if unknown.

        The new speaker's pre-roll, what it sent while its floor request travelled, is
        forwarded at once.

        The datagrams already queued in the socket are read first: they arrived before this
        command, so they belong to the floor as it was (a busy worker may find its control
        channel and its socket readable at once, and the release must not overtake the
        talker's last packets; sfu/room.py ``TAIL_SECONDS`` covers those still on the way).
        """
        now = time.monotonic()
        try:
            for _ in range(DRAIN_BATCHES):
                if self._io.read(self._receive, now) < READ_BATCH:
                    break
            self.core.set_speaker(room_id, peer_id, now)
        finally:
            self._flush()

    def start_replay(self, room_id: str, peer_id: str, transmission_id: str) -> None:
        """Play a kept transmission to ``peer_id`` only (say-again, sfu/replayer.py); the
        answer comes as a ``replay_started`` or ``replay_ended`` event. KeyError for a peer
        not in that room, ValueError when replay is off."""
        try:
            self.core.start_replay(room_id, peer_id, transmission_id, time.monotonic())
        finally:
            self._flush()

    def stop_replay(self, room_id: str, peer_id: str) -> None:
        """End ``peer_id``'s replay if it hears one (``replay_ended`` ``stopped``)."""
        try:
            self.core.stop_replay(room_id, peer_id)
        finally:
            self._flush()

    def peer_stats(self, peer_id: str) -> dict[str, object] | None:
        return self.core.peer_stats(peer_id)

    def room_stats(self, room_id: str) -> dict[str, object] | None:
        return self.core.room_stats(room_id)

    def stats(self) -> dict[str, object]:
        return {
            "address": list(self.address),
            "announced_ip": self.announced_ip,
            **self.core.stats(),
            "datagrams_sent": self.datagrams_sent,
            "send_errors": self._io.send_errors,
            "received_truncated": self._io.truncated,
            "protect_errors": self.core.transmits.protect_errors,
            "dropped_oversize": self.core.transmits.dropped_oversize,
            "batched_io": self._io.batched,
        }

    # ------------------------------------------------------------------ the loop's callbacks

    def _on_readable(self) -> None:
        self._io.read(self._receive, time.monotonic())
        self._flush()

    def _receive(self, now: float, source: tuple[str, int], data: bytes) -> None:
        """One datagram into the core; send early when a read batch queued a lot.

        A read can bring dozens of talker packets, each fanned out to a room: holding all
        of their copies until the batch is done would make the first packet wait for the
        last. Sending every ``FLUSH_AT`` datagrams keeps batches big and waits short.
        """
        core = self.core
        core.handle_datagram(now, source, data)
        if len(core.transmits) >= FLUSH_AT:
            self.datagrams_sent += self._io.send(core.transmits)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = float("inf")
        self.core.handle_timeout(time.monotonic())
        self._flush()

    def _flush(self) -> None:
        """Send what the core queued, deliver its events, and arm its next deadline."""
        core = self.core
        self.datagrams_sent += self._io.send(core.transmits)
        if not self._delivering:  # a listener calling back into us: the outer loop delivers
            self._delivering = True
            try:
                event = core.poll_event()
                while event is not None:
                    for callback in list(self._listeners):
                        try:
                            callback(event)
                        except Exception:  # noqa: BLE001 - one bad listener must not stop the rest
                            log.exception("event listener failed for %s", event)
                    event = core.poll_event()
            finally:
                self._delivering = False
        if self._closed:
            return
        due = core.poll_timeout()
        if due is None:
            return
        wake = math.ceil(due / TIMER_GRAIN) * TIMER_GRAIN
        if wake < self._timer_due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_due = wake
            self._timer = self._loop.call_later(max(0.0, wake - time.monotonic()), self._on_timer)
