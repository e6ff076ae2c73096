"""One synthetic user: the real signaling protocol plus a real client-side WebRTC stack.

Per user: one WebSocket (``websockets`` client) for signaling and one UDP socket for media,
connected to the server's candidate (a connected socket only receives the server's datagrams
and sends without an address lookup). On the socket, in order, as a browser would:

1. ICE: a nominating STUN Binding request (``stunclient.IceController``), retransmitted
   until answered; then a consent check every few seconds (RFC 7675);
2. DTLS client (``sfu.dtls.DtlsEndpoint``, role ``client`` because the server answers
   ``a=setup:passive``), checked against the answer's fingerprint;
3. SRTP (``sfu.srtp.SrtpSession``): the uplink stream (``uplink.UplinkStream``) and the
   receive-side accounting (``downlink.DownlinkMonitor``).

This module is the I/O glue around those sans-IO parts: sockets, the WebSocket and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from sfu.certificate import Certificate
from sfu.dtls import DtlsEndpoint
from sfu.ice import generate_pwd, generate_ufrag
from sfu.sdp import offerer_dtls_role
from sfu.srtp import SrtpSession

from .downlink import DownlinkMonitor, LatencyHistogram
from .mux import SharedSocket
from .offer import Answer, OfferParams, build_offer, parse_answer
from .stunclient import IceController, StunClientError
from .uplink import TalkLog, UplinkStream

__all__ = ["BenchContext", "ClientError", "SyntheticClient"]

#: Datagrams read per reader wake-up before yielding to the loop.
READ_BATCH = 64
#: STUN check retransmission interval while connecting (RFC 8445 allows 50 ms pacing).
CHECK_INTERVAL = 0.05
#: Linux SO_TIMESTAMPNS (asm-generic/socket.h): the kernel stamps each datagram with the
#: CLOCK_REALTIME time it was queued on our socket (struct timespec in a control message).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class ClientError(RuntimeError):
    """A synthetic client could not join or lost its session."""


class BenchContext:
    """What all clients of one run share: the clock, the certificate, the Opus loop, the
    talkers' send logs (so a listener can match any talker's packet) and the histogram.

    With ``kernel_timestamps`` (the default) a packet's receive time is the kernel's
    SO_TIMESTAMPNS stamp, taken when the server's send put it on our socket, and send times
    use the same clock (CLOCK_REALTIME). The latency measured is then the server's path
    alone: time a packet waits in our socket because the bench is busy is not charged to
    the server. Without it, receive time is read when the bench gets to the packet.
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        *,
        sample_every: int = 50,
        verify_rtcp: bool = False,
        local_host: str = "127.0.0.1",
        kernel_timestamps: bool = True,
        shared_socket: bool = False,
    ) -> None:
        self.frames = frames
        self.sample_every = sample_every
        self.verify_rtcp = verify_rtcp
        self.local_host = local_host
        self.kernel_timestamps = kernel_timestamps
        #: with ``shared_socket`` every user is a loopback address on one socket (mux.py)
        self.shared_socket = shared_socket
        self.mux: SharedSocket | None = None
        self.clock: Callable[[], int] = time.time_ns if kernel_timestamps else time.perf_counter_ns
        self.certificate = Certificate.generate("walkie-bench")
        self.fingerprint = self.certificate.fingerprint_text("sha-256")
        self.talkers: dict[int, TalkLog] = {}
        self.hist = LatencyHistogram()
        self.preroll_hist = LatencyHistogram()
        self.clients: list[SyntheticClient] = []


class SyntheticClient:
    """A bench user. ``await join(url)``, then floor requests and talking; ``close()``."""

    def __init__(self, ctx: BenchContext, room: str, name: str) -> None:
        if ctx.shared_socket and ctx.mux is None:
            ctx.mux = SharedSocket(
                asyncio.get_running_loop(), ctx.kernel_timestamps, clock=ctx.clock
            )
        self.ctx = ctx
        self.mux = ctx.mux
        self.room = room
        self.name = name
        self.id: str | None = None
        self.ssrc = secrets.randbits(32) or 1
        while self.ssrc in ctx.talkers:
            self.ssrc = secrets.randbits(32) or 1
        self.ws: ClientConnection | None = None
        self.sock: socket.socket | None = None
        self.answer: Answer | None = None
        self.ice: IceController | None = None
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpSession | None = None
        self.uplink: UplinkStream | None = None
        self.monitor: DownlinkMonitor | None = None
        self.talking = False
        self.joined_at: float | None = None
        self.join_ms: float | None = None
        self.media_failed: str | None = None
        self.errors: list[dict[str, Any]] = []
        self.closed = False
        self.socket_errors = 0
        self.stun_errors = 0
        self.early_media = 0
        self.ws_messages = 0
        self._loop = asyncio.get_running_loop()
        self._waiters: list[tuple[frozenset[str], asyncio.Future[tuple[dict[str, Any], float]]]] = []
        self._reader_task: asyncio.Task[None] | None = None
        self._ice_done: asyncio.Future[None] = self._loop.create_future()
        self._dtls_done: asyncio.Future[None] = self._loop.create_future()
        self._media_up: asyncio.Future[None] = self._loop.create_future()
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._send: Callable[[bytes], int] | None = None
        self._local_ufrag = ""
        self.local_ip: str | None = None
        self._feed: Callable[[bytes, int], None] | None = None
        self.sent_packets = 0
        self.send_errors = 0

    # ------------------------------------------------------------------ signaling

    async def join(self, ws_url: str, origin: str | None, timeout: float = 10.0) -> float:
        """WebSocket open -> joined -> offer/answer -> ICE -> DTLS -> media connected.

        Returns the join time in ms (from starting to open the WebSocket to media flowing:
        our DTLS is up and the server said ``media connected``).
        """
        t0 = time.perf_counter()
        async with asyncio.timeout(timeout):
            self.ws = await websockets.connect(
                ws_url, origin=origin, max_size=1 << 20, open_timeout=timeout,  # type: ignore[arg-type]
                ping_interval=None, compression=None,
            )
            self._reader_task = asyncio.ensure_future(self._read_ws())
            joined = self._expect("joined")
            await self._send_json({"type": "join", "room": self.room, "name": self.name})
            msg, _ = await joined
            self.id = str(msg["you"]["id"])
            offer = self.make_offer()
            answered = self._expect("answer")
            await self._send_json({"type": "offer", "sdp": offer})
            msg, _ = await answered
            await self.connect_media(str(msg["sdp"]), timeout)
            await self._media_up
        self.joined_at = time.perf_counter()
        self.join_ms = (self.joined_at - t0) * 1000
        return self.join_ms

    def make_offer(self) -> str:
        """Take a local address (own socket, or an address on the shared socket) and write
        the SDP offer for it."""
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
                ssrc=self.ssrc,
                cname=secrets.token_hex(8),
                host=host,
                port=port,
                session_id=secrets.randbits(62),
            )
        )

    async def connect_media(self, answer_sdp: str, timeout: float = 10.0) -> None:
        """ICE (nominating check, retransmitted) then the DTLS handshake, from the answer."""
        if self.sock is None and self.local_ip is None:
            raise ClientError("make_offer() first")
        answer = self.answer = parse_answer(answer_sdp)
        if answer.audio_level_id is None or not 1 <= answer.audio_level_id <= 14:
            raise ClientError("the server did not accept the audio-level extension")
        if self.mux is not None and self.local_ip is not None:
            self._send = self.mux.sender(self.local_ip, answer.candidates[0])
        elif self.sock is not None:
            self.sock.connect(answer.candidates[0])
            self._send = self.sock.send
            reader = self._on_readable_kernel_ts if self.ctx.kernel_timestamps else self._on_readable
            self._loop.add_reader(self.sock.fileno(), reader)
        self.ice = IceController(self._local_ufrag, answer.ice_ufrag, answer.ice_pwd)
        async with asyncio.timeout(timeout):
            for _ in range(int(timeout / CHECK_INTERVAL) + 1):
                self._transmit(self.ice.request(time.monotonic()))
                try:
                    await asyncio.wait_for(asyncio.shield(self._ice_done), CHECK_INTERVAL)
                    break
                except TimeoutError:
                    continue
            await self._ice_done
            role = offerer_dtls_role(answer.setup)
            self.dtls = DtlsEndpoint(self.ctx.certificate, role, answer.fingerprints)
            self._dtls_out(self.dtls.start(time.monotonic()))
            await self._dtls_done

    def media_connected(self) -> None:
        """The server says our media is up (its ``media connected`` message or event)."""
        if not self._media_up.done():
            self._media_up.set_result(None)

    async def _send_json(self, obj: dict[str, Any]) -> None:
        if self.ws is None:
            raise ClientError("not connected")
        await self.ws.send(json.dumps(obj))

    def _expect(self, *types: str) -> asyncio.Future[tuple[dict[str, Any], float]]:
        """A future for the next message of one of ``types`` (with its perf_counter time)."""
        fut: asyncio.Future[tuple[dict[str, Any], float]] = self._loop.create_future()
        self._waiters.append((frozenset(types), fut))
        return fut

    async def _read_ws(self) -> None:
        ws = self.ws
        assert ws is not None
        try:
            async for raw in ws:
                now = time.perf_counter()
                self.ws_messages += 1
                try:
                    msg = json.loads(raw)
                    kind = msg["type"]
                except (ValueError, KeyError, TypeError):
                    self.errors.append({"code": "client_bad_json"})
                    continue
                if kind == "error":
                    self.errors.append(msg)
                    if msg.get("fatal"):
                        self._fail_all(ClientError(f"server error {msg.get('code')}"))
                elif kind == "media":
                    if msg.get("state") == "connected":
                        self.media_connected()
                    else:
                        self.media_failed = str(msg.get("reason") or msg.get("state"))
                        self._fail_all(ClientError(f"media failed: {self.media_failed}"))
                for types, fut in list(self._waiters):
                    if kind in types:
                        self._waiters.remove((types, fut))
                        if not fut.done():
                            fut.set_result((msg, now))
                        break
        except websockets.ConnectionClosed:
            pass
        finally:
            self._fail_all(ClientError("signaling connection closed"))

    def _fail_all(self, exc: Exception) -> None:
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters.clear()
        for fut in (self._ice_done, self._dtls_done, self._media_up):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: a join may already have given up

    # ------------------------------------------------------------------ floor control

    async def request_floor(self, timeout: float = 10.0) -> tuple[str, float]:
        """Send floor_request; return (``granted`` | ``queued`` | ``denied``, reply time)."""
        fut = self._expect("floor_granted", "floor_queued", "floor_denied")
        await self._send_json({"type": "floor_request"})
        msg, at = await asyncio.wait_for(fut, timeout)
        return str(msg["type"]).removeprefix("floor_"), at

    def expect_grant(self) -> asyncio.Future[tuple[dict[str, Any], float]]:
        """A future for a later floor_granted (after being queued) or floor_revoked."""
        return self._expect("floor_granted", "floor_revoked")

    async def release_floor(self, timeout: float = 5.0) -> bool:
        """Send floor_release and wait for its acknowledgement; False on timeout."""
        fut = self._expect("floor_released")
        await self._send_json({"type": "floor_release"})
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ media

    def start_talking(self) -> None:
        """Press: the next metronome tick sends this client's packets (a burst starts)."""
        if self.uplink is not None:
            self.uplink.start_burst()
            self.uplink.log.grant_seq = 1 << 62  # not granted yet: what we send is pre-roll
        self.talking = True

    def granted(self) -> int:
        """The grant arrived: returns the first sequence number that must reach everyone."""
        if self.uplink is None:
            return 0
        self.uplink.log.grant_seq = self.uplink.seq
        return self.uplink.seq

    def stop_talking(self) -> int:
        """Release the button; returns the last talker sequence number sent (full counter)."""
        self.talking = False
        return -1 if self.uplink is None else self.uplink.seq - 1

    def send_frame(self, tick: int) -> None:
        """HOT PATH (per talker per 20 ms): one SRTP packet to the server."""
        try:
            self._send(self.uplink.next_packet(tick))  # type: ignore[misc,union-attr]
            self.sent_packets += 1
        except OSError:
            self.send_errors += 1

    def send_consent(self) -> None:
        """A consent-freshness check (RFC 7675), so the server keeps us past 30 s."""
        if self.ice is not None and self._send is not None and not self.closed:
            self._transmit(self.ice.request(time.monotonic(), nominate=False))

    def _transmit(self, data: bytes) -> None:
        try:
            self._send(data)  # type: ignore[misc]
        except OSError:
            self.socket_errors += 1

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
                self.socket_errors += 1
                return
            if data and 127 < data[0] < 192:
                if feed is not None:
                    feed(data, clock())
                else:
                    self.early_media += 1
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
                self.socket_errors += 1
                return
            if data and 127 < data[0] < 192:
                if feed is None:
                    self.early_media += 1
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
            self.early_media += 1

    def on_control(self, data: bytes) -> None:
        """STUN/DTLS routed to us by the shared socket."""
        self._control(data)

    def _control(self, data: bytes) -> None:
        if not data:
            return
        first = data[0]
        if first < 4:
            try:
                ok = self.ice is not None and self.ice.handle(data, time.monotonic())
            except StunClientError:
                self.stun_errors += 1
                return
            if ok and not self._ice_done.done():
                self._ice_done.set_result(None)
        elif 19 < first < 64 and self.dtls is not None:
            self._dtls_out(self.dtls.receive(data, time.monotonic()))

    def _dtls_out(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self._transmit(datagram)
        dtls = self.dtls
        if dtls is None:
            return
        if dtls.state == "connected" and self.srtp is None:
            self._on_dtls_connected()
        elif dtls.state == "failed" and not self._dtls_done.done():
            self._dtls_done.set_exception(ClientError(f"DTLS failed: {dtls.failure}"))
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

    def _on_dtls_connected(self) -> None:
        assert self.dtls is not None and self.answer is not None
        srtp = self.srtp = SrtpSession(self.dtls.srtp_keys())
        ctx = self.ctx
        answer = self.answer
        self.uplink = UplinkStream(
            self.ssrc,
            ctx.frames,
            srtp.protect,
            ctx.clock,
            payload_type=answer.opus_pt or 111,
            audio_level_id=answer.audio_level_id or 1,
            mid_ext_id=answer.mid_ext_id,
            mid=answer.mid or "0",
        )
        self.uplink.log.name = self.name
        ctx.talkers[self.ssrc] = self.uplink.log
        self.monitor = DownlinkMonitor(
            ctx.talkers,
            ctx.hist,
            self.ssrc,
            preroll_hist=ctx.preroll_hist,
            unprotect=srtp.unprotect,
            unprotect_rtcp=srtp.unprotect_rtcp if ctx.verify_rtcp else None,
            expected_ssrc=answer.ssrc,
            opus_pt=answer.opus_pt or 111,
            level_id=answer.audio_level_id or 1,
            mid_id=answer.mid_ext_id,
            mid=answer.mid or "0",
            sample_every=ctx.sample_every,
        )
        self._feed = self.monitor.feed
        if self.mux is not None and answer.ssrc is not None:
            self.mux.register_ssrc(answer.ssrc, self.monitor.feed)
        if not self._dtls_done.done():
            self._dtls_done.set_result(None)

    def describe(self) -> str:
        """Where the client is in its join, for failure reports."""
        dtls = self.dtls
        try:
            local = self.sock.getsockname() if self.sock is not None else self.local_ip
        except OSError:
            local = None
        return (
            f"id={self.id} local={local} ice={'ok' if self.ice and self.ice.succeeded else 'no'} "
            f"dtls={dtls.state if dtls else '-'}"
            f"{'/' + str(dtls.failure) if dtls and dtls.failure else ''} "
            f"dtls_dropped={dtls.dropped if dtls else 0} media_up={self._media_up.done()} "
            f"stun_errors={self.stun_errors} socket_errors={self.socket_errors} "
            f"errors={self.errors[:2]} media_failed={self.media_failed}"
        )

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        """Leave: close the WebSocket (the server removes our peer) and the UDP socket."""
        if self.closed:
            return
        self.closed = True
        self.talking = False
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 2.0)
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
        if self._reader_task is not None:
            self._reader_task.cancel()
            # The reader ends by cancellation or by the closed connection: either is fine.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self.detach()

    def detach(self) -> None:
        """Stop reading the UDP socket and close it (idempotent, synchronous)."""
        if self.mux is not None and self.local_ip is not None:
            self.mux.unregister(self.local_ip, self.answer.ssrc if self.answer else None)
        if self.sock is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self.sock.close()
            self.sock = None
        if self.monitor is not None:
            self.monitor.finish()
