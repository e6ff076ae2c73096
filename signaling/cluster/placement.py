"""Which node a new room goes to. Pure: the live nodes and their load in, a node id out.

The rule: among the nodes that are live (the caller passes only those), not draining, and
below their room capacity, the one with the smallest share of its capacity in use; then the
fewest members, then the least CPU; ties by id, so that every node that reads the same
records picks the same node. A race between nodes that read different records is settled
by the atomic claim in Redis (store.py), not here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from .model import NodeInfo, NodeLoad

__all__ = ["choose_node"]


def choose_node(nodes: Iterable[tuple[NodeInfo, NodeLoad]],
                exclude: Collection[str] = ()) -> str | None:
    """The id of the node a new room should go to, or None when no node can take one.

    ``nodes``: live nodes with their load (``RedisStore.nodes()``); ``exclude``: ids not to
    pick (a node that failed to take the room, or the draining node itself).
    """
    best: tuple[float, int, float, str] | None = None
    for info, load in nodes:
        if info.draining or info.id in exclude or not load.has_room:
            continue
        key = (load.rooms / load.capacity_rooms, load.members, load.cpu_percent, info.id)
        if best is None or key < best:
            best = key
    return None if best is None else best[3]
