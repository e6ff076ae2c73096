"""Draining a node (SIGTERM on ``walkie serve --redis``): its rooms move to other nodes at a
quiet moment, then its own sockets close (docs/CLUSTER.md, "Draining").

1. The node marks itself draining in its record (placement skips it from now on) and on
   /healthz (HTTP 503, so that a load balancer sends it no new sockets). It takes no new
   rooms: an ``open`` or ``resume`` of a room it does not host is refused (``try_later`` /
   close 1012: the join is placed again, elsewhere).
2. Each room it hosts moves as soon as it is quiet (nobody holds the floor, nobody waits
   in the queue): ``store.move`` (compare-and-set on owner and epoch) to the node placement
   chooses; the hub hands the room over (its members leave here without anyone being told);
   the ingress of each bridged member gets ``moved`` and resumes the socket on the new owner,
   and this node resumes its own sockets there itself (handover.py). Every member then gets
   ``joined`` and ``media`` ``reset`` (``room_moved``) from the new owner and offers again:
   the only interruption is that re-offer, at a moment nobody talks.
3. After ``timeout`` the rooms still here move anyway (a holder gets ``floor_revoked``,
   ``room_moved``).
4. The node's own sockets close with 1012 (service restart): the pages reconnect through the
   load balancer to another node and join again.

Nothing here waits on a single room: a move that Redis refuses (a stale epoch, the chosen
node gone) or that finds no node is tried again at the next look, ``POLL`` seconds later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .envelope import Moved
from .model import ClusterError
from .placement import choose_node

from .bridge import RemoteContext

if TYPE_CHECKING:
    from ..rooms import Room
    from .bridge import Bridge

__all__ = ["CLOSE_RESTART", "POLL", "drain"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the rooms still to move.
POLL = 0.05
#: Close code of the node's own sockets once its rooms are gone (1012: service restart).
CLOSE_RESTART = 1012
#: Seconds the sockets get to close (their last frames, the close handshake).
CLOSE_WAIT = 2.0
REASON = "room_moved"


async def drain(bridge: Bridge, timeout: float) -> int:
    """Move every room of this node elsewhere (at a quiet moment, or anyway after
    ``timeout`` seconds), then close this node's sockets; the number of rooms moved."""
    store, server = bridge.store, bridge.server
    bridge.draining = True
    try:
        await store.set_draining(True)
    except ClusterError as exc:  # the next heartbeat writes it
        log.warning("cannot mark this node draining in Redis yet: %s", exc)
    started = time.monotonic()
    log.info("draining: %d room(s) to move within %g s", len(server.registry), timeout)
    moved = 0
    while server.registry.rooms():
        forced = time.monotonic() - started >= timeout
        for room in server.registry.rooms():
            if forced or quiet(room):
                moved += await move_room(bridge, room.id, forced)
        if not server.registry.rooms():
            break
        if forced and time.monotonic() - started >= timeout + 10 * POLL:
            log.warning("draining: %d room(s) could not be moved (no other node?); their "
                        "members reconnect", len(server.registry))
            break
        await asyncio.sleep(POLL)
    log.info("draining: %d room(s) moved in %.2f s; closing this node's sockets", moved,
             time.monotonic() - started)
    await close_sockets(bridge)
    return moved


def quiet(room: Room) -> bool:
    """Nobody talks or waits to: a move now interrupts nothing anyone hears."""
    return room.floor.holder is None and not room.floor.queue


async def move_room(bridge: Bridge, room_id: str, forced: bool) -> int:
    """Move one room to another node; 1 if it moved, 0 if not now (tried again later)."""
    store, server, me = bridge.store, bridge.server, bridge.node_id
    try:
        record = await store.room(room_id)
        if record is None or record.owner != me:
            record = await store.claim(room_id, me)  # Redis lost it: ours again first
        target = choose_node(await store.nodes(), exclude={me})
        if record.owner != me or target is None:
            return 0
        room = server.registry.get(room_id)
        if room is None or not (forced or quiet(room)):
            return 0  # it emptied, or someone pressed Talk meanwhile: next time
        if room.password_key is not None and record.password_key is None:
            # (normally written by the sweep already) the new node checks joins against it
            await store.set_password_key(room_id, me, room.password_key)
        new = await store.move(room_id, me, target, record.epoch)
    except ClusterError as exc:
        log.warning("draining: cannot move room %s now: %s", room_id, exc)
        return 0
    if new is None:
        return 0  # refused (a stale epoch, the target gone): next time
    # From here on nothing awaits: the room leaves this node in one step.
    actions, members = server.hub.hand_over(room_id, REASON)
    server.dispatch(actions)
    remote = 0
    for client, member in members:
        ctx = client.context
        if isinstance(ctx, RemoteContext):
            remote += 1
            bridge.to_ingress(ctx, Moved(me, ctx.conn, room_id, new.owner, new.epoch))
            bridge.forget_remote(ctx)
        elif not client.closed:
            bridge.handover.adopt(client, member, new.owner, REASON)
    log.info("draining: room %s moved to %s (epoch %d; %d member(s), %d bridged)%s", room_id,
             new.owner, new.epoch, len(members), remote,
             " after the drain timeout" if forced else "")
    return 1


async def close_sockets(bridge: Bridge) -> None:
    """Close every socket of this node with 1012 and give them a moment to go."""
    server = bridge.server
    conns = server.connections()
    for conn in conns:
        conn.request_close(CLOSE_RESTART, "node draining")
        if conn.client is not None:
            conn.client.closed = True
    deadline = time.monotonic() + CLOSE_WAIT
    while server.connections() and time.monotonic() < deadline:
        await asyncio.sleep(POLL)
