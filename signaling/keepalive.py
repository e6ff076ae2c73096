"""The WebSocket keepalive: protocol pings, and a dead connection dropped at once.

A client whose network died or whose process froze keeps its TCP connection open for
minutes as far as the server can tell. So the server sends a WebSocket Ping ``interval``
seconds after each Pong and drops a connection whose Pong has not come ``timeout`` seconds
after the Ping. Dropped means aborted: no close handshake, since a dead peer would never
answer it and the close wait (websockets' ``close_timeout``) would keep the member in its
room, holding the floor, for that much longer. The abort ends the session's read loop at
once, so the member leaves the room (and the floor) within ``interval + timeout + 2 * tick``
of its last sign of life.

Why protocol-level pings and not the page's own ``ping`` message: the browser itself answers
a WebSocket Ping, whatever the page's JavaScript is doing. Browsers throttle timers in
background tabs (to once a minute after a while, in Chromium) and freeze hidden pages, so a
listener in a background tab would miss a deadline that its JavaScript had to meet; it
never misses a Pong while its network is up.

**One timer for every connection.** With a Ping every 1.5 s, a task per connection (sleep,
``ws.ping()``, ``asyncio.timeout`` around the Pong) cost signaling more than the Pings
themselves: two task wake-ups and two timer handles per Ping (docs/BENCHMARKS.md, "What the
hardening costs"). Here one task wakes every ``tick`` and serves two queues that are FIFO by
construction, because every connection waits the same ``interval`` and ``timeout``: Pings due
(appended when a Pong arrives) and Pongs awaited (appended when a Ping goes out). A tick
touches only the entries that are due. A Ping is written with the connection's own ping
bookkeeping (what ``ws.ping()`` does, without its wait for the write buffer to drain, which a
stuck peer could hold up for everyone); tests/test_dependencies.py checks that websockets
still has those parts, and without them each Ping falls back to ``ws.ping()`` in a task.

websockets' own keepalive is not used: on a missed Pong it starts a close handshake and
waits ``close_timeout`` for it before the session ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections import deque
from functools import partial

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

__all__ = ["Keepalive", "fast_ping_supported"]

log = logging.getLogger("walkie.signaling")

#: The timer's period: the keepalive's deadlines are kept to within this much.
TICK = 0.1


def fast_ping_supported(ws: ServerConnection) -> bool:
    """Whether ``ws`` has the ping bookkeeping the keepalive writes Pings with."""
    return isinstance(getattr(ws, "pending_pings", None), dict) and hasattr(ws, "send_data")


class Keepalive:
    """Pings every watched connection; aborts those whose Pong is late (see the module)."""

    def __init__(self, interval: float, timeout: float, tick: float = TICK) -> None:
        if interval <= 0 or timeout <= 0 or tick <= 0:
            raise ValueError("interval, timeout and tick must be positive")
        self.interval = interval
        self.timeout = timeout
        self.tick = tick
        self.dropped = 0  # connections aborted for a late Pong
        self._watched: set[ServerConnection] = set()
        self._due: deque[tuple[float, ServerConnection]] = deque()
        self._awaited: deque[tuple[float, ServerConnection, asyncio.Future[float]]] = deque()
        self._wake = asyncio.Event()

    def watch(self, ws: ServerConnection) -> None:
        """Start pinging ``ws`` (its first Ping goes ``interval`` from now)."""
        self._watched.add(ws)
        self._due.append((asyncio.get_running_loop().time() + self.interval, ws))
        self._wake.set()

    def forget(self, ws: ServerConnection) -> None:
        """Stop pinging ``ws`` (its session ended); its queue entries are skipped later."""
        self._watched.discard(ws)

    @property
    def watched(self) -> int:
        return len(self._watched)

    async def run(self) -> None:
        """The one timer: run it as a task for the server's lifetime; cancel it to stop."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._watched:  # nothing to do: sleep until a connection comes
                self._due.clear()
                self._awaited.clear()
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self.tick)
            self.poll(loop.time())

    def poll(self, now: float) -> None:
        """Abort the connections whose Pong is overdue, then send the Pings that are due."""
        awaited, due, watched = self._awaited, self._due, self._watched
        while awaited and awaited[0][0] <= now:
            _, ws, pong = awaited.popleft()
            if ws in watched and not pong.done():
                log.info("client %s sent no pong within %g s; dropping it", ws.id, self.timeout)
                watched.discard(ws)
                self.dropped += 1
                ws.transport.abort()
        while due and due[0][0] <= now:
            _, ws = due.popleft()
            if ws in watched:
                self._ping(ws, now)

    def _ping(self, ws: ServerConnection, now: float) -> None:
        if ws.protocol.state is not State.OPEN:
            self._watched.discard(ws)  # closing: the session is about to end anyway
            return
        try:
            pong = _send_ping(ws, now) if fast_ping_supported(ws) else _ping_in_task(ws)
        except Exception:  # noqa: BLE001 - a broken socket: its session ends on its own
            self._watched.discard(ws)
            return
        self._awaited.append((now + self.timeout, ws, pong))
        pong.add_done_callback(partial(self._ponged, ws))

    def _ponged(self, ws: ServerConnection, pong: asyncio.Future[float]) -> None:
        # The exception is read in every case (a closed connection fails its pending Pings):
        # an unread one would be logged as "never retrieved" for every socket that closes.
        if pong.cancelled() or pong.exception() is not None:
            return
        if ws in self._watched:
            self._due.append((asyncio.get_running_loop().time() + self.interval, ws))


def _send_ping(ws: ServerConnection, now: float) -> asyncio.Future[float]:
    """Write a Ping the way ``ws.ping()`` does, minus its wait for the write buffer."""
    pending = ws.pending_pings
    data = struct.pack("!I", random.getrandbits(32))
    while data in pending:
        data = struct.pack("!I", random.getrandbits(32))
    pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    pending[data] = (pong, now)
    ws.protocol.send_ping(data)
    ws.send_data()
    return pong


def _ping_in_task(ws: ServerConnection) -> asyncio.Future[float]:
    """The public way: ``ws.ping()`` in a task; its Pong future, resolved through the task."""
    pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def ping() -> None:
        try:
            waiter = await ws.ping()
            pong.set_result(await waiter)
        except Exception as exc:  # noqa: BLE001 - closed: reported through the future
            if not pong.done():
                pong.set_exception(exc)

    asyncio.get_running_loop().create_task(ping())
    return pong
