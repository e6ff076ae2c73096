"""Many walkie nodes behind one URL, coordinated through Redis (docs/CLUSTER.md).

Used only by ``walkie serve --redis``; a single node never imports ``redis`` (store.py
imports it when it connects). Modules, one concern each:

- ``model``: node and room records, and the strict reading of them back from Redis (pure)
- ``placement``: which live node a new room goes to (pure)
- ``store``: ``RedisStore``, the shared state in Redis (its keys, the heartbeat)
- ``scripts``: the Lua scripts that change room records atomically
"""

from __future__ import annotations

from .model import (ClusterDataError, ClusterError, ClusterUnavailable, NodeInfo, NodeLoad,
                    NoNodeAvailable, RoomRecord, new_node_id)
from .placement import choose_node
from .store import RedisStore

__all__ = ["ClusterDataError", "ClusterError", "ClusterUnavailable", "NoNodeAvailable",
           "NodeInfo", "NodeLoad", "RedisStore", "RoomRecord", "choose_node", "new_node_id"]
