"""The signaling bridge: a WebSocket on one node, its room on another.

A browser's socket may land on any node (one public name, any load balancer). The node it
lands on, the *ingress*, does everything a single server does before a join (Host, Origin,
budgets, frame size, rate, validation, keepalive: server.py), then asks the store where
the room lives (``RedisStore.place``: its live owner, or a node chosen and claimed now).

* Owned here: the join goes on locally, exactly as on a single server, and so does every
  later message: no Redis round trip per message. A room that exists here is ours and is
  joined without asking Redis at all, so rooms in progress keep working while Redis is away.
* Owned by node B: the socket gets a :class:`RemoteRoomProxy`. The join goes to B as an
  ``open`` envelope and the ingress waits for B's verdict (``accepted``, or ``refused`` /
  ``close`` after the error, each preceded by B's ``send``s); every later message is relayed
  as ``msg``, the socket's end as ``gone``. What B sends (``send``, ``close``) is written to
  the socket. Media does not pass here: B's answer carries B's own UDP address.

On the owner, a bridged socket is a hub :class:`~signaling.session.Client` like any other,
whose ``context`` is a :class:`RemoteContext`: the server's dispatch calls its ``enqueue`` and
``request_close`` as it does a local socket's, and those publish to the ingress. Admission
(budgets, the password gate, with the address the ingress forwarded), the room, the floor
and the offer/answer with the owner's media plane run as for a local socket.

When the two nodes may no longer agree about a socket (an envelope lost: bus.py's gaps),
the sessions they share end: the ingress closes the socket with 1012 (service restart; the
page reconnects and joins again) and the owner lets the member leave. When the owner is dead
(or drains), its rooms change node and the sockets here follow them (handover.py).

A room's claim in Redis is released once it has had no member here for RELEASE_GRACE
seconds (:meth:`Bridge.sweep`, each heartbeat); a room we host that Redis lost (a Redis
restart) is claimed again.

(A little over 400 lines: both sides of a bridged socket, whose rules mirror each other, read
best side by side; a room changing node is in handover.py, draining in drain.py.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..hub import error_message
from ..messages import ClientMessage, Join
from ..session import Client
from .envelope import (Accepted, Close, Envelope, EnvelopeError, Gone, Moved, Msg, Open,
                       Refused, Resume, Send, conn_id, conn_node)
from .handover import Handover
from .model import ClusterError

if TYPE_CHECKING:
    from ..server import SignalingServer
    from .store import RedisStore

__all__ = ["CLOSE_RECONNECT", "Bridge", "OPEN_TIMEOUT", "RELEASE_GRACE", "RemoteContext",
           "RemoteRoomProxy"]

log = logging.getLogger(__name__)

#: Close code when the room's node is unreachable (1012 service restart): the page
#: reconnects and joins again.
CLOSE_RECONNECT = 1012
#: Seconds the ingress waits for the owner's verdict on a join.
OPEN_TIMEOUT = 10.0
#: ``retry_ms`` of a ``try_later`` that a join gets when the cluster cannot place it.
CLUSTER_RETRY = 1.0
#: Seconds a room owned here stays claimed with nobody in it (a join may be on its way).
RELEASE_GRACE = 3.0

Publish = Callable[[str, Envelope], None]


@dataclass(eq=False, slots=True)
class RemoteRoomProxy:
    """Ingress side: a local socket (the server's connection object) whose room is on
    ``owner``. ``verdict`` resolves when the owner accepted (True) or refused the join."""

    conn: Any
    conn_id: str
    owner: str
    room: str
    verdict: asyncio.Future[bool]
    name: str = ""                       # the member's name there (a resume asks for it)
    member_id: str | None = None
    suspect_since: float | None = None   # its messages are held (handover.py)
    listen_only: bool = False            # the member's permissions there (join token)
    priority: int = 0
    protected: bool = False              # its room has a password


@dataclass(eq=False, slots=True)
class RemoteContext:
    """Owner side: the ``context`` of a hub client whose socket is on node ``node``.

    The server's dispatch calls :meth:`enqueue` and :meth:`request_close` as it would on a
    local socket; messages from the ingress are handled one after another (``inbox``), in
    the order the ingress sent them, as a local socket's frames are."""

    bridge: Bridge
    node: str
    conn: str
    ip: str
    room: str
    client: Client | None = None
    inbox: deque[Envelope] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    forgotten: bool = False

    def enqueue(self, text: str) -> None:
        self.bridge.to_ingress(self, Send(self.bridge.node_id, self.conn, text))

    def request_close(self, code: int, reason: str) -> None:
        self.bridge.to_ingress(self, Close(self.bridge.node_id, self.conn, code, reason))
        # The hub has already let the member leave; forget the socket once this dispatch
        # is over (its remaining actions may still name the client).
        asyncio.get_running_loop().call_soon(self.bridge.forget_remote, self)


class Bridge:
    """Both sides of the bridge for one node (``server.cluster``)."""

    def __init__(self, node_id: str, store: RedisStore, server: SignalingServer,
                 publish: Publish | None = None, bus_ok: Callable[[], bool] = lambda: True,
                 open_timeout: float = OPEN_TIMEOUT) -> None:
        self.node_id = node_id
        self.store = store
        self.server = server
        self.publish: Publish | None = publish  # set once the bus exists (node.py)
        self.bus_ok = bus_ok
        self.open_timeout = open_timeout
        self.dropped = 0  # envelopes about sockets we do not know (late, or junk)
        self._proxies: dict[str, RemoteRoomProxy] = {}   # ingress side, by conn id
        self._remotes: dict[str, RemoteContext] = {}     # owner side, by conn id
        self._active: dict[str, float] = {}  # room -> last placement or open seen here
        self._empty_since: dict[str, float] = {}
        self._keys_saved: dict[str, bytes] = {}  # room -> the password key written to Redis
        self.draining = False  # takes no new rooms (drain.py)
        self.handover = Handover(self)

    # -- ingress side: called by the server for each validated message -------------------

    async def route(self, conn: Any, client: Client, message: ClientMessage) -> bool:
        """True if ``message`` was taken care of here (relayed, or the join answered);
        False: the server handles it locally, as on a single node."""
        proxy: RemoteRoomProxy | None = conn.proxy
        if proxy is not None:
            if not self.handover.held(proxy, message):
                self.to_owner(proxy, Msg(self.node_id, proxy.conn_id, message))
            return True
        if not isinstance(message, Join) or client.member is not None:
            return False
        if self.server.registry.get(message.room) is not None:
            return False  # a room we host: ours, no need to ask Redis
        try:
            record = await self.store.place(message.room)
        except ClusterError as exc:  # Redis away, junk in it, or no node can take the room
            log.warning("cannot place room %s: %s", message.room, exc)
            conn.enqueue(error_message(
                "try_later", "the server cannot reach the rest of its cluster to find this "
                "room; try again shortly", False, CLUSTER_RETRY))
            return True
        if record.owner == self.node_id:
            self._active[message.room] = time.monotonic()
            return False
        if client.closed:
            return True
        await self._open(conn, client, message, record.owner)
        return True

    async def _open(self, conn: Any, client: Client, join: Join, owner: str) -> None:
        """Ask ``owner`` to join ``conn`` to the room; wait for its verdict."""
        proxy = self.new_proxy(conn, conn_id(self.node_id, client.serial), owner, join.room)
        proxy.name = join.name
        verdict = proxy.verdict
        if not self.to_owner(proxy, Open(self.node_id, proxy.conn_id, conn.ip, join)):
            return
        try:
            await asyncio.wait_for(asyncio.shield(verdict), self.open_timeout)
        except asyncio.TimeoutError:
            log.warning("node %s did not answer a join of room %s within %g s", owner,
                        join.room, self.open_timeout)
            self.end_proxy(proxy, tell_owner=True)
            conn.enqueue(error_message("try_later", "the room's server did not answer; try "
                                       "again shortly", False, CLUSTER_RETRY))

    def new_proxy(self, conn: Any, conn_name: str, owner: str, room: str,
                  accepted: bool = False) -> RemoteRoomProxy:
        """``conn``'s room is on ``owner`` from now on."""
        verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if accepted:
            verdict.set_result(True)
        proxy = RemoteRoomProxy(conn, conn_name, owner, room, verdict)
        conn.proxy = proxy
        self._proxies[proxy.conn_id] = proxy
        return proxy

    def proxies(self) -> list[RemoteRoomProxy]:
        return list(self._proxies.values())

    def current(self, proxy: RemoteRoomProxy) -> bool:
        """The proxy's socket is still open and bridged through it."""
        return self._proxies.get(proxy.conn_id) is proxy

    def touch(self, room: str) -> None:
        """A member of ``room`` is on its way here: do not release its claim."""
        self._active[room] = time.monotonic()

    def socket_closed(self, conn: Any) -> None:
        """The server: a bridged socket closed."""
        proxy: RemoteRoomProxy | None = conn.proxy
        if proxy is not None:
            self.end_proxy(proxy, tell_owner=proxy.owner != self.node_id)

    def to_owner(self, proxy: RemoteRoomProxy, envelope: Envelope) -> bool:
        """Publish to the proxy's owner; on failure, end the session (False)."""
        if self._publish(proxy.owner, envelope):
            return True
        self.lost_proxy(proxy)
        return False

    def end_proxy(self, proxy: RemoteRoomProxy, tell_owner: bool) -> None:
        if not self.current(proxy):
            return
        del self._proxies[proxy.conn_id]
        if proxy.conn.proxy is proxy:
            proxy.conn.proxy = None
        if not proxy.verdict.done():
            proxy.verdict.set_result(False)
        if tell_owner:
            self._publish(proxy.owner, Gone(self.node_id, proxy.conn_id))

    def lost_proxy(self, proxy: RemoteRoomProxy) -> None:
        """The owner may have lost track of this socket: close it, the page joins again."""
        self.end_proxy(proxy, tell_owner=proxy.owner != self.node_id)
        self._close_local(proxy.conn, CLOSE_RECONNECT, "room's server unreachable")

    def _close_local(self, conn: Any, code: int, reason: str) -> None:
        conn.request_close(code, reason)
        if conn.client is not None:
            conn.client.closed = True  # its frame loop ends; the server cleans up

    def _from_owner(self, envelope: Envelope) -> None:
        proxy = self._proxies.get(envelope.conn)
        if proxy is None or proxy.owner != envelope.sender:
            self.dropped += 1  # a socket that closed meanwhile, or not ours to act on
            return
        if isinstance(envelope, Send):
            proxy.conn.enqueue(envelope.text)
        elif isinstance(envelope, Accepted):
            proxy.member_id = envelope.member_id
            proxy.name = envelope.name or proxy.name
            proxy.listen_only, proxy.priority = envelope.listen_only, envelope.priority
            proxy.protected = envelope.protected
            if not proxy.verdict.done():
                proxy.verdict.set_result(True)
        elif isinstance(envelope, Refused):
            self.end_proxy(proxy, tell_owner=False)
        elif isinstance(envelope, Close):
            self.end_proxy(proxy, tell_owner=False)
            self._close_local(proxy.conn, envelope.code, envelope.reason)
        elif isinstance(envelope, Moved):
            if proxy.member_id is None or envelope.room != proxy.room:
                self.lost_proxy(proxy)  # not a member there yet: it joins again
            else:  # a drain moved the room: the socket follows it (handover.py)
                self.handover.follow(proxy, envelope.owner, "room_moved")

    # -- owner side --------------------------------------------------------------------------

    def _from_ingress(self, envelope: Envelope) -> None:
        if isinstance(envelope, (Open, Resume)):
            if envelope.conn in self._remotes:
                self.dropped += 1  # opened already
                return
            room = envelope.join.room if isinstance(envelope, Open) else envelope.room
            ctx = RemoteContext(self, envelope.sender, envelope.conn, envelope.ip, room)
            ctx.client = self.server.hub.connect(ctx)
            self._remotes[ctx.conn] = ctx
            self._active[ctx.room] = time.monotonic()
        else:
            found = self._remotes.get(envelope.conn)
            if found is None or found.node != envelope.sender:
                self.dropped += 1
                return
            ctx = found
        ctx.inbox.append(envelope)
        if ctx.worker is None:
            ctx.worker = asyncio.create_task(self._work(ctx))

    async def _work(self, ctx: RemoteContext) -> None:
        """Handle a bridged socket's envelopes one at a time, as the server reads frames."""
        try:
            while ctx.inbox and not ctx.forgotten:
                envelope = ctx.inbox.popleft()
                if isinstance(envelope, Gone):
                    self.forget_remote(ctx)
                elif isinstance(envelope, Open):
                    await self._join(ctx, envelope)
                elif isinstance(envelope, Resume):
                    await self.handover.resume(ctx, envelope)
                elif isinstance(envelope, Msg):
                    assert ctx.client is not None
                    await self.server.handle(ctx.ip, ctx.client, envelope.message,
                                             time.monotonic())
        except Exception:  # noqa: BLE001 - one socket's trouble must not stop the others
            log.exception("bridged socket %s failed", ctx.conn)
            self.to_ingress(ctx, Close(self.node_id, ctx.conn, CLOSE_RECONNECT, "server error"))
            self.forget_remote(ctx)
        finally:
            ctx.worker = None

    async def _join(self, ctx: RemoteContext, envelope: Open) -> None:
        client = ctx.client
        assert client is not None
        room = envelope.join.room
        if self.server.registry.get(room) is None and (self.draining
                                                       or not await self._still_ours(room)):
            client.context.enqueue(error_message(
                "try_later", "the room moved while you joined; try again", False,
                CLUSTER_RETRY))
        else:
            await self.server.handle(ctx.ip, client, envelope.join, time.monotonic())
        if ctx.forgotten or client.closed:
            return  # refused for good (a fatal error): ``close`` went out already
        member = client.member
        if member is not None:
            room = self.server.registry.get(member.room_id)
            self.to_ingress(ctx, Accepted(self.node_id, ctx.conn, member.id, member.room_id,
                                          member.name, member.listen_only, member.priority,
                                          bool(room and room.password_protected)))
        else:
            self.to_ingress(ctx, Refused(self.node_id, ctx.conn))
            self.forget_remote(ctx)

    async def _still_ours(self, room: str) -> bool:
        """A room about to be created here for an ``open``: is it still claimed by us? (It
        may have been released, or re-placed, since the ingress read its record.)"""
        try:
            return (await self.store.claim(room, self.node_id)).owner == self.node_id
        except ClusterError as exc:
            log.warning("cannot confirm room %s is ours: %s", room, exc)
            return False

    def to_ingress(self, ctx: RemoteContext, envelope: Envelope) -> None:
        if ctx.forgotten:
            return
        if not self._publish(ctx.node, envelope):
            self.forget_remote(ctx)

    def forget_remote(self, ctx: RemoteContext) -> None:
        """The bridged socket is gone (or we gave it up): the member leaves the room."""
        if self._remotes.get(ctx.conn) is not ctx:
            return
        del self._remotes[ctx.conn]
        ctx.forgotten = True
        ctx.inbox.clear()
        if ctx.client is not None:
            self.server.drop(ctx.client)

    # -- the bus ---------------------------------------------------------------------------------

    def on_envelope(self, envelope: Envelope) -> None:
        """The bus: one decoded envelope from another node."""
        if conn_node(envelope.conn) == self.node_id:
            self._from_owner(envelope)
        else:
            self._from_ingress(envelope)

    def on_gap(self, node: str | None) -> None:
        """The bus: envelopes to or from ``node`` (None: any node) may have been lost. The
        sockets bridged to ``node`` wait for the sweep to say whether it died (their room
        is then placed again) or not (they close)."""
        if node is None:
            self.end_sessions_with(None, "envelopes lost")
        else:
            self.handover.suspect(node)
            self.end_sessions_with(node, "envelopes lost", proxies=False)

    def end_sessions_with(self, node: str | None, why: str, proxies: bool = True) -> None:
        """End every session shared with ``node`` (None: with every node); ``proxies``
        False: only those of its sockets whose room is here."""
        ended = [p for p in self._proxies.values()
                 if proxies and (node is None or p.owner == node)]
        remotes = [c for c in self._remotes.values() if node is None or c.node == node]
        if ended or remotes:
            log.warning("ending %d bridged socket(s) and %d remote member(s) shared with %s: %s",
                        len(ended), len(remotes), node or "every node", why)
        for proxy in ended:
            self.lost_proxy(proxy)
        for ctx in remotes:
            self.to_ingress(ctx, Close(self.node_id, ctx.conn, CLOSE_RECONNECT,
                                       "room's server lost contact"))
            self.forget_remote(ctx)

    def _publish(self, node: str, envelope: Envelope) -> bool:
        if self.publish is None:
            return False
        try:
            self.publish(node, envelope)
        except EnvelopeError as exc:  # over the size cap: cannot be relayed
            log.warning("cannot send a %s to node %s: %s", type(envelope).__name__, node, exc)
            return False
        return True

    # -- housekeeping (node.py, each heartbeat) ------------------------------------------------

    async def sweep(self) -> None:
        """Members whose socket was on a dead node leave; sockets here whose room was on a
        dead node follow it to its new node (handover.py); release the claims of rooms empty
        here for RELEASE_GRACE s; claim again the rooms we host that Redis forgot."""
        peers = {p.owner for p in self._proxies.values()}
        peers.update(c.node for c in self._remotes.values())
        if peers:
            alive = await self.store.alive(peers)
            for node in sorted(peers - alive):
                self.end_sessions_with(node, "its node is gone", proxies=False)
            await self.handover.sweep(alive)
        owned = await self.store.rooms_of(self.node_id)
        hosted = {room.id for room in self.server.registry.rooms()}
        now = time.monotonic()
        for room in sorted(owned - hosted):
            if self._busy(room, now):
                continue
            since = self._empty_since.setdefault(room, now)
            if now - since >= RELEASE_GRACE and not self._busy(room, now):
                await self.store.release(room, self.node_id)
                self._empty_since.pop(room, None)
        for room in list(self._empty_since):
            if room not in owned or room in hosted:
                del self._empty_since[room]
        for room in sorted(hosted - owned):
            record = await self.store.claim(room, self.node_id)
            if record.owner != self.node_id:
                log.error("room %s is hosted here but Redis gives it to node %s", room,
                          record.owner)
        await self._save_password_keys(hosted - owned)
        self._active = {r: t for r, t in self._active.items() if now - t < RELEASE_GRACE}

    async def _save_password_keys(self, claimed_again: set[str]) -> None:
        """Keep each protected room's password key in its record, so that a node that takes
        the room over (phase 2) checks later joins against it (never the password)."""
        for room in self.server.registry.rooms():
            key = room.password_key
            if key is None or (self._keys_saved.get(room.id) == key
                               and room.id not in claimed_again):
                continue
            await self.store.set_password_key(room.id, self.node_id, key)
            self._keys_saved[room.id] = key
        for room_id in [r for r in self._keys_saved if self.server.registry.get(r) is None]:
            del self._keys_saved[room_id]

    def _busy(self, room: str, now: float) -> bool:
        """A join of ``room`` may be on its way here."""
        return (now - self._active.get(room, -RELEASE_GRACE) < RELEASE_GRACE
                or any(c.room == room for c in self._remotes.values()))

    def health(self) -> dict[str, object]:
        """The ``cluster`` section of /healthz."""
        node = self.store.node
        return {
            "node_id": self.node_id,
            "draining": self.draining or bool(node is not None and node.draining),
            "redis_ok": bool(self.store.redis_ok and self.bus_ok()),
            "owned_rooms": len(self.server.registry),
            "bridged_clients": len(self._proxies),
            "remote_members": len(self._remotes),
            "resumed": self.handover.resumed,
        }
