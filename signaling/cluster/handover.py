"""A room changes node while its members' sockets stay open (docs/CLUSTER.md, "Node failure"
and "Draining").

Two things move a room:

* **its node died** (kill -9: its record expired, or a publish to it reached nobody). Each
  ingress node that bridged sockets to it places the room again (``store.place``: the claim
  script lets exactly one live node take it over, epoch + 1), then *resumes* its sockets on
  the new owner;
* **its node drains** (SIGTERM) and ``move``s it (drain.py): the old owner tells the ingress
  of each bridged member (``moved``) and resumes its own sockets itself, as their ingress now.

To resume a socket is to send the new owner ``resume`` {ip, member_id, name, room, reason}
(or, when the new owner is this node, to do the same here). The new owner admits the member
without a password check (the ingress admitted it before; a room it creates takes the
password key of its Redis record, so later joins are checked against the same password),
keeps its id, and sends it ``joined`` (the room as it is there: the page replaces its member
list and floor) and ``media`` ``reset`` with the reason (``node_failed``, ``room_moved``): the
page offers again on the same socket and its audio now goes to the new owner's UDP port.

While a room's owner is *suspect* (a publish to it reached nobody: it may be dead, its
record not yet expired) the socket's messages are dropped (the ``joined`` that follows the
resume resets the page's floor state; a lost offer is made again after the ``media``
``reset``). A ``ping`` of a bridged socket is always answered by the ingress: it checks the
page's path to this node, and one lost on its way to a node that just died would make the
page give up a socket that is about to work again. An owner still live ``node_ttl + 2 x
heartbeat`` after it became suspect ends the sessions as a gap does (close 1012: the envelopes lost cannot be recovered); a dead one's rooms are placed
again, retried each sweep for ``FAILOVER_GIVE_UP`` seconds while Redis does not answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..hub import error_message
from ..messages import ClientMessage, Ping, encode
from ..rooms import Member
from ..session import Client
from .envelope import Accepted, Close, Resume, conn_id
from .model import ClusterError

if TYPE_CHECKING:
    from .bridge import Bridge, RemoteContext, RemoteRoomProxy

__all__ = ["FAILOVER_GIVE_UP", "Handover"]

log = logging.getLogger(__name__)

#: Seconds a dead owner's sockets wait for their room to be placed again (Redis away)
#: before they are closed with 1012 (the page reconnects and joins again).
FAILOVER_GIVE_UP = 10.0
#: Close code when a socket cannot follow its room (service restart: the page reconnects).
CLOSE_RECONNECT = 1012


class Handover:
    """Both sides of a room's change of node, for one node's bridge."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.resumed = 0  # sockets resumed on another node or here (for /healthz and tests)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node_id(self) -> str:
        return self.bridge.node_id

    # -- ingress side ------------------------------------------------------------------------

    def suspect(self, node: str) -> None:
        """A publish to ``node`` reached nobody (or was lost): hold its sockets' messages
        until the sweep knows whether it died."""
        now = time.monotonic()
        for proxy in self.bridge.proxies():
            if proxy.owner == node and proxy.suspect_since is None:
                proxy.suspect_since = now

    def held(self, proxy: RemoteRoomProxy, message: ClientMessage) -> bool:
        """True if ``message`` must not go to the proxy's owner. A ``ping`` is answered
        here: it checks the page's path to this node, and one lost on its way to a node
        that just died would make the page give up a socket that is about to work again.
        Anything else is dropped while the owner is suspect or the socket being resumed."""
        if isinstance(message, Ping):
            proxy.conn.enqueue(encode({"type": "pong"}))
            return True
        return proxy.suspect_since is not None

    async def sweep(self, alive: set[str]) -> None:
        """Each heartbeat, with the liveness of every peer: place again the rooms of dead
        owners; end the sessions of owners that stayed suspect while live."""
        now = time.monotonic()
        store = self.bridge.store
        grace = store.node_ttl + 2 * store.heartbeat
        for node in sorted({p.owner for p in self.bridge.proxies()} - alive - {self.node_id}):
            await self.fail_over(node)
        for proxy in self.bridge.proxies():
            since = proxy.suspect_since
            if since is None:
                continue
            if proxy.owner in alive and proxy.owner != self.node_id and now - since > grace:
                log.warning("node %s is live but lost envelopes of room %s: its sockets "
                            "here reconnect", proxy.owner, proxy.room)
                self.bridge.lost_proxy(proxy)
            elif now - since > FAILOVER_GIVE_UP:
                log.warning("room %s could not be placed again in %g s: its sockets here "
                            "reconnect", proxy.room, FAILOVER_GIVE_UP)
                self.bridge.lost_proxy(proxy)

    async def fail_over(self, dead: str) -> None:
        """Place again each room whose sockets here were bridged to ``dead``; resume them."""
        now = time.monotonic()
        by_room: dict[str, list[RemoteRoomProxy]] = defaultdict(list)
        for proxy in self.bridge.proxies():
            if proxy.owner != dead:
                continue
            if proxy.suspect_since is None:
                proxy.suspect_since = now
            if proxy.member_id is None:  # its join was on its way: the page joins again
                self.bridge.end_proxy(proxy, tell_owner=False)
                proxy.conn.enqueue(error_message(
                    "try_later", "the room's server stopped; join again", False, 1.0))
                continue
            by_room[proxy.room].append(proxy)
        for room, proxies in sorted(by_room.items()):
            try:
                record = await self.bridge.store.place(room)
            except ClusterError as exc:  # tried again at the next sweep
                log.warning("cannot place room %s again after node %s died: %s", room, dead,
                            exc)
                continue
            log.info("node %s is gone: room %s goes to %s (epoch %d), %d socket(s) here "
                     "resume there", dead, room, record.owner, record.epoch, len(proxies))
            for proxy in proxies:
                if self.bridge.current(proxy) and proxy.owner == dead:
                    self.follow(proxy, record.owner, "node_failed")

    def follow(self, proxy: RemoteRoomProxy, owner: str, reason: str) -> None:
        """Resume the proxy's socket on ``owner``, the room's node now."""
        assert proxy.member_id is not None
        self.resumed += 1
        if owner == self.node_id:
            proxy.owner = owner  # no longer a peer to fail over from
            proxy.suspect_since = proxy.suspect_since or time.monotonic()  # held meanwhile
            self._spawn(self._resume_here(proxy, reason))
            return
        proxy.owner = owner
        proxy.suspect_since = None
        conn = proxy.conn
        self.bridge.to_owner(proxy, Resume(self.node_id, proxy.conn_id, conn.ip,
                                           proxy.member_id, proxy.name, proxy.room, reason,
                                           proxy.listen_only, proxy.priority,
                                           proxy.protected))

    def adopt(self, client: Client, member: Member, owner: str, reason: str) -> None:
        """Drain: a socket of this node whose room left for ``owner`` follows it there, this
        node being its ingress from now on."""
        conn = client.context
        proxy = self.bridge.new_proxy(conn, conn_id(self.node_id, client.serial), owner,
                                      member.room_id, accepted=True)
        proxy.member_id, proxy.name = member.id, member.name
        proxy.listen_only, proxy.priority = member.listen_only, member.priority
        room = self.bridge.server.registry.get(member.room_id)
        proxy.protected = bool(room and room.password_protected)
        self.follow(proxy, owner, reason)

    async def _resume_here(self, proxy: RemoteRoomProxy, reason: str) -> None:
        """The room's new node is this one: the socket becomes a local member again."""
        server = self.bridge.server
        room = proxy.room
        key = None
        if server.registry.get(room) is None:
            try:
                record = await self.bridge.store.claim(room, self.node_id)
            except ClusterError as exc:
                log.warning("cannot take room %s over: %s", room, exc)
                record = None
            if (record is None or record.owner != self.node_id
                    or _key_lost(record.password_key, proxy.protected, room)):
                if self.bridge.current(proxy):
                    self.bridge.lost_proxy(proxy)
                return
            key = record.password_key
        if not self.bridge.current(proxy):
            return  # the socket closed meanwhile
        self.bridge.end_proxy(proxy, tell_owner=False)
        client = proxy.conn.client
        assert proxy.member_id is not None and client is not None
        self.bridge.touch(room)
        server.dispatch(server.hub.resume(client, room, proxy.member_id, proxy.name, key,
                                          reason, listen_only=proxy.listen_only,
                                          priority=proxy.priority))

    # -- owner side --------------------------------------------------------------------------

    async def resume(self, ctx: RemoteContext, envelope: Resume) -> None:
        """``resume`` from an ingress: admit its socket's member to the room here."""
        server = self.bridge.server
        client = ctx.client
        assert client is not None
        room = envelope.room
        key = None
        if server.registry.get(room) is None:
            record = None
            if not self.bridge.draining:
                try:
                    record = await self.bridge.store.claim(room, self.node_id)
                except ClusterError as exc:
                    log.warning("cannot take room %s over: %s", room, exc)
            if (record is None or record.owner != self.node_id
                    or _key_lost(record.password_key, envelope.protected, room)):
                self.bridge.to_ingress(ctx, Close(self.node_id, ctx.conn, CLOSE_RECONNECT,
                                                  "room moved"))
                self.bridge.forget_remote(ctx)
                return
            key = record.password_key
        self.bridge.touch(room)
        server.dispatch(server.hub.resume(client, room, envelope.member_id, envelope.name,
                                          key, envelope.reason,
                                          listen_only=envelope.listen_only,
                                          priority=envelope.priority))
        member = client.member
        room_now = server.registry.get(room)
        if ctx.forgotten or client.closed:
            return  # refused for good (room full): ``close`` went out already
        if member is None:  # pragma: no cover - resume either admits or closes
            self.bridge.to_ingress(ctx, Close(self.node_id, ctx.conn, CLOSE_RECONNECT,
                                              "resume failed"))
            self.bridge.forget_remote(ctx)
            return
        self.bridge.to_ingress(ctx, Accepted(self.node_id, ctx.conn, member.id,
                                             member.room_id, member.name,
                                             member.listen_only, member.priority,
                                             bool(room_now and room_now.password_protected)))

    # -- tasks -------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a hand-over failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _key_lost(key: bytes | None, protected: bool, room: str) -> bool:
    """A protected room whose record has no password key (its node died before writing it,
    within a heartbeat of the room's creation) must not be re-created open: its members
    reconnect and join again with their password instead."""
    if protected and key is None:
        log.warning("room %s had a password its record does not keep: its members join "
                    "again", room)
        return True
    return False
