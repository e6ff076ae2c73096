"""What a multi-node run measures per node, and the join time by the node a user joined through.

* **Per node, over the steady window** (:class:`ClusterWindow`, marked with the run's own
  window): the CPU of the node's process tree (signaling and media workers, as the single
  node's figure), the packets its media plane says it forwarded (``/healthz``), and the
  packets the listeners of the rooms it owns received. Redis's CPU is reported apart and
  counted in the cluster's total (coordination is part of what several nodes cost).
* **Join time, split**: a user joined *through the owning node* (its WebSocket is on the
  node that hosts the room: a single server's path) or *through another node* (the join
  and the offer/answer are bridged over Redis). Which node owns a room is read from Redis
  right after the joins, as an operator reads it (``walkie nodes --json``); without a
  Redis URL (``--url`` without ``--redis``) the split is not reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .proctree import TreeSample, tree_cpu
from .server import fetch_healthz
from .stats import percentiles
from .window import Window, other_load, sample_server

if TYPE_CHECKING:
    from .client import SyntheticClient
    from .cluster import Cluster

__all__ = ["ClusterWindow", "apply_cluster", "join_split", "room_owners"]

#: A bound on one ``walkie nodes`` (a Python start on a loaded machine), not a measurement.
NODES_TIMEOUT = 30.0


class ClusterWindow:
    """Each node's counters (and Redis's CPU) at the start and end of the steady window."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.trees: list[list[TreeSample | None]] = [[] for _ in cluster.nodes]
        self.redis: list[TreeSample | None] = []
        self.forwarded: list[list[int | None]] = [[] for _ in cluster.nodes]
        self.received: list[dict[str, int]] = []

    async def mark(self, clients: Sequence[SyntheticClient]) -> None:
        for i, node in enumerate(self.cluster.nodes):
            previous = self.trees[i][-1] if self.trees[i] else None
            stopped = node.process is not None and node.process.proc.poll() is not None
            # a node killed or stopped in the window (--attack): its CPU is not comparable
            self.trees[i].append(None if stopped else sample_server(node.pid, previous))
        redis = self.cluster.redis
        self.redis.append(sample_server(redis.pid if redis is not None else None))
        by_room: dict[str, int] = {}
        for c in clients:
            if c.monitor is not None:
                by_room[c.room] = by_room.get(c.room, 0) + c.monitor.packets
        self.received.append(by_room)
        healths = await asyncio.gather(*(fetch_healthz(n.url, timeout=2.0)
                                         for n in self.cluster.nodes))
        for i, health in enumerate(healths):
            media = (health or {}).get("media")
            count = media.get("packets_forwarded") if isinstance(media, dict) else None
            self.forwarded[i].append(count if isinstance(count, int) else None)


async def room_owners(cluster: Cluster, rooms: Sequence[str]) -> dict[str, int | None]:
    """Room -> index of the live node that owns it now (None: unknown); {} without a Redis URL.

    Read as an operator reads it, with ``walkie nodes --json`` (the bench is a client: it
    imports nothing of signaling; docs/CLUSTER.md, "walkie nodes")."""
    if cluster.redis_url is None or not rooms:
        return {}
    listing = await _walkie_nodes(cluster.redis_url, cluster.prefix)
    index = cluster.by_id()
    owner_of: dict[str, int | None] = {}
    for node in listing.get("nodes") or []:
        if isinstance(node, dict) and node.get("id") in index:
            for room in node.get("room_ids") or []:
                owner_of[room] = index[node["id"]]
    return {room: owner_of.get(room) for room in rooms}


async def _walkie_nodes(redis_url: str, prefix: str) -> dict[str, Any]:
    """The JSON of ``walkie nodes``; {} if it fails (Redis away: exit status 2)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walkie", "nodes", "--json", "--redis-prefix", prefix,
        env={**os.environ, "WALKIE_REDIS": redis_url},  # not on a command line
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), NODES_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {}
    try:
        listing = json.loads(out) if proc.returncode == 0 else {}
    except ValueError:
        return {}
    return listing if isinstance(listing, dict) else {}


def join_split(cluster: Cluster, clients: Sequence[SyntheticClient],
               owners: dict[str, int | None]) -> dict[str, Any]:
    """Join times through the owning node vs through another node (and how many are which)."""
    ws_index = {n.ws_url: i for i, n in enumerate(cluster.nodes)}
    via_owner: list[float] = []
    via_other: list[float] = []
    unknown = 0
    for c in clients:
        if c.join_ms is None:
            continue
        owner = owners.get(c.room)
        ingress = ws_index.get(c.join_via or "")
        if owner is None or ingress is None:
            unknown += 1
        elif owner == ingress:
            via_owner.append(c.join_ms)
        else:
            via_other.append(c.join_ms)
    return {"through_owner": percentiles(via_owner), "through_other": percentiles(via_other),
            "owner_unknown": unknown, "owners_known": bool(owners)}


def _node_row(cw: ClusterWindow, i: int, wall: float, owners: dict[str, int | None],
              clients: Sequence[SyntheticClient]) -> dict[str, Any]:
    node = cw.cluster.nodes[i]
    row: dict[str, Any] = {"node_id": node.node_id, "url": node.url, "pid": node.pid,
                           "rooms_owned": sum(1 for o in owners.values() if o == i),
                           "users_joined_through": sum(1 for c in clients if c.join_via == node.ws_url)}
    s0, s1 = (cw.trees[i] + [None, None])[:2]
    received = 0
    if len(cw.received) == 2:
        received = sum(n - cw.received[0].get(room, 0) for room, n in cw.received[1].items()
                       if owners.get(room) == i)
    row["packets_received_from_its_rooms"] = received if owners else None
    f = cw.forwarded[i]
    row["packets_forwarded_server_count"] = (f[1] - f[0] if len(f) == 2 and None not in f
                                             else None)  # type: ignore[operator]
    if s0 is not None and s1 is not None and wall:
        cpu = tree_cpu(s0, s1)
        row.update(cpu_s=round(cpu.cpu_s, 3), cpu_percent=round(100 * cpu.cpu_s / wall, 1),
                   user_s=round(cpu.user_s, 3), system_s=round(cpu.system_s, 3),
                   processes=[{k: p[k] for k in ("pid", "role", "cpu_percent")}
                              for p in cpu.processes],
                   rss_bytes=s1.rss_bytes)
        if received and owners:
            row["us_per_forwarded_packet"] = round(cpu.cpu_s / received * 1e6, 2)
    return row


def apply_cluster(result: dict[str, Any], cw: ClusterWindow, window: Window,
                  owners: dict[str, int | None], clients: Sequence[SyntheticClient]) -> None:
    """Add the ``cluster`` section to a run's result; the ``server`` figures become the
    cluster's (every node and Redis, summed)."""
    cluster, wall = cw.cluster, window.wall
    nodes = [_node_row(cw, i, wall, owners, clients) for i in range(len(cluster.nodes))]
    redis_cpu = None
    r0, r1 = (cw.redis + [None, None])[:2]
    if r0 is not None and r1 is not None:
        redis_cpu = tree_cpu(r0, r1).cpu_s
    cpus = [n["cpu_s"] for n in nodes if n.get("cpu_s") is not None]
    total = sum(cpus) + (redis_cpu or 0.0) if cpus else None
    counted = [n["packets_forwarded_server_count"] for n in nodes]
    forwarded = window.forwarded
    section: dict[str, Any] = {
        **cluster.describe(),
        "nodes": nodes,
        "redis": {"pid": cluster.redis.pid if cluster.redis else None,
                  "cpu_s": None if redis_cpu is None else round(redis_cpu, 3),
                  "cpu_percent": round(100 * redis_cpu / wall, 1) if redis_cpu is not None
                  and wall else None},
        "join_ms": join_split(cluster, clients, owners),
        "nodes_in_cpu": len(cpus),  # fewer than the nodes: one was killed or stopped
        "cpu_s": None if total is None else round(total, 3),
        "cpu_percent": round(100 * total / wall, 1) if total is not None and wall else None,
    }
    result["cluster"] = section
    us = round(total / forwarded * 1e6, 2) if total is not None and forwarded else None
    result["server_cpu_us_per_forwarded_packet"] = us
    result["packets_forwarded_server_count"] = None if None in counted else sum(counted)
    server = result["server"]
    server.update(cpu_s=section["cpu_s"], cpu_percent=section["cpu_percent"], pid=None,
                  nodes=len(nodes))
    if total is not None and wall:  # the nodes' split (Redis is in the total only)
        for key in ("user", "system"):
            server[f"{key}_percent"] = round(100 * sum(n.get(f"{key}_s", 0.0) for n in nodes)
                                             / wall, 1)
        server["rss_bytes"] = sum(n.get("rss_bytes", 0) for n in nodes)
        if clients:
            server["rss_per_user_bytes"] = round(server["rss_bytes"] / len(clients))
    bench = window.bench_cpu[1] - window.bench_cpu[0] if len(window.bench_cpu) == 2 else 0.0
    result["machine_load"] = other_load(window, (total or 0.0) + bench)
