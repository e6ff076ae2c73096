"""Walkie nodes on loopback for the multi-node tests, in the test's own event loop.

Each :class:`Node` is what ``walkie serve --redis`` runs, minus the process: its own media
plane (an ``sfu.Router`` on its own UDP port), its own signaling server (its own HTTP port)
and a :class:`~signaling.cluster.node.ClusterNode` on the shared Redis. Clients reach a node
by its WebSocket URL; media goes to the UDP port of the node that owns the room, as it would
across machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import sfu
from signaling.cluster.node import ClusterNode, NodeSettings
from signaling.server import ServerConfig, SignalingServer

__all__ = ["Node", "start_node", "running_nodes"]

#: Seconds a node gets to stop at the end of a test (a generous bound, not a measurement).
CLOSE_WITHIN = 30.0


@dataclass
class Node:
    router: sfu.Router
    server: SignalingServer
    cluster: ClusterNode

    @property
    def id(self) -> str:
        return self.cluster.node_id

    @property
    def ws_url(self) -> str:
        host, port = self.server.address
        return f"ws://{host}:{port}/ws"

    @property
    def origin(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}"

    killed: bool = False

    def hosts(self, room: str) -> bool:
        return self.server.registry.get(room) is not None

    async def kill(self) -> None:
        """What kill -9 does to a node, in-process: no goodbye (its record in Redis expires
        after the TTL, its channel loses its subscriber), its sockets and UDP port vanish."""
        self.killed = True
        cluster = self.cluster
        if cluster._sweeper is not None:
            cluster._sweeper.cancel()
        await cluster.store.stop_heartbeat()
        for conn in self.server.connections():
            conn.ws.transport.abort()
        await cluster.bus.close()
        await self.server.close()
        await self.router.close()

    async def close(self) -> None:
        if self.killed:
            await self.cluster.store.close()
            return
        await self.cluster.close()
        await self.server.close()
        await self.router.close()


async def start_node(redis_url: str, node_id: str, prefix: str = "walkie-test:",
                     media: dict[str, object] | None = None, **server: object) -> Node:
    """``media``: more ``sfu.RouterConfig`` settings (e.g. say-again's ``replay_seconds``)."""
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0,
                                                     **(media or {})))  # type: ignore[arg-type]
    settings: dict[str, object] = {"host": "127.0.0.1", "port": 0, "tick_interval": 0.05}
    settings.update(server)
    signaling = await SignalingServer.start(ServerConfig(**settings), router)  # type: ignore[arg-type]
    try:
        cluster = await ClusterNode.start(
            NodeSettings(redis_url, node_id, prefix=prefix, heartbeat=0.2, node_ttl=1.0),
            signaling, router)
    except BaseException:
        await signaling.close()
        await router.close()
        raise
    return Node(router, signaling, cluster)


async def running_nodes(redis_url: str, count: int, **server: object) -> AsyncIterator[list[Node]]:
    """``count`` nodes named node-1, node-2 ...; closed afterwards."""
    nodes: list[Node] = []
    try:
        for i in range(count):
            nodes.append(await start_node(redis_url, f"node-{i + 1}", **server))
        yield nodes
    finally:
        for node in nodes:  # bounded: a node that cannot stop fails the test, never hangs it
            await asyncio.wait_for(node.close(), CLOSE_WITHIN)
