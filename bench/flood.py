"""A signaling flood, as an attacker would run it, inside the documented limits.

One client address opens ``connections`` WebSockets (64: the server's default per-address
limit, ``--max-connections-per-ip``), joins each to a room (an offer needs a joined member),
then sends ``rate`` invalid offers per second on each (20: the per-connection message rate),
each as large as the server parses (32 KiB; a message may be 64 KiB). The server's budgets
bind it since issue 9: its joins (a burst of 20, then 2/s), its bytes per second, and the
fifth unusable offer of a connection closes it. When signaling and media shared one process and
one event loop, that kept the loop busy for the whole flood and audio in an unrelated room
stalled for seconds (docs/BENCHMARKS.md, "Media in worker processes", has the figures before
and after media moved to worker processes).

The offer (:func:`flood_offer`) is a Chromium-shaped audio offer padded with host candidates
to the size asked for, whose ``a=group:BUNDLE`` names a mid no m-line has: every line is
valid, so the server parses the whole offer (several ms of CPU) before refusing it
(``bad_offer``). Every reply is read (a client that stops reading would be dropped by the
server, which is not the attack) and counted by error code.

Bounded: at most ``ceil(seconds * rate)`` offers per connection, and ``seconds`` of wall
time: a connection that falls behind its schedule (the server is slow to read) skips the
offers it is late for rather than bunching them, so the rate limit is never exceeded on
purpose, and at the end every connection is reset (not closed), so that offers still
queued in the sockets do not keep the server busy after the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from .offer import OfferParams, build_offer

__all__ = ["FLOOD_ADDRESS", "Flood", "FloodSettings", "flood_offer"]

#: The flood's source address: a loopback address no bench user has (they live in 127.1+/16
#: and servers on 127.0.0.1), so the server's per-address limit counts the flood alone.
FLOOD_ADDRESS = "127.0.0.66"
#: Just under the largest offer the server parses (signaling/budgets.py MAX_OFFER_BYTES:
#: 32 KiB of SDP); a larger one is refused before parsing, which costs the server less.
DEFAULT_OFFER_BYTES = 32_000
_FINGERPRINT = ":".join(["5A"] * 32)


@dataclass(slots=True)
class FloodSettings:
    connections: int = 64
    rate: float = 20.0  # offers per second per connection
    offer_bytes: int = DEFAULT_OFFER_BYTES  # size of each offer message (JSON text)
    seconds: float = 10.0
    address: str = FLOOD_ADDRESS
    room_size: int = 15  # flooding members per room (the server's --max-users)


def flood_offer(size: int = DEFAULT_OFFER_BYTES) -> str:
    """The JSON text of one invalid offer message, at most ``size`` characters (and bytes:
    it is ASCII). Valid SDP line by line; refused only after the whole parse."""
    if size < 1200:
        raise ValueError("a flood offer needs at least 1200 bytes")
    base = build_offer(OfferParams("fLoD", "f" * 24, _FINGERPRINT, 4242, "flood", "127.0.0.66", 9))
    lines = base.rstrip("\r\n").split("\r\n")
    # BUNDLE names "0" (the audio m-line) and "x", which no m-line has: refused at the end.
    lines = ["a=group:BUNDLE 0 x" if line.startswith("a=group:BUNDLE") else line for line in lines]

    def text(extra: list[str]) -> str:
        return json.dumps({"type": "offer", "sdp": "\r\n".join(lines + extra) + "\r\n"})

    extra: list[str] = []
    length = len(text(extra))
    i = 0
    while True:
        line = (f"a=candidate:{i} 1 udp {2122260223 - i} 127.0.{i // 250 % 250}.{i % 250 + 1} "
                f"{10000 + i % 50000} typ host generation 0")
        grown = length + len(line) + 4  # "\r\n" is four characters in JSON
        if grown > size:
            break
        extra.append(line)
        length = grown
        i += 1
    message = text(extra)
    assert len(message) <= size
    return message


@dataclass(slots=True)
class _Conn:
    ws: ClientConnection
    sent: int = 0
    skipped: int = 0
    replies: dict[str, int] = field(default_factory=dict)


class Flood:
    """``await connect()``, ``await run()``, ``await close()``; ``report()`` any time."""

    def __init__(self, settings: FloodSettings, ws_url: str, origin: str, run_id: str) -> None:
        self.settings = settings
        self.ws_url = ws_url
        self.origin = origin
        self.run_id = run_id
        self.message = flood_offer(settings.offer_bytes)
        self.conns: list[_Conn] = []
        self.refused: dict[str, int] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.started_at: float | None = None
        self.ended_at: float | None = None

    async def connect(self, timeout: float = 15.0) -> None:
        """Open the connections one by one from the flood address and join each to a room."""
        s = self.settings
        async with asyncio.timeout(timeout):
            for i in range(s.connections):
                room = f"flood-{self.run_id}-{i // max(1, s.room_size)}"
                try:
                    ws = await websockets.connect(
                        self.ws_url, origin=self.origin, local_addr=(s.address, 0),  # type: ignore[arg-type]
                        max_size=1 << 20, ping_interval=None, compression=None,
                    )
                except (OSError, websockets.WebSocketException) as exc:
                    self._refuse(type(exc).__name__)
                    continue
                # A refused connection gets its error message, then the close: read both.
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(json.dumps({"type": "join", "room": room, "name": f"flood {i}"}))
                try:
                    reply = json.loads(await ws.recv())
                except websockets.ConnectionClosed as exc:
                    self._refuse(f"closed: {exc.rcvd.reason if exc.rcvd else exc}")
                    continue
                except ValueError:
                    self._refuse("unreadable reply")
                    await ws.close()
                    continue
                if reply.get("type") != "joined":
                    self._refuse(str(reply.get("code") or reply.get("type")))
                    await ws.close()
                    continue
                conn = _Conn(ws)
                self.conns.append(conn)
                self.readers.append(asyncio.ensure_future(self._read(conn)))

    def _refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1

    async def _read(self, conn: _Conn) -> None:
        """Count every reply by error code (or message type)."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in conn.ws:
                try:
                    msg = json.loads(raw)
                    key = str(msg.get("code") if msg.get("type") == "error" else msg.get("type"))
                except (ValueError, AttributeError):
                    key = "unreadable"
                conn.replies[key] = conn.replies.get(key, 0) + 1

    async def run(self) -> None:
        """Every connection sends its offers on its own schedule, staggered over the period."""
        s = self.settings
        self.started_at = time.perf_counter()
        period = 1.0 / s.rate
        n = max(1, len(self.conns))
        await asyncio.gather(*(
            self._send_loop(conn, self.started_at + period * i / n, period)
            for i, conn in enumerate(self.conns)
        ))
        # Stop at once: reset the connections, so that offers still queued on the way are
        # dropped (by both kernels) instead of keeping the server busy past the flood.
        for conn in self.conns:
            conn.ws.transport.abort()
        self.ended_at = time.perf_counter()

    async def _send_loop(self, conn: _Conn, first: float, period: float) -> None:
        end = self.started_at + self.settings.seconds  # type: ignore[operator]
        due = first
        for _ in range(math.ceil(self.settings.seconds * self.settings.rate)):
            if due >= end:
                return
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due >= period:  # late by a whole period: skip, never bunch up
                conn.skipped += 1
                due += period
                continue
            try:
                # The frame is in the socket's buffer once send() starts waiting (for the
                # server to read); at the end of the flood we stop waiting.
                await asyncio.wait_for(conn.ws.send(self.message), max(0.001, end - now))
            except TimeoutError:
                conn.sent += 1
                return
            except websockets.ConnectionClosed:
                return
            conn.sent += 1
            due += period

    async def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(TimeoutError, OSError, websockets.WebSocketException):
                await asyncio.wait_for(conn.ws.close(), 2.0)
        for task in self.readers:
            task.cancel()
        for task in self.readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def report(self) -> dict[str, Any]:
        replies: dict[str, int] = {}
        for conn in self.conns:
            for key, count in conn.replies.items():
                replies[key] = replies.get(key, 0) + count
        sent = sum(c.sent for c in self.conns)
        wall = (self.ended_at - self.started_at) if self.started_at and self.ended_at else None
        return {
            "settings": asdict(self.settings),
            "offer_message_bytes": len(self.message),
            "connections_joined": len(self.conns),
            "connections_refused": self.refused,
            "offers_sent": sent,
            "offers_skipped_late": sum(c.skipped for c in self.conns),
            "offers_per_second": round(sent / wall, 1) if wall else None,
            "megabytes_sent": round(sent * len(self.message) / 1e6, 1),
            "flood_s": round(wall, 2) if wall else None,
            "replies": replies,
        }
