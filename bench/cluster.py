"""The nodes a multi-node run spreads its users over (``--cluster N`` or several ``--url``).

``--cluster N``: the bench starts a ``redis-server`` and N ``walkie serve --redis`` nodes on
loopback, every one pinned to the server core as the single-node bench pins its server
(so N nodes share the core one server would have: the comparison with one node is at equal
CPU), each with an HTTP and a UDP port of its own, one shared secret (in a file, not on a
command line) and one key prefix per run. Several ``--url``: nodes that already run; their
PIDs (``--server-pid``, in the same order) give per-node CPU, and ``--redis`` lets the bench
read which node owns each room.

Which node is which: each node's ``/healthz`` says its ``cluster.node_id``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .redisproc import RedisProcess
from .server import ServerError, ServerProcess, fetch_healthz

__all__ = ["Cluster", "Node"]

#: Seconds a node has to stop after SIGTERM before SIGKILL (a loaded machine; not a figure).
STOP_GRACE = 30.0


@dataclass(slots=True)
class Node:
    """One node of the run: where its signaling is, its PID, its id in the cluster."""

    url: str
    pid: int | None = None
    process: ServerProcess | None = None
    node_id: str | None = None

    @property
    def ws_url(self) -> str:
        base = self.url.rstrip("/")
        return ("wss://" if base.startswith("https://") else "ws://") + base.split("://", 1)[1] + "/ws"

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")


@dataclass(slots=True)
class Cluster:
    """The nodes, and the Redis that says who owns which room (None: not known)."""

    nodes: list[Node]
    redis_url: str | None = None
    prefix: str = "walkie:"
    redis: RedisProcess | None = None
    started_by_bench: bool = False
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    #: the last lines of a node that did not exit with 0 (why)
    last_output: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def start(cls, count: int, *, core: int | None, max_users: int,
              extra_args: list[str]) -> Cluster:
        """A redis-server and ``count`` nodes on loopback, all pinned to ``core``."""
        redis = RedisProcess.start(core)
        prefix = f"walkie-bench-{secrets.token_hex(3)}:"
        fd, secret_file = tempfile.mkstemp(prefix="walkie-bench-secret-")
        cluster = cls([], redis.url, prefix, redis, started_by_bench=True)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(16) + "\n")
            for i in range(count):
                args = ["--redis", redis.url, "--secret-file", secret_file,
                        "--node-id", f"n{i + 1}", "--redis-prefix", prefix, *extra_args]
                server = ServerProcess.start(max_users=max_users, core=core, extra_args=args)
                cluster.nodes.append(Node(server.url, server.pid, server))
        except BaseException:
            cluster.stop()
            raise
        finally:
            os.unlink(secret_file)  # each node has read it by the time it printed its URL
        return cluster

    @classmethod
    def given(cls, urls: list[str], pids: list[int], redis_url: str | None,
              prefix: str) -> Cluster:
        """Nodes that already run (``--url`` repeated; ``--server-pid`` in the same order)."""
        nodes = [Node(url, pids[i] if i < len(pids) else None) for i, url in enumerate(urls)]
        return cls(nodes, redis_url, prefix)

    async def identify(self) -> None:
        """Each node's id from its /healthz; ServerError if one is not a cluster node."""
        for node in self.nodes:
            health = await fetch_healthz(node.url, timeout=5.0)
            section = (health or {}).get("cluster")
            node_id = section.get("node_id") if isinstance(section, dict) else None
            if not isinstance(node_id, str):
                raise ServerError(f"{node.url} is not a cluster node (no cluster.node_id in its "
                                  "/healthz: was it started with --redis?)")
            node.node_id = node_id

    def by_id(self) -> dict[str, int]:
        """Node id -> its index in ``nodes``."""
        return {n.node_id: i for i, n in enumerate(self.nodes) if n.node_id is not None}

    def stop(self) -> None:
        """Stop what the bench started (nodes, then Redis), each by its PID: SIGTERM, and
        SIGKILL only after a generous STOP_GRACE (a node leaves the cluster cleanly first)."""
        for node in self.nodes:
            if node.process is not None:
                code = node.process.stop(STOP_GRACE)
                self.exit_codes[node.node_id or node.url] = code
                if code not in (0, None):
                    self.last_output[node.node_id or node.url] = node.process.output[-10:]
        if self.redis is not None:
            self.exit_codes["redis"] = self.redis.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "nodes": [{"url": n.url, "pid": n.pid, "node_id": n.node_id} for n in self.nodes],
            "redis_pid": self.redis.pid if self.redis is not None else None,
            "owners_known": self.redis_url is not None,
            "prefix": self.prefix,
            "started_by_bench": self.started_by_bench,
            "exit_codes": self.exit_codes,
            "last_output": self.last_output,
        }
