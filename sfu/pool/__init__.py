"""The media plane in worker processes: ``walkie serve`` runs media in ``--workers N`` of them.

- ``pool.py``: :class:`WorkerPool`, the asynchronous control API signaling uses: offers
  (parsed and answered here), removals, speakers, events, stats.
- ``placement.py``: which worker serves which room and peer (no I/O).
- ``supervisor.py``: starting, watching and restarting the worker processes; the spare.
- ``messages.py``: the typed messages and their framing.
- ``channel.py``: one non-blocking, framed control channel (both sides).
- ``process.py``: the parent's handle on one worker process.
- ``worker.py``: the worker process itself (``python -m sfu.pool.worker``).
"""

from .pool import RESET_REASON, PoolTuning, WorkerGone, WorkerPool, WorkerSlot

__all__ = ["RESET_REASON", "PoolTuning", "WorkerGone", "WorkerPool", "WorkerSlot"]
