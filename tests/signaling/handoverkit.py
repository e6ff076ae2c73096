"""Synthetic members for the network-handover tests: a WebSocket for signaling and the
router tests' own WebRTC client (tests/sfu/peerclient.py) for media, against a real
``walkie serve``.

A member can do what a phone on the move does to the server: its UDP source address
changes (``rebind``: a new socket on 127.0.0.2, the old one closed, as a NAT rebinding or a
new network interface looks from the server), and its WebSocket dies without a goodbye
(``kill_socket``: the TCP connection aborted, no close frame), after which it resumes on a
new socket with the secret its ``joined`` carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from sfu.rtcp import ReceiverReport, build_receiver_report
from sfu.rtp import parse_rtp
from sfu.srtp import SrtpError

from tests.sfu.peerclient import PeerClient

#: Every wait in these tests is bounded by this (seconds); the figures are printed, not asserted.
WAIT = 10.0


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://").rstrip("/") + "/ws"


class Member:
    """One synthetic member of ``room`` on the server at ``url``."""

    def __init__(self, url: str, room: str, name: str) -> None:
        self.url, self.room, self.name = url, room, name
        self.peer = PeerClient(name)
        self.ws: ClientConnection | None = None
        self.joined: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []  # every server message, in order
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.heard: list[tuple[float, int]] = []  # (arrival, frame number) of audio received
        self._listener: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return str(self.joined["you"]["id"])

    # -- signaling --------------------------------------------------------------------------

    async def _open(self) -> None:
        self.ws = await websockets.connect(ws_url(self.url), ping_interval=None)
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in ws:
                self.messages.append(json.loads(frame))
                self._new.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def expect(self, kind: str, since: int = 0, **fields: Any) -> dict[str, Any]:
        """The first message of type ``kind`` (with ``fields``) at index ``since`` or later."""
        deadline = time.monotonic() + WAIT
        while True:
            for message in self.messages[since:]:
                if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message
            self._new.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {kind} {fields} in {self.messages[since:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    async def join(self) -> None:
        await self._open()
        await self.send({"type": "join", "room": self.room, "name": self.name})
        self.joined = await self.expect("joined")
        await self.peer.open()
        await self.send({"type": "offer", "sdp": self.peer.offer()})
        self.peer.take_answer((await self.expect("answer"))["sdp"])
        await self.peer.connect()
        await self.expect("media", state="connected")
        self._listener = asyncio.create_task(self._listen())

    async def kill_socket(self) -> None:
        """The WebSocket dies as on a network change: no close frame, the TCP just ends."""
        assert self.ws is not None and self._reader is not None
        self.ws.transport.abort()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._reader

    async def resume(self, secret: str | None = None) -> int:
        """A new socket presenting our id and resume secret; returns the index of its
        first message (``expect(..., since=)``)."""
        mark = len(self.messages)
        await self._open()
        await self.send({"type": "resume", "room": self.room, "id": self.id,
                         "secret": secret or self.joined["resume"]["secret"]})
        return mark

    # -- media ------------------------------------------------------------------------------

    async def rebind(self, host: str = "127.0.0.2") -> None:
        """Our datagrams come from a new address from now on (same ICE, DTLS and SRTP)."""
        old = self.peer.transport
        await self.peer.open(host)
        assert old is not None
        old.close()

    def check(self, nominate: bool) -> None:
        """One ICE connectivity check (a consent refresh without USE-CANDIDATE, RFC 7675)."""
        self.peer.send(self.peer.binding_request(use_candidate=nominate))

    def receiver_report(self) -> None:
        assert self.peer.srtp is not None
        rr = build_receiver_report(ReceiverReport(self.peer.ssrc))
        self.peer.send(self.peer.srtp.protect_rtcp(rr))

    def frame(self, number: int) -> None:
        """One 20 ms audio frame whose payload carries ``number``."""
        self.peer.send_audio(struct.pack("!I", number) + bytes(76))

    async def _listen(self) -> None:
        """Record every audio frame received (from whichever socket is current)."""
        while True:
            inbox = self.peer.inbox
            assert inbox is not None
            try:
                data, _ = await asyncio.wait_for(inbox.queue.get(), 0.1)
            except TimeoutError:
                continue
            if 127 < data[0] < 192 and not 191 < data[1] < 224 and self.peer.srtp is not None:
                try:
                    payload = parse_rtp(self.peer.srtp.unprotect(data)).payload
                except (SrtpError, ValueError):
                    continue
                self.heard.append((time.monotonic(), struct.unpack_from("!I", payload)[0]))

    def heard_after(self, number: int) -> list[tuple[float, int]]:
        return [(t, n) for t, n in self.heard if n > number]

    async def close(self) -> None:
        for task in (self._listener, self._reader):
            if task is not None:
                task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        self.peer.close()


async def talk(talker: Member, frames: int, first: int = 0) -> int:
    """Send ``frames`` frames on a 20 ms metronome; returns the next frame number."""
    start = time.monotonic()
    for i in range(frames):
        talker.frame(first + i)
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    return first + frames


def churn(member: Member, since: int = 0) -> list[dict[str, Any]]:
    """Presence changes ``member`` saw from message ``since`` on."""
    return [m for m in member.messages[since:] if m["type"] in ("member_left", "member_joined")]
