"""A node of a cluster the bench started dies or drains while its rooms talk.

* ``--attack kill-node``: ``after`` seconds into the talking, the node owning the most
  rooms (read from Redis then) gets SIGKILL, and so does every process of its tree (its
  media workers), each by its PID: a machine that dies takes its workers with it.
* ``--attack drain-node``: the same node gets SIGTERM (``walkie serve``'s stop, which a node
  of a cluster turns into a drain; docs/CLUSTER.md).

Measured for every member of the rooms that node owned (``incidents.recovery``): the time
from the signal to its media outage, to media up again (re-offer on the same WebSocket, or
a reconnect through another node: the bench's users do what the page does, with no
action), and to its first audio packet; whether every member got back into its room; which
node owns each room afterwards. For a drain, also per moved room: whether its members'
outage began while a talker held the floor (a drain should wait for the floor to be idle)
and each member's outage (media down to media up).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .clusterwatch import room_owners
from .incidents import recovery
from .procstat import ProcStatError
from .proctree import sample_process, sample_tree
from .stats import percentiles

if TYPE_CHECKING:
    from .cluster import Cluster
    from .context import BenchContext
    from .scenario import Turn

__all__ = ["NODE_ATTACKS", "NodeIncident"]

NODE_ATTACKS = ("kill-node", "drain-node")
#: How long after the signal the incident waits before reading the rooms' new owners.
SETTLE = 8.0


class NodeIncident:
    """``await run(t_start)`` next to the talk pattern; ``report(turns)`` after it."""

    def __init__(self, kind: str, after: float, cluster: Cluster, ctx: BenchContext) -> None:
        assert kind in NODE_ATTACKS
        self.kind = kind
        self.after = after
        self.cluster = cluster
        self.ctx = ctx
        self.node: int | None = None
        self.rooms: list[str] = []
        self.owners_before: dict[str, int | None] = {}
        self.owners_after: dict[str, int | None] = {}
        self.killed_pids: list[int] = []
        self.at: float | None = None  # perf_counter of the signal
        self.at_ns: int | None = None  # the run's clock
        self.error: str | None = None

    async def run(self, t_start: float) -> None:
        await asyncio.sleep(max(0.0, t_start + self.after - time.perf_counter()))
        rooms = sorted(self.ctx.rooms)
        self.owners_before = await room_owners(self.cluster, rooms)
        counts = [sum(1 for o in self.owners_before.values() if o == i)
                  for i in range(len(self.cluster.nodes))]
        if not counts or max(counts) == 0:
            self.error = "no node owns a room (owners unknown)"
            return
        self.node = counts.index(max(counts))
        self.rooms = [r for r, o in self.owners_before.items() if o == self.node]
        node = self.cluster.nodes[self.node]
        if node.process is None or node.process.proc.poll() is not None:
            self.error = f"node {node.node_id} is not a running process the bench started"
            return
        if self.kind == "kill-node":
            self._kill_tree(node.process.pid)
        else:
            self.at, self.at_ns = time.perf_counter(), self.ctx.clock()
            os.kill(node.process.pid, signal.SIGTERM)
        await asyncio.sleep(SETTLE)
        self.owners_after = await room_owners(self.cluster, self.rooms)

    def _kill_tree(self, root: int) -> None:
        """SIGKILL the node and then each process of its tree, by PID, each only if it is
        still the process sampled a moment before (same start time)."""
        try:
            tree = sample_tree(root, time.perf_counter())
        except (OSError, ProcStatError):
            self.error = "the node is gone"
            return
        self.at, self.at_ns = time.perf_counter(), self.ctx.clock()
        for proc in tree.procs:  # the root first: nothing restarts a worker after it
            try:
                if sample_process(proc.pid).key != proc.key:
                    continue
                os.kill(proc.pid, signal.SIGKILL)
            except (OSError, ProcStatError):
                continue
            self.killed_pids.append(proc.pid)

    def report(self, turns: Sequence[Turn]) -> dict[str, Any]:
        node = self.cluster.nodes[self.node] if self.node is not None else None
        ids = [n.node_id for n in self.cluster.nodes]
        base: dict[str, Any] = {
            "kind": self.kind, "after_s": self.after, "error": self.error,
            "node": node.node_id if node else None,
            "killed_pids": self.killed_pids,
            "rooms": len(self.rooms),
            "owners_after": {r: (ids[o] if o is not None else None)
                             for r, o in self.owners_after.items()},
        }
        if self.at is None or self.at_ns is None:
            return base
        result = {**base, **recovery(self.ctx, self.rooms, turns, self.at, self.at_ns)}
        result["all_back_in_their_rooms"] = (result["affected_members"] > 0
                                             and result["members_not_reconnected_count"] == 0)
        result["rooms_on_live_nodes"] = (bool(self.owners_after) and all(
            o is not None and o != self.node for o in self.owners_after.values()))
        if self.kind == "drain-node":
            result["moves"] = [self._move(room) for room in self.rooms]
        return result

    def _move(self, room: str) -> dict[str, Any]:
        """One drained room: when its outage began, whether the floor was busy then, and
        each member's media down -> up."""
        assert self.at is not None
        outages = [r for c in self.ctx.rooms.get(room, []) for r in c.reoffers
                   if r.reset_at >= self.at]
        if not outages:
            return {"room": room, "moved": False}
        first = min(outages, key=lambda r: r.reset_at)
        down = [(r.back_at - r.reset_at) * 1000 for r in outages if r.back_at is not None]
        return {"room": room, "moved": True,
                "began_after_signal_ms": round((first.reset_at - self.at) * 1000, 1),
                "floor_busy_when_it_began": first.floor_busy,
                "member_outage_ms": percentiles(down)}
