"""One synthetic user: the real signaling protocol around a real client-side WebRTC stack.

Per user: one WebSocket (``websockets`` client) for signaling, and one media session at a
time (``session.MediaSession``: a local address, ICE, DTLS, SRTP), as a page has one
RTCPeerConnection at a time. What outlives a session belongs to the user: its identity and
SSRC, its floor, its uplink stream (``uplink.UplinkStream``) and its receive-side accounting
(``downlink.DownlinkMonitor``).

``media reset`` (docs/PROTOCOL.md): the server lost this user's media session (its media
worker died) but the user keeps its membership and floor. The user then does what the page
does, with no click: drop the session, make a new one (new address, new ICE credentials, a
new DTLS endpoint), send a new ``offer`` on the same WebSocket, and carry on: a talker that
still holds the floor keeps talking, a listener keeps accounting. Each outage is recorded
(:class:`Reoffer`) so that what it cost is reported apart from ordinary loss.

This module is the I/O glue around sans-IO parts: the WebSocket, timers and the sessions.
(Over 400 lines because it is one user's whole protocol, join to re-offer to floor to
leaving; the transport of a session is in session.py, the shared state in context.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from .accounting import OutageMark
from .context import RED_PT, BenchContext
from .downlink import DownlinkMonitor
from .mux import SharedSocket
from .session import LinkCounters, MediaSession
from .uplink import UplinkStream

__all__ = ["ClientError", "Reoffer", "SyntheticClient"]

#: Re-offers one user attempts for one reset (each waits at most the join timeout).
REOFFER_ATTEMPTS = 3
#: Reconnects one user attempts after its WebSocket closed (a multi-node run).
RECONNECT_ATTEMPTS = 8


class ClientError(RuntimeError):
    """A synthetic client could not join or lost its session (``retry_ms``: the server's
    ``try_later`` hint, if it gave one)."""

    def __init__(self, message: str, retry_ms: object = None) -> None:
        super().__init__(message)
        self.retry_ms = retry_ms if isinstance(retry_ms, int) else None


@dataclass(slots=True)
class Reoffer:
    """One ``media reset`` and what followed it."""

    reason: str
    reset_at: float  # perf_counter
    reset_ns: int  # the run's clock (same as packet receive times)
    seqs_at_reset: dict[int, int]
    run_index: int | None  # the monitor's run count at the reset (None: no monitor yet)
    back_at: float | None = None
    back_ns: int | None = None
    seqs_at_back: dict[int, int] | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    #: a member of the room (this one included) was pressing the button when it began
    floor_busy: bool = False

    @property
    def ms(self) -> float | None:
        """Reset to media connected again on the new session."""
        return None if self.back_at is None else (self.back_at - self.reset_at) * 1000

    def mark(self) -> OutageMark | None:
        if self.run_index is None:
            return None
        return OutageMark(self.run_index, self.seqs_at_reset, self.seqs_at_back)


class SyntheticClient:
    """A bench user. ``await join(url)``, then floor requests and talking; ``close()``."""

    def __init__(self, ctx: BenchContext, room: str, name: str) -> None:
        if ctx.shared_socket and ctx.mux is None:
            ctx.mux = SharedSocket(
                asyncio.get_running_loop(), ctx.kernel_timestamps, clock=ctx.clock
            )
        self.ctx = ctx
        self.room = room
        self.name = name
        ctx.rooms.setdefault(room, []).append(self)
        self.id: str | None = None
        #: the WebSocket URL of its current socket, and of its first join (a multi-node run
        #: spreads users over nodes; a reconnect goes through another)
        self.via: str | None = None
        self.join_via: str | None = None
        self.ssrc = secrets.randbits(32) or 1
        while self.ssrc in ctx.talkers:
            self.ssrc = secrets.randbits(32) or 1
        self.cname = secrets.token_hex(8)
        self.ws: ClientConnection | None = None
        self.session: MediaSession | None = None
        self.counters = LinkCounters()
        self.uplink: UplinkStream | None = None
        self.monitor: DownlinkMonitor | None = None
        self.talking = False
        self.joined_at: float | None = None
        self.join_ms: float | None = None
        self.media_failed: str | None = None
        self.media_failed_at: float | None = None
        self.errors: list[dict[str, Any]] = []
        self.closed = False
        #: offer RED (RFC 2198) and send the loop under the RED payload type (``--red``)
        self.red = ctx.red
        self.ws_messages = 0
        self.reoffers: list[Reoffer] = []
        self._reconnecting = False
        self._loop = asyncio.get_running_loop()
        self._waiters: list[tuple[frozenset[str], asyncio.Future[tuple[dict[str, Any], float]]]] = []
        self._reader_task: asyncio.Task[None] | None = None
        self._reoffer_task: asyncio.Task[None] | None = None
        self._media_up: asyncio.Future[None] = self._loop.create_future()
        #: the uplink's ``send``: None while no session is up (nothing leaves, as with a
        #: closed peer connection)
        self._send: Callable[[bytes], int] | None = None
        self._timeout = 10.0
        self.sent_packets = 0
        self.send_errors = 0
        self.frames_not_sent = 0

    @property
    def socket_errors(self) -> int:
        return self.counters.socket_errors

    @property
    def local_ip(self) -> str | None:
        return self.session.local_ip if self.session is not None else None

    @property
    def answer_ssrc(self) -> int | None:
        """The server's downlink SSRC for us in the current session."""
        session = self.session
        return session.answer.ssrc if session is not None and session.answer else None

    # ------------------------------------------------------------------ signaling

    async def join(self, ws_url: str, origin: str | None, timeout: float = 10.0) -> float:
        """WebSocket open -> joined -> offer/answer -> ICE -> DTLS -> media connected.

        Returns the join time in ms (from starting to open the WebSocket to media flowing:
        our DTLS is up and the server said ``media connected``).
        """
        t0 = time.perf_counter()
        self._timeout = timeout
        async with asyncio.timeout(timeout):
            await self._enter_room(ws_url, origin, timeout)
            await self._negotiate(self._ws_offer, timeout)
        self.joined_at = time.perf_counter()
        self.join_ms = (self.joined_at - t0) * 1000
        self.join_via = ws_url
        return self.join_ms

    async def _enter_room(self, ws_url: str, origin: str | None, timeout: float) -> None:
        """A WebSocket to ``ws_url`` and ``join`` on it, up to the server's ``joined``."""
        extra: dict[str, Any] = {}
        if self.ctx.ws_source_addresses:
            extra["local_addr"] = (self.ctx.allocate_address(), 0)
        self.via = ws_url
        self.ws = await websockets.connect(
            ws_url, origin=origin, max_size=1 << 20, open_timeout=timeout,  # type: ignore[arg-type]
            ping_interval=None, compression=None, **extra,
        )
        self._reader_task = asyncio.ensure_future(self._read_ws())
        joined = self._expect("joined", "error")
        await self._send_json({"type": "join", "room": self.room, "name": self.name})
        msg, _ = await joined
        if msg["type"] == "error":
            raise ClientError(f"join refused: {msg.get('code')}: {msg.get('message')}",
                              msg.get("retry_ms"))
        self.id = str(msg["you"]["id"])

    def make_offer(self) -> str:
        """Start a new media session (the old one, if any, is closed) and return its offer."""
        if self.session is not None:
            self.session.close()
        self._send = None
        self.session = MediaSession(self.ctx, self.counters, self._on_srtp)
        return self.session.make_offer(self.ssrc, self.cname, RED_PT if self.red else None)

    async def connect_media(self, answer_sdp: str, timeout: float = 10.0) -> None:
        """ICE then DTLS on the current session, from the server's answer."""
        if self.session is None:
            raise ClientError("make_offer() first")
        await self.session.connect(answer_sdp, timeout)

    async def _negotiate(self, offer_answer: Callable[[str], Awaitable[str]], timeout: float) -> None:
        """A new session: offer -> answer (through ``offer_answer``) -> ICE -> DTLS -> the
        server's ``media connected``."""
        if self._media_up.done():
            self._media_up = self._loop.create_future()
        offer = self.make_offer()
        answer = await offer_answer(offer)
        await self.connect_media(answer, timeout)
        await self._media_up

    async def _ws_offer(self, offer: str) -> str:
        """The offer on the WebSocket; the server's answer, or its refusal as an error."""
        answered = self._expect("answer", "error")
        await self._send_json({"type": "offer", "sdp": offer})
        msg, _ = await answered
        if msg["type"] == "error":
            raise ClientError(f"offer refused: {msg.get('code')}: {msg.get('message')}")
        return str(msg["sdp"])

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
                    state = msg.get("state")
                    if state == "connected":
                        self.media_connected()
                    elif state == "reset":
                        self.media_reset(str(msg.get("reason") or "reset"))
                    else:
                        self.media_failed = str(msg.get("reason") or state)
                        self.media_failed_at = now
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
            if ws is self.ws and not self.closed and self.joined_at is not None:
                self._socket_lost(ws.close_code)

    def _fail_all(self, exc: Exception) -> None:
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: its waiter may have given up (a failed send)
        self._waiters.clear()
        if self.session is not None:
            self.session.fail(exc)
        if not self._media_up.done():
            self._media_up.set_exception(exc)
            self._media_up.exception()  # mark retrieved: a join may already have given up

    # ------------------------------------------------------------------ re-offer

    def media_reset(
        self, reason: str, offer_answer: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        """The server lost our media session (``media reset``): drop it at once (nothing is
        sent meanwhile) and re-offer. ``offer_answer`` replaces the WebSocket exchange
        (tests drive the media plane directly). A reset during a re-offer starts it over."""
        if self.closed:
            return
        record = self._outage(reason)
        self._reoffer_task = asyncio.ensure_future(
            self._reoffer(record, offer_answer or self._ws_offer)
        )

    def _outage(self, reason: str) -> Reoffer:
        """Media stops here: the session is dropped and the outage recorded (a re-offer or
        a reconnect in progress is abandoned: the new one starts over)."""
        seqs = self.ctx.room_seqs(self.room)
        run_index = None
        if self.monitor is not None:
            self.monitor.restart()
            run_index = self.monitor.restarts[-1]
        record = Reoffer(reason, time.perf_counter(), self.ctx.clock(), seqs, run_index,
                         floor_busy=any(c.talking for c in self.ctx.rooms.get(self.room, ())))
        self.reoffers.append(record)
        if self.session is not None:
            self.session.close()
        self._send = None
        if self._reoffer_task is not None and not self._reoffer_task.done():
            self._reoffer_task.cancel()
        return record

    def _socket_lost(self, code: int | None) -> None:
        """Our joined WebSocket closed (its node died, was stopped, or closed it with 1012):
        with ``ctx.reconnect_to`` (a multi-node run), do what the page does, with no click:
        reconnect after its backoff, through another node, to the same room."""
        if not self.ctx.reconnect_to or self._reconnecting:
            return
        record = self._outage(f"socket closed ({code})")
        self.talking = False  # the page's session ended: its button no longer sends
        self._reoffer_task = asyncio.ensure_future(self._reconnect(record))

    async def _reconnect(self, record: Reoffer) -> None:
        """New WebSockets (the next node each time) until one joins and media is up again,
        after the page's delays (www/signaling.js ``backoffDelay``: 500 ms doubling to 10 s,
        +-25 %; at least the server's ``retry_ms``)."""
        nodes = self.ctx.reconnect_to
        start = next((i for i, (url, _) in enumerate(nodes) if url == self.via), -1)
        retry_ms: int | None = None
        self._reconnecting = True
        try:
            for attempt in range(RECONNECT_ATTEMPTS):
                base = min(10.0, 0.5 * 2 ** attempt) * random.uniform(0.75, 1.25)
                await asyncio.sleep(max(base, (retry_ms or 0) / 1000))
                if self.closed:
                    return
                record.attempts += 1
                ws_url, origin = nodes[(start + 1 + attempt) % len(nodes)]
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._enter_room(ws_url, origin, self._timeout)
                        await self._negotiate(self._ws_offer, self._timeout)
                except (TimeoutError, RuntimeError, ValueError, OSError,
                        websockets.WebSocketException) as exc:
                    record.errors.append(f"{type(exc).__name__}: {exc}")
                    retry_ms = exc.retry_ms if isinstance(exc, ClientError) else None
                    await self._drop_socket()
                    continue
                record.back_at = time.perf_counter()
                record.back_ns = self.ctx.clock()
                record.seqs_at_back = self.ctx.room_seqs(self.room)
                return
        finally:
            self._reconnecting = False

    async def _drop_socket(self) -> None:
        """Close the current WebSocket (a failed reconnect attempt) and its reader."""
        ws, reader = self.ws, self._reader_task
        if ws is not None:
            with contextlib.suppress(TimeoutError, OSError, websockets.WebSocketException):
                await asyncio.wait_for(ws.close(), 2.0)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _reoffer(self, record: Reoffer, offer_answer: Callable[[str], Awaitable[str]]) -> None:
        for _ in range(REOFFER_ATTEMPTS):
            if self.closed:
                return
            record.attempts += 1
            try:
                async with asyncio.timeout(self._timeout):
                    await self._negotiate(offer_answer, self._timeout)
            except (TimeoutError, RuntimeError, ValueError, OSError,
                    websockets.WebSocketException) as exc:
                record.errors.append(f"{type(exc).__name__}: {exc}")
                if self.ws is None or self.ws.close_code is not None:
                    return  # the signaling session is over: nothing to re-offer on
                continue
            record.back_at = time.perf_counter()
            record.back_ns = self.ctx.clock()
            record.seqs_at_back = self.ctx.room_seqs(self.room)
            return

    async def wait_reoffer(self) -> None:
        """Until the current re-offer (if any) has finished, one way or another."""
        task = self._reoffer_task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_srtp(self, session: MediaSession) -> None:
        """A session's DTLS is up: the first one creates the uplink stream and the downlink
        accounting; a later one (after a re-offer) re-keys them, and they go on."""
        srtp, answer, ctx = session.srtp, session.answer, self.ctx
        assert srtp is not None and answer is not None
        unprotect_rtcp = srtp.unprotect_rtcp if ctx.verify_rtcp else None
        # With --red the loop is RED payloads, sent and received under the RED payload type.
        if self.red and answer.red_pt is None:
            session.fail(ClientError("the server did not accept RED (RFC 2198)"))
            return
        payload_type = (answer.red_pt if self.red else answer.opus_pt) or 111
        if self.uplink is None or self.monitor is None:
            self.uplink = UplinkStream(
                self.ssrc,
                ctx.frames,
                srtp.protect,
                ctx.clock,
                payload_type=payload_type,
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
                unprotect_rtcp=unprotect_rtcp,
                expected_ssrc=answer.ssrc,
                opus_pt=payload_type,
                level_id=answer.audio_level_id or 1,
                mid_id=answer.mid_ext_id,
                mid=answer.mid or "0",
                sample_every=ctx.sample_every,
                burst_start=(answer.opus_pt or 111, ctx.opus_frames) if self.red else None,
            )
        else:
            self.uplink.rekey(srtp.protect)
            self.monitor.rekey(srtp.unprotect, unprotect_rtcp, answer.ssrc)
        session.route_media(self.monitor.feed, answer.ssrc)
        self._send = session.send

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
        send = self._send
        if send is None:  # no media session (re-offering): a closed peer connection sends nothing
            self.frames_not_sent += 1
            return
        try:
            send(self.uplink.next_packet(tick))  # type: ignore[union-attr]
            self.sent_packets += 1
        except OSError:
            self.send_errors += 1

    def send_consent(self) -> None:
        """A consent-freshness check (RFC 7675), so the server keeps us past 30 s."""
        if self.session is not None and not self.closed:
            self.session.send_consent()

    def describe(self) -> str:
        """Where the client is in its join, for failure reports."""
        session = self.session.describe() if self.session is not None else "no session"
        c = self.counters
        return (
            f"id={self.id} {session} media_up={self._media_up.done()} "
            f"stun_errors={c.stun_errors} socket_errors={c.socket_errors} "
            f"errors={self.errors[:2]} media_failed={self.media_failed}"
        )

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        """Leave: close the WebSocket (the server removes our peer) and the UDP socket."""
        if self.closed:
            return
        self.closed = True
        self.talking = False
        if self._reoffer_task is not None:
            self._reoffer_task.cancel()
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 2.0)
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
        for task in (self._reader_task, self._reoffer_task):
            if task is not None:
                task.cancel()
                # Either ends by cancellation or by the closed connection: both are fine.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.detach()

    def detach(self) -> None:
        """Stop reading the media session and close it (idempotent, synchronous)."""
        self._send = None
        if self.session is not None:
            self.session.close()
        if self.monitor is not None:
            self.monitor.finish()
