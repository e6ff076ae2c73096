"""The cluster's shared state in Redis: node records, room records, their scripts, the heartbeat.

This is the only module that reads or writes cluster *state* in Redis (the message bus is
bus.py; the Lua scripts are scripts.py). A little over 400 lines: every operation on the
shared state is here, each a few lines, so that the keys are named in one place. The keys,
with the default prefix ``walkie:`` (docs/CLUSTER.md has the full table):

* ``walkie:node:<id>``: the node's JSON record (model.encode_node), written with a ``PX`` TTL
  by the heartbeat. A node is live exactly while this key exists.
* ``walkie:nodes``: the ids of nodes that registered (for listing; pruned when a key is gone).
* ``walkie:room:<room>``: a hash ``owner``, ``epoch``, ``created`` and, for a room with a
  password, ``password_key`` (hex). No TTL; written only by the Lua scripts (scripts.py),
  each of which reads and writes atomically, so nodes racing for a room get the same answer.
* ``walkie:rooms:<id>``: the rooms a node owns (kept in step by the same scripts).

Everything read back is checked by model.py (junk raises ClusterDataError). Every failure to
talk to Redis (refused, timed out, or an error reply) raises ClusterUnavailable, so that a
caller has one thing to catch and answer ``try_later``. The ``redis`` package is imported
only by :meth:`RedisStore.connect`: a single node never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .model import (NODE_ID_RE, PASSWORD_KEY_BYTES, ClusterDataError, ClusterUnavailable,
                    NodeInfo, NodeLoad, NoNodeAvailable, RoomRecord, check_node_id,
                    check_room_id, decode_node, decode_room, encode_node)
from . import scripts
from .placement import choose_node

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_NODE_TTL", "DEFAULT_PREFIX", "DEFAULT_TIMEOUT",
           "RedisStore", "redacted"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "walkie:"
DEFAULT_HEARTBEAT = 0.5
DEFAULT_NODE_TTL = 2.0
#: Seconds one Redis command may take (connect or reply) before it counts as a failure.
DEFAULT_TIMEOUT = 1.0
#: Candidates ``place`` tries when the chosen node vanishes between reading and claiming.
PLACE_TRIES = 3
#: At most one line per this many seconds about junk read from Redis.
JUNK_LOG_INTERVAL = 10.0

T = TypeVar("T")


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = f"{parts.username}:***@" if parts.username else ":***@"
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=user + host))
    except ValueError:
        return "the Redis URL"


class RedisStore:
    """One node's view of the cluster state (or an observer's, with ``node`` None).

    Build it with :meth:`connect`; tests may pass any ``redis.asyncio``-compatible client
    (fakeredis) to the constructor.
    """

    def __init__(self, client: Any, node: NodeInfo | None, *, prefix: str = DEFAULT_PREFIX,
                 heartbeat: float = DEFAULT_HEARTBEAT, node_ttl: float = DEFAULT_NODE_TTL,
                 url: str = "redis") -> None:
        if not 0 < heartbeat < node_ttl:
            raise ValueError("need 0 < heartbeat < node_ttl")
        self.node = node
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        #: Whether the last Redis command succeeded (for /healthz and logs).
        self.redis_ok = True
        self._redis = client
        self._where = redacted(url)
        self._load = NodeLoad()
        self._beats: tuple[asyncio.Task[None], asyncio.Event] | None = None
        self._junk_logged = -JUNK_LOG_INTERVAL
        self._claim = client.register_script(scripts.CLAIM)
        self._move = client.register_script(scripts.MOVE)
        self._release = client.register_script(scripts.RELEASE)
        self._set_password_key = client.register_script(scripts.SET_PASSWORD_KEY)

    @classmethod
    async def connect(cls, url: str, node: NodeInfo | None = None,
                      prefix: str = DEFAULT_PREFIX, heartbeat: float = DEFAULT_HEARTBEAT,
                      node_ttl: float = DEFAULT_NODE_TTL, *,
                      timeout: float = DEFAULT_TIMEOUT) -> RedisStore:
        """A store on the Redis at ``url`` (``redis://`` or ``rediss://``, password in the
        URL), checked with a PING; raises ClusterUnavailable if Redis does not answer.

        ``node`` None: an observer (``walkie nodes``) that registers nothing.
        """
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            client = redis.asyncio.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                # one quick retry: a pooled connection that Redis dropped (a restart) fails
                # once and is reopened, which is not an outage
                retry=Retry(NoBackoff(), 1), retry_on_error=[ConnectionError, TimeoutError])
        except ValueError as exc:
            raise ClusterUnavailable(f"bad Redis URL {redacted(url)}: {exc}") from None
        store = cls(client, node, prefix=prefix, heartbeat=heartbeat, node_ttl=node_ttl,
                    url=url)
        try:
            await store._call(client.ping())
        except ClusterUnavailable:
            await store._close_client()
            raise
        return store

    # -- keys ------------------------------------------------------------------------------

    def _node_key(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    def _room_key(self, room_id: str) -> str:
        return f"{self.prefix}room:{room_id}"

    def _rooms_key(self, node_id: str) -> str:
        return f"{self.prefix}rooms:{node_id}"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}nodes"

    # -- this node: registration, heartbeat, draining ----------------------------------------

    def start_heartbeat(self, load: Callable[[], NodeLoad]) -> None:
        """Write this node's record now and every ``heartbeat`` seconds, with ``load()``.

        The task outlives Redis outages: a failed write is logged once per outage and
        retried at the next beat; :attr:`redis_ok` says how the last one went.
        """
        self._own_node()
        if self._beats is not None:
            raise RuntimeError("the heartbeat is already running")
        stop = asyncio.Event()
        task = asyncio.create_task(self._beat_forever(load, stop), name="cluster-heartbeat")
        self._beats = (task, stop)

    async def stop_heartbeat(self) -> None:
        """Stop writing the record (it expires after ``node_ttl``, as if the node died)."""
        beats, self._beats = self._beats, None
        if beats is not None:
            task, stop = beats
            # The flag as well as the cancellation: redis 5.0.0 can turn a cancellation that
            # lands in a command into a connection error, which the loop survives by design.
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def beat(self, load: NodeLoad | None = None) -> None:
        """Write this node's record once (with ``load``, else the last load written)."""
        node = self._own_node()
        if load is not None:
            self._load = load
        ttl_ms = max(1, round(self.node_ttl * 1000))

        async def write(pipe: Any) -> None:
            pipe.set(self._node_key(node.id), encode_node(node, self._load), px=ttl_ms)
            pipe.sadd(self._nodes_key, node.id)

        await self._pipeline(write)

    async def set_draining(self, draining: bool = True) -> None:
        """Mark this node draining (placement skips it) and write the record at once."""
        self.node = replace(self._own_node(), draining=draining)
        await self.beat()

    async def close(self) -> None:
        """Stop the heartbeat and, for a node, delete its record so that other nodes see it
        gone at once (a clean stop); Redis being away then is logged, not raised."""
        await self.stop_heartbeat()
        if self.node is not None:
            node_id = self.node.id

            async def remove(pipe: Any) -> None:
                pipe.delete(self._node_key(node_id))
                pipe.srem(self._nodes_key, node_id)

            try:
                await self._pipeline(remove)
            except ClusterUnavailable as exc:
                log.warning("could not remove node %s from Redis (it expires in %g s): %s",
                            node_id, self.node_ttl, exc)
        await self._close_client()

    async def _beat_forever(self, load: Callable[[], NodeLoad], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        lost_at: float | None = None
        load_failing = False
        while not stop.is_set():
            started = loop.time()
            try:
                current: NodeLoad | None = load()
                load_failing = False
            except Exception:  # noqa: BLE001 - a broken load probe must not stop the heartbeat
                if not load_failing:  # once until it works again, not at every beat
                    log.exception("the node's load could not be read; reporting the last one")
                load_failing = True
                current = None
            try:
                await self.beat(current)
            except ClusterUnavailable as exc:
                if lost_at is None:
                    lost_at = started
                    log.warning("Redis is unreachable (%s): the node's heartbeat retries every "
                                "%g s", exc, self.heartbeat)
            else:
                if lost_at is not None:
                    log.warning("Redis is reachable again after %.1f s", started - lost_at)
                    lost_at = None
            await asyncio.sleep(max(0.0, started + self.heartbeat - loop.time()))

    # -- reading the cluster -------------------------------------------------------------------

    async def nodes(self) -> list[tuple[NodeInfo, NodeLoad]]:
        """The live nodes with their load, by id. ``rooms`` is the number of rooms each owns
        in Redis now (claims count at once, not at the owner's next heartbeat)."""
        members = await self._call(self._redis.smembers(self._nodes_key))
        ids = sorted(self._valid_ids(members, NODE_ID_RE.fullmatch, "node id"))
        if not ids:
            return []

        async def read(pipe: Any) -> None:
            pipe.mget([self._node_key(i) for i in ids])
            for node_id in ids:
                pipe.scard(self._rooms_key(node_id))

        records, *owned = await self._pipeline(read)
        live: list[tuple[NodeInfo, NodeLoad]] = []
        gone: list[str] = []
        for node_id, raw, rooms in zip(ids, records, owned):
            if raw is None:
                gone.append(node_id)
                continue
            try:
                info, load = decode_node(raw, node_id)
            except ClusterDataError as exc:
                self._log_junk(f"node {node_id}", exc)
                continue
            live.append((info, replace(load, rooms=int(rooms))))
        if gone:
            await self._call(self._redis.srem(self._nodes_key, *gone))
        return live

    async def alive(self, node_ids: Iterable[str]) -> set[str]:
        """Which of ``node_ids`` are live (one round trip)."""
        ids = [check_node_id(i) for i in node_ids]
        if not ids:
            return set()

        async def check(pipe: Any) -> None:
            for node_id in ids:
                pipe.exists(self._node_key(node_id))

        found = await self._pipeline(check)
        return {node_id for node_id, n in zip(ids, found) if n}

    async def room(self, room_id: str) -> RoomRecord | None:
        """The room's record as it is (its owner may be dead), or None."""
        fields = await self._call(self._redis.hgetall(self._room_key(check_room_id(room_id))))
        return decode_room(room_id, fields) if fields else None

    async def rooms_of(self, node_id: str) -> set[str]:
        """The rooms ``node_id`` owns (a dead node's too, until they are claimed again)."""
        members = await self._call(self._redis.smembers(self._rooms_key(check_node_id(node_id))))
        return self._valid_ids(members, _is_room_id, f"room id owned by {node_id}")

    # -- changing room records (each one Lua script: atomic) ------------------------------------

    async def place(self, room_id: str) -> RoomRecord:
        """The room's record with a live owner: its owner if live, else a node chosen by
        :func:`choose_node` over the live nodes claims it. Raises NoNodeAvailable when no
        live node can take it."""
        held = await self._run_claim(room_id, "")
        if held is not None:
            return held
        tried: set[str] = set()
        for _ in range(PLACE_TRIES):
            candidate = choose_node(await self.nodes(), exclude=tried)
            if candidate is None:
                break
            won = await self._run_claim(room_id, candidate)
            if won is not None:
                return won
            tried.add(candidate)  # it died between the reading and the claim
        raise NoNodeAvailable(f"no live node can take room {room_id} (all draining, full or "
                              "gone)")

    async def claim(self, room_id: str, candidate: str) -> RoomRecord:
        """Give the room to ``candidate`` unless a live node owns it; returns the winner's
        record (``epoch`` + 1 if the candidate took it). NoNodeAvailable if nobody live owns
        it and ``candidate`` is not live either."""
        won = await self._run_claim(room_id, check_node_id(candidate))
        if won is None:
            raise NoNodeAvailable(f"node {candidate} is not live: it cannot claim {room_id}")
        return won

    async def move(self, room_id: str, from_node: str, to_node: str,
                   epoch: int) -> RoomRecord | None:
        """Hand the room from ``from_node`` to the live ``to_node``, if ``from_node`` still
        owns it at ``epoch``; the new record, or None (refused: moved, released or re-claimed
        meanwhile, or ``to_node`` not live)."""
        check_room_id(room_id)
        if check_node_id(from_node) == check_node_id(to_node):
            raise ValueError("a room cannot move to the node that has it")
        reply = await self._script(
            self._move,
            [self._room_key(room_id), self._rooms_key(from_node), self._rooms_key(to_node)],
            [self.prefix + "node:", from_node, to_node, str(int(epoch)), room_id])
        return self._record(room_id, reply)

    async def release(self, room_id: str, node_id: str) -> bool:
        """Delete the room's record if ``node_id`` owns it (its last member left)."""
        check_room_id(room_id)
        reply = await self._script(
            self._release, [self._room_key(room_id), self._rooms_key(check_node_id(node_id))],
            [node_id, room_id])
        return reply == 1

    async def set_password_key(self, room_id: str, node_id: str, key: bytes) -> bool:
        """Store the room's password key, if ``node_id`` owns the room and it has none yet."""
        check_room_id(room_id)
        if len(key) != PASSWORD_KEY_BYTES:
            raise ValueError(f"a password key is {PASSWORD_KEY_BYTES} bytes")
        reply = await self._script(self._set_password_key, [self._room_key(room_id)],
                                   [check_node_id(node_id), key.hex()])
        return reply == 1

    async def _run_claim(self, room_id: str, candidate: str) -> RoomRecord | None:
        check_room_id(room_id)
        reply = await self._script(
            self._claim, [self._room_key(room_id), self._rooms_key(candidate or "-")],
            [self.prefix + "node:", self.prefix + "rooms:", candidate, room_id,
             f"{time.time():.3f}"])
        return self._record(room_id, reply)

    # -- plumbing ---------------------------------------------------------------------------

    def _own_node(self) -> NodeInfo:
        if self.node is None:
            raise RuntimeError("an observer store has no node of its own")
        return self.node

    def _record(self, room_id: str, reply: Any) -> RoomRecord | None:
        """A script's reply: 0 (nothing), or HGETALL as a flat list of fields and values."""
        if reply == 0:
            return None
        if not isinstance(reply, list) or len(reply) % 2:
            raise ClusterDataError(f"unexpected script reply {reply!r:.80}")
        return decode_room(room_id, dict(zip(reply[::2], reply[1::2])))

    def _valid_ids(self, members: Any, valid: Callable[[str], Any], what: str) -> set[str]:
        """The members of a Redis set that are valid ids (others are logged and left out)."""
        ids = set()
        for raw in members:
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else ""
            if valid(text):
                ids.add(text)
            else:
                self._log_junk(what, ClusterDataError(f"{raw!r:.80}"))
        return ids

    def _log_junk(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._junk_logged >= JUNK_LOG_INTERVAL:
            self._junk_logged = now
            log.warning("ignored junk in Redis (%s): %s", what, exc)

    async def _script(self, script: Any, keys: list[str], args: list[str]) -> Any:
        return await self._call(script(keys=keys, args=args))

    async def _pipeline(self, fill: Callable[[Any], Awaitable[None]]) -> list[Any]:
        """Commands queued by ``fill`` sent in one round trip (not a transaction)."""

        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                await fill(pipe)
                return list(await pipe.execute())

        return await self._call(run())

    async def _call(self, pending: Awaitable[T]) -> T:
        """Await one Redis operation; every failure becomes ClusterUnavailable (a reply
        saying a key holds the wrong type of value is junk: ClusterDataError)."""
        from redis.exceptions import RedisError, ResponseError

        try:
            result = await pending
        except ResponseError as exc:
            self.redis_ok = True  # Redis answered
            if str(exc).startswith("WRONGTYPE"):
                raise ClusterDataError(f"a key of the wrong type in Redis: {exc}") from None
            raise ClusterUnavailable(f"Redis at {self._where} refused: {exc}") from None
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self.redis_ok = False
            raise ClusterUnavailable(f"Redis at {self._where}: {exc or type(exc).__name__}"
                                     ) from None
        self.redis_ok = True
        return result

    async def _close_client(self) -> None:
        close = getattr(self._redis, "aclose", None) or self._redis.close  # redis < 5.0.1
        try:
            await close()
        except Exception as exc:  # noqa: BLE001 - closing must not fail a shutdown
            log.debug("closing the Redis client: %s", exc)


def _is_room_id(text: str) -> bool:
    try:
        check_room_id(text)
    except ValueError:
        return False
    return True
