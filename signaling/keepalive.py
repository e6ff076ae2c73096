"""The WebSocket keepalive: protocol pings, and a dead connection dropped at once.

A client whose network died or whose process froze keeps its TCP connection open for
minutes as far as the server can tell. So the server sends a WebSocket Ping every
``interval`` seconds and drops a connection whose Pong has not come ``timeout`` seconds
after the Ping (sending it included: a peer that stopped reading blocks the write). Dropped
means aborted: no close handshake, since a dead peer would never answer it and the close
wait (websockets' ``close_timeout``) would keep the member in its room, holding the floor,
for that much longer. The abort ends the session's read loop at once, so the member leaves
the room (and the floor) within ``interval + timeout`` of its last sign of life.

Why protocol-level pings and not the page's own ``ping`` message: the browser itself answers
a WebSocket Ping, whatever the page's JavaScript is doing. Browsers throttle timers in
background tabs (to once a minute after a while, in Chromium) and freeze hidden pages, so a
listener in a background tab would miss a deadline that its JavaScript had to meet; it
never misses a Pong while its network is up.

websockets' own keepalive is not used: on a missed Pong it starts a close handshake and
waits ``close_timeout`` for it before the session ends.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["keep_alive"]

log = logging.getLogger("walkie.signaling")


async def keep_alive(ws: ServerConnection, interval: float, timeout: float) -> None:
    """Ping ``ws`` every ``interval`` seconds; abort it when a Pong is ``timeout`` late.

    Returns when the connection is closed (by either side) or aborted; run it as a task
    that the session cancels when it ends.
    """
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(timeout):
                    pong = await ws.ping()
                    await pong
            except TimeoutError:
                log.info("client %s sent no pong within %g s; dropping it", ws.id, timeout)
                ws.transport.abort()
                return
    except ConnectionClosed:
        return
