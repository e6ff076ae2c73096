"""Signaling attacks from one address, measured on their own (no talking rooms needed).

* ``join-sweep``: how many joins per second one address gets answered with ``joined``.
  ``connections`` sockets from the attacker's address each join a fresh room name, close
  as soon as ``joined`` arrives (that is all a sweep needs: the member list) and start over
  with a new socket. A ``try_later`` answer is honoured as an attacker would: the same
  socket sends its join again once ``retry_ms`` has passed. Reported: joins in all, per
  second over the whole run and over its second half (the sustained rate, once any burst
  allowance is spent).
* ``password-guess``: a legitimate member (another address) holds a room with a password;
  ``connections`` sockets from the attacker's address send joins with wrong passwords as
  fast as the server answers (a wrong password is fatal: a new socket each time; a
  ``try_later`` is retried on the same socket after ``retry_ms``). Every ``legit_every`` s a
  legitimate joiner from a third address joins with the right password and leaves;
  its time from sending ``join`` to ``joined`` (retrying after ``try_later`` as the page
  would) is the figure, measured before the attack and during it. Reported: guesses the
  server evaluated (``bad_password`` answers) per second, refusals by code, and the
  legitimate joins' times.

Bounded: ``seconds`` of attack, every wait has a timeout, and at the end every socket is
closed. Addresses must be loopback (the command line checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from .stats import percentiles

__all__ = ["PROBES", "ProbeSettings", "run_probe"]

PROBES = ("join-sweep", "password-guess")
#: Longest wait for any one answer.
REPLY_TIMEOUT = 10.0
#: The legitimate member's password (the guesses are never it).
PASSWORD = "correct horse battery staple"


@dataclass(slots=True)
class ProbeSettings:
    kind: str
    seconds: float = 10.0
    connections: int = 64          # attacker sockets at once, all from ``address``
    address: str = "127.0.0.66"
    member_address: str = "127.0.0.77"    # holds the attacked room (password-guess)
    joiner_address: str = "127.0.0.88"    # the legitimate joiner measured meanwhile
    legit_every: float = 1.0


@dataclass(slots=True)
class _Tally:
    answers: dict[str, int] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # when each counted answer came

    def add(self, key: str, at: float | None = None) -> None:
        self.answers[key] = self.answers.get(key, 0) + 1
        if at is not None:
            self.times.append(at)


class _Probe:
    def __init__(self, settings: ProbeSettings, ws_url: str, origin: str, run_id: str) -> None:
        self.s = settings
        self.ws_url = ws_url
        self.origin = origin
        self.run_id = run_id
        self.tally = _Tally()
        self.counter = 0

    async def connect(self, address: str) -> ClientConnection | None:
        try:
            return await websockets.connect(
                self.ws_url, origin=self.origin, local_addr=(address, 0),  # type: ignore[arg-type]
                open_timeout=REPLY_TIMEOUT, ping_interval=None, compression=None,
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            self.tally.add(f"connect failed: {type(exc).__name__}")
            return None

    async def ask(self, ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``message``; the first answer that is a ``joined`` or an ``error``, or None
        (closed, timed out)."""
        try:
            await ws.send(json.dumps(message))
            async with asyncio.timeout(REPLY_TIMEOUT):
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("type") in ("joined", "error"):
                        return reply
        except (TimeoutError, ValueError, websockets.ConnectionClosed):
            return None

    def room(self) -> str:
        self.counter += 1
        return f"sweep-{self.run_id}-{self.counter}"


async def _close(ws: ClientConnection | None) -> None:
    if ws is not None:
        with contextlib.suppress(TimeoutError, OSError, websockets.WebSocketException):
            await asyncio.wait_for(ws.close(), 2.0)


async def _attack(probe: _Probe, message: Any, end: float, count: str) -> None:
    """One attacker socket at a time, until ``end``: send ``message()`` and tally answers;
    answers of type/code ``count`` are timed."""
    ws: ClientConnection | None = None
    try:
        while time.perf_counter() < end:
            if ws is None:
                ws = await probe.connect(probe.s.address)
                if ws is None:
                    await asyncio.sleep(0.05)
                    continue
            reply = await probe.ask(ws, message())
            now = time.perf_counter()
            if reply is None:
                probe.tally.add("closed or no answer")
                await _close(ws)
                ws = None
                continue
            key = str(reply.get("code") if reply["type"] == "error" else reply["type"])
            if now < end:
                probe.tally.add(key, now if key == count else None)
            if key == "try_later":
                retry = float(reply.get("retry_ms") or 100) / 1000
                await asyncio.sleep(min(retry, max(0.0, end - now)))
                continue
            await _close(ws)  # joined (the sweep has what it wanted) or a fatal error
            ws = None
    finally:
        await _close(ws)


async def _legit_join(probe: _Probe, room: str) -> float | None:
    """ms from the first ``join`` to ``joined`` for the legitimate joiner (retrying after
    ``try_later``, as the page does), or None if it never got in."""
    ws = await probe.connect(probe.s.joiner_address)
    if ws is None:
        return None
    try:
        t0 = time.perf_counter()
        for _ in range(20):
            reply = await probe.ask(ws, {"type": "join", "room": room, "name": "legit",
                                         "password": PASSWORD})
            if reply is None:
                return None
            if reply["type"] == "joined":
                return (time.perf_counter() - t0) * 1000
            if reply.get("code") != "try_later":
                return None
            await asyncio.sleep(float(reply.get("retry_ms") or 100) / 1000)
        return None
    finally:
        await _close(ws)


def _summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    return {"failed": len(values) - len(got), "ms": percentiles(got)}


async def run_probe(settings: ProbeSettings, ws_url: str, origin: str, run_id: str) -> dict[str, Any]:
    """Run one probe against the server at ``ws_url``; every figure, as a JSON-ready dict."""
    probe = _Probe(settings, ws_url, origin, run_id)
    s = settings
    result: dict[str, Any] = {"settings": asdict(s)}
    if s.kind == "join-sweep":
        def join() -> dict[str, Any]:
            return {"type": "join", "room": probe.room(), "name": "sweeper"}
        start = time.perf_counter()
        end = start + s.seconds
        await asyncio.gather(*(_attack(probe, join, end, "joined") for _ in range(s.connections)))
        joined = probe.tally.times
        half = start + s.seconds / 2
        result.update(
            joins=len(joined),
            joins_per_second=round(len(joined) / s.seconds, 1),
            joins_per_second_second_half=round(sum(t >= half for t in joined) / (s.seconds / 2), 1),
        )
    elif s.kind == "password-guess":
        room = f"vault-{run_id}"
        member = await probe.connect(s.member_address)
        if member is None or (await probe.ask(member, {"type": "join", "room": room, "name": "owner",
                                                       "password": PASSWORD}) or {}).get("type") != "joined":
            raise RuntimeError("the legitimate member could not create the attacked room")
        try:
            before = [await _legit_join(probe, room) for _ in range(3)]

            def guess() -> dict[str, Any]:
                probe.counter += 1
                return {"type": "join", "room": room, "name": "guesser",
                        "password": f"guess-{probe.counter}"}
            start = time.perf_counter()
            end = start + s.seconds
            attack = asyncio.gather(*(_attack(probe, guess, end, "bad_password")
                                      for _ in range(s.connections)))
            during: list[float | None] = []
            for i in range(int(s.seconds / s.legit_every)):
                await asyncio.sleep(max(0.0, start + (i + 0.5) * s.legit_every - time.perf_counter()))
                during.append(await _legit_join(probe, room))
            await attack
        finally:
            await _close(member)
        evaluated = len(probe.tally.times)
        result.update(
            guesses_evaluated=evaluated,
            guesses_per_second=round(evaluated / s.seconds, 2),
            legit_join_before=_summary(before),
            legit_join_during=_summary(during),
        )
    else:
        raise ValueError(f"unknown probe {s.kind!r}")
    result["answers"] = probe.tally.answers
    return result
