"""One node of a cluster: the store, the bus and the bridge around a running signaling server.

:meth:`ClusterNode.start` is what ``walkie serve --redis`` adds to a single server, in this
order: connect the store (Redis must answer, or the node does not start), subscribe the bus
to the node's own channel, hang the bridge on the server (``server.cluster``), and only then
register the node with its first heartbeat, so that no other node places a room here or
sends us an envelope before we can take it. Each heartbeat writes the node's load; a sweep
after each one ends sessions shared with dead nodes and releases the claims of rooms that
emptied (bridge.py), and places again the rooms of dead owners that sockets here were
bridged to (handover.py). :meth:`ClusterNode.drain` moves the node's rooms elsewhere and
closes its sockets (drain.py: what ``walkie serve`` does on SIGTERM). :meth:`ClusterNode.close`
stops in the reverse order of the start and removes the node's record, so that the others
see it gone at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bridge import Bridge
from .bus import RedisBus
from .drain import drain
from .model import ClusterError, NodeInfo, NodeLoad, new_node_id
from .store import DEFAULT_HEARTBEAT, DEFAULT_NODE_TTL, DEFAULT_PREFIX, RedisStore, redacted

if TYPE_CHECKING:
    from ..server import SignalingServer

__all__ = ["ClusterNode", "NodeSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What a node needs to know about the cluster (walkie/config.py fills it)."""

    redis_url: str
    node_id: str | None = None          # None: a fresh random id
    prefix: str = DEFAULT_PREFIX
    heartbeat: float = DEFAULT_HEARTBEAT
    node_ttl: float = DEFAULT_NODE_TTL
    advertise_url: str = ""
    room_capacity: int = 1000


class ClusterNode:
    """A running node: ``await ClusterNode.start(...)``, then ``await node.close()``."""

    def __init__(self, settings: NodeSettings, server: SignalingServer, store: RedisStore,
                 bus: RedisBus, bridge: Bridge) -> None:
        self.settings = settings
        self.server = server
        self.store = store
        self.bus = bus
        self.bridge = bridge
        self._sweeper: asyncio.Task[None] | None = None
        #: set by close(): the sweeper's loop ends on it (see _sweep_forever)
        self._stopping = False

    @property
    def node_id(self) -> str:
        return self.bridge.node_id

    @classmethod
    async def start(cls, settings: NodeSettings, server: SignalingServer,
                    media: Any) -> ClusterNode:
        """Join the cluster; raises ClusterUnavailable if Redis does not answer."""
        info = NodeInfo(
            id=settings.node_id or new_node_id(),
            signaling_url=settings.advertise_url,
            media=tuple((media.announced_ip, port) for _, port in _media_addresses(media)),
            started_at=time.time(),
        )
        store = await RedisStore.connect(settings.redis_url, info, prefix=settings.prefix,
                                         heartbeat=settings.heartbeat,
                                         node_ttl=settings.node_ttl)
        bridge = Bridge(info.id, store, server)
        try:
            bus = await RedisBus.connect(settings.redis_url, info.id, prefix=settings.prefix,
                                         on_envelope=bridge.on_envelope, on_gap=bridge.on_gap)
        except Exception:
            await store.close()
            raise
        bridge.publish = bus.publish
        bridge.bus_ok = lambda: bus.ok
        node = cls(settings, server, store, bus, bridge)
        await bus.start()
        server.cluster = bridge
        store.start_heartbeat(node.load)
        node._sweeper = asyncio.create_task(node._sweep_forever(), name="cluster-sweep")
        log.info("node %s joined the cluster at %s", info.id, redacted(settings.redis_url))
        return node

    def load(self) -> NodeLoad:
        """What the heartbeat reports (placement reads it)."""
        registry = self.server.registry
        return NodeLoad(rooms=len(registry), members=registry.member_count,
                        cpu_percent=_cpu_percent(self.server.media),
                        capacity_rooms=self.settings.room_capacity)

    async def drain(self, timeout: float) -> int:
        """Move every room of this node to other nodes (at a quiet moment, or anyway after
        ``timeout`` seconds) and close this node's sockets (1012); the rooms moved. The node
        stays registered, as draining, until :meth:`close`."""
        return await drain(self.bridge, timeout)

    async def close(self) -> None:
        """Leave the cluster: stop sweeping, end bridged sessions, remove our record."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.bridge.handover.close()
        self.bridge.end_sessions_with(None, "node stopping")
        self.server.cluster = None
        await self.bus.close()
        await self.store.close()

    async def _sweep_forever(self) -> None:
        """Sweep every heartbeat until close(). The loop ends on ``_stopping`` as well as on
        the cancellation: redis 5.0.0 can turn a cancellation that lands in a command into a
        connection error, which the loop survives by design, so the cancellation alone
        could be lost and close() would wait for ever."""
        failing = False
        while not self._stopping:
            await asyncio.sleep(self.settings.heartbeat)
            try:
                await self.bridge.sweep()
            except ClusterError as exc:  # Redis away: the heartbeat logs it; try next time
                if not failing:
                    log.info("cluster sweep skipped: %s", exc)
                failing = True
            except Exception:  # noqa: BLE001 - housekeeping must go on
                log.exception("cluster sweep failed")
            else:
                failing = False


def _media_addresses(media: Any) -> list[tuple[str, int]]:
    return list(getattr(media, "addresses", None) or [media.address])


def _cpu_percent(media: Any) -> float:
    """The media workers' CPU, summed (a snapshot of their last reports; 0 if unknown)."""
    workers = media.stats().get("workers") or []
    return float(sum(w.get("cpu_percent") or 0.0 for w in workers if isinstance(w, dict)))

