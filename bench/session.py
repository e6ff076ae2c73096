"""One media session of a synthetic user: what a browser's RTCPeerConnection holds.

A session is one offer/answer's worth of client-side transport, in order, as a browser does:

1. a local address: its own UDP socket, or one loopback address on the bench's shared
   socket (``mux.SharedSocket``), connected to the server's candidate;
2. ICE: a nominating STUN Binding request (``stunclient.IceController``), retransmitted
   until answered; then a consent check every few seconds (RFC 7675);
3. a DTLS client (``sfu.dtls.DtlsEndpoint``, role ``client`` because the server answers
   ``a=setup:passive``), checked against the answer's fingerprint;
4. SRTP (``sfu.srtp.SrtpSession``) from the exported keys, handed to the owner
   (``client.SyntheticClient``), whose uplink stream and downlink accounting outlive sessions.

Why a class of its own: after ``media reset`` the user drops its session and makes a new one
(new address, new ICE credentials, a new DTLS endpoint) on the same WebSocket, exactly as a
page replaces its RTCPeerConnection; the user's identity, floor and accounting go on.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sfu.dtls import DtlsEndpoint
from sfu.ice import generate_pwd, generate_ufrag
from sfu.sdp import offerer_dtls_role
from sfu.srtp import SrtpSession

from .mux import SharedSocket
from .offer import Answer, OfferParams, build_offer, parse_answer
from .stunclient import IceController, StunClientError

if TYPE_CHECKING:
    from .context import BenchContext

__all__ = ["CHECK_INTERVAL", "LinkCounters", "MediaSession", "SessionError"]

#: Datagrams read per reader wake-up before yielding to the loop.
READ_BATCH = 64
#: STUN check retransmission interval while connecting (RFC 8445 allows 50 ms pacing).
CHECK_INTERVAL = 0.05
#: Linux SO_TIMESTAMPNS (asm-generic/socket.h): the kernel stamps each datagram with the
#: CLOCK_REALTIME time it was queued on our socket (struct timespec in a control message).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class SessionError(RuntimeError):
    """A media session could not be set up (bad answer, ICE or DTLS failure)."""


@dataclass(slots=True)
class LinkCounters:
    """A user's transport error counters, summed over all its sessions."""

    socket_errors: int = 0
    stun_errors: int = 0
    early_media: int = 0


class MediaSession:
    """``make_offer()`` -> ``await connect(answer)`` -> SRTP up (``on_srtp(self)``) ->
    ``route_media(feed, ssrc)``; ``close()`` at the end or when replaced."""

    def __init__(
        self,
        ctx: BenchContext,
        counters: LinkCounters,
        on_srtp: Callable[[MediaSession], None],
    ) -> None:
        self.ctx = ctx
        self.mux: SharedSocket | None = ctx.mux
        self.counters = counters
        self._on_srtp = on_srtp
        self._loop = asyncio.get_running_loop()
        self.sock: socket.socket | None = None
        self.local_ip: str | None = None
        self.answer: Answer | None = None
        self.ice: IceController | None = None
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpSession | None = None
        #: ``send(datagram)`` to the server's candidate, once the answer is known
        self.send: Callable[[bytes], int] | None = None
        self.ice_done: asyncio.Future[None] = self._loop.create_future()
        self.dtls_done: asyncio.Future[None] = self._loop.create_future()
        self.closed = False
        self._feed: Callable[[bytes, int], None] | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._local_ufrag = ""

    # ------------------------------------------------------------------ offer / answer

    def make_offer(self, ssrc: int, cname: str, red_pt: int | None = None) -> str:
        """Take a local address (own socket, or an address on the shared socket) and write
        the SDP offer for it, with fresh ICE credentials (and RED offered under ``red_pt``)."""
        if self.mux is not None:
            host = self.local_ip = self.mux.allocate()
            port = self.mux.port
            self.mux.register(host, self)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock = sock
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            if self.ctx.kernel_timestamps:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((self.ctx.local_host, 0))
            host, port = sock.getsockname()[:2]
        self._local_ufrag = generate_ufrag()
        return build_offer(
            OfferParams(
                ice_ufrag=self._local_ufrag,
                ice_pwd=generate_pwd(),
                fingerprint=self.ctx.fingerprint,
                ssrc=ssrc,
                cname=cname,
                host=host,
                port=port,
                session_id=secrets.randbits(62),
                red_pt=red_pt,
            )
        )

    async def connect(self, answer_sdp: str, timeout: float = 10.0) -> None:
        """ICE (nominating check, retransmitted) then the DTLS handshake, from the answer."""
        if self.sock is None and self.local_ip is None:
            raise SessionError("make_offer() first")
        answer = self.answer = parse_answer(answer_sdp)
        if answer.audio_level_id is None or not 1 <= answer.audio_level_id <= 14:
            raise SessionError("the server did not accept the audio-level extension")
        if self.mux is not None and self.local_ip is not None:
            self.send = self.mux.sender(self.local_ip, answer.candidates[0])
        elif self.sock is not None:
            self.sock.connect(answer.candidates[0])
            self.send = self.sock.send
            reader = self._on_readable_kernel_ts if self.ctx.kernel_timestamps else self._on_readable
            self._loop.add_reader(self.sock.fileno(), reader)
        self.ice = IceController(self._local_ufrag, answer.ice_ufrag, answer.ice_pwd)
        async with asyncio.timeout(timeout):
            for _ in range(int(timeout / CHECK_INTERVAL) + 1):
                self._transmit(self.ice.request(time.monotonic()))
                try:
                    await asyncio.wait_for(asyncio.shield(self.ice_done), CHECK_INTERVAL)
                    break
                except TimeoutError:
                    continue
            await self.ice_done
            role = offerer_dtls_role(answer.setup)
            self.dtls = DtlsEndpoint(self.ctx.certificate, role, answer.fingerprints)
            self._dtls_out(self.dtls.start(time.monotonic()))
            await self.dtls_done

    def route_media(self, feed: Callable[[bytes, int], None], downlink_ssrc: int | None) -> None:
        """Deliver this session's RTP/RTCP to ``feed`` (the user's downlink accounting)."""
        self._feed = feed
        if self.mux is not None and downlink_ssrc is not None:
            self.mux.register_ssrc(downlink_ssrc, feed)

    def fail(self, exc: Exception) -> None:
        """Wake whoever waits for ICE or DTLS with ``exc`` (the signaling session ended)."""
        for fut in (self.ice_done, self.dtls_done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: a join may already have given up

    def send_consent(self) -> None:
        """A consent-freshness check (RFC 7675), so the server keeps us past 30 s."""
        if self.ice is not None and self.send is not None and not self.closed:
            self._transmit(self.ice.request(time.monotonic(), nominate=False))

    def close(self) -> None:
        """Stop reading, forget the address and close the socket (idempotent, synchronous)."""
        if self.closed:
            return
        self.closed = True
        self.send = None
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        if self.mux is not None and self.local_ip is not None:
            self.mux.unregister(self.local_ip, self.answer.ssrc if self.answer else None)
        if self.sock is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self.sock.close()
            self.sock = None
        self.fail(SessionError("media session closed"))

    # ------------------------------------------------------------------ datagrams

    def _transmit(self, data: bytes) -> None:
        send = self.send
        if send is None:
            return
        try:
            send(data)
        except OSError:
            self.counters.socket_errors += 1

    def _on_readable(self) -> None:
        """HOT PATH: drain the socket; RTP/RTCP to the monitor, the rest to the slow path."""
        sock = self.sock
        if sock is None:
            return
        recv = sock.recv
        feed = self._feed
        clock = self.ctx.clock
        for _ in range(READ_BATCH):
            try:
                data = recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable: the server went away
                self.counters.socket_errors += 1
                return
            if data and 127 < data[0] < 192:
                if feed is not None:
                    feed(data, clock())
                else:
                    self.counters.early_media += 1
            else:
                self._control(data)

    def _on_readable_kernel_ts(self) -> None:
        """HOT PATH, as :meth:`_on_readable` but with the kernel's receive timestamps."""
        sock = self.sock
        if sock is None:
            return
        recvmsg = sock.recvmsg
        feed = self._feed
        unpack = _TIMESPEC.unpack
        clock = self.ctx.clock
        for _ in range(READ_BATCH):
            try:
                data, ancillary, _flags, _addr = recvmsg(2048, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable: the server went away
                self.counters.socket_errors += 1
                return
            if data and 127 < data[0] < 192:
                if feed is None:
                    self.counters.early_media += 1
                elif ancillary:
                    sec, nsec = unpack(ancillary[0][2])
                    feed(data, sec * 1_000_000_000 + nsec)
                else:  # pragma: no cover - the kernel always stamps when asked
                    feed(data, clock())
            else:
                self._control(data)

    def on_media(self, data: bytes, now: int) -> None:
        """RTP/RTCP the shared socket could not route by SSRC (before our monitor exists)."""
        if self._feed is not None:
            self._feed(data, now)
        else:
            self.counters.early_media += 1

    def on_control(self, data: bytes) -> None:
        """STUN/DTLS routed to us by the shared socket."""
        self._control(data)

    def _control(self, data: bytes) -> None:
        if not data or self.closed:
            return
        first = data[0]
        if first < 4:
            try:
                ok = self.ice is not None and self.ice.handle(data, time.monotonic())
            except StunClientError:
                self.counters.stun_errors += 1
                return
            if ok and not self.ice_done.done():
                self.ice_done.set_result(None)
        elif 19 < first < 64 and self.dtls is not None:
            self._dtls_out(self.dtls.receive(data, time.monotonic()))

    def _dtls_out(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self._transmit(datagram)
        dtls = self.dtls
        if dtls is None:
            return
        if dtls.state == "connected" and self.srtp is None:
            self.srtp = SrtpSession(dtls.srtp_keys())
            self._on_srtp(self)
            if not self.dtls_done.done():
                self.dtls_done.set_result(None)
        elif dtls.state == "failed" and not self.dtls_done.done():
            self.dtls_done.set_exception(SessionError(f"DTLS failed: {dtls.failure}"))
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        due = dtls.next_timeout()
        if due is not None and dtls.state == "handshaking":
            delay = max(0.0, due - time.monotonic())
            self._dtls_timer = self._loop.call_later(delay, self._on_dtls_timer)

    def _on_dtls_timer(self) -> None:
        self._dtls_timer = None
        if self.dtls is not None and not self.closed:
            self._dtls_out(self.dtls.handle_timeout(time.monotonic()))

    def describe(self) -> str:
        """Where the session is in its setup, for failure reports."""
        dtls = self.dtls
        try:
            local = self.sock.getsockname() if self.sock is not None else self.local_ip
        except OSError:
            local = None
        return (
            f"local={local} ice={'ok' if self.ice and self.ice.succeeded else 'no'} "
            f"dtls={dtls.state if dtls else '-'}"
            f"{'/' + str(dtls.failure) if dtls and dtls.failure else ''} "
            f"dtls_dropped={dtls.dropped if dtls else 0}"
        )
