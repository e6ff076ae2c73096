"""A multi-node run (``--cluster N`` or several ``--url``), and its single-node comparison.

The nodes are started (or found), identified through their /healthz, loaded by
``runner.run_load`` with the users spread over them, and stopped. ``--compare-single`` then
runs the same load against one server started the single-node way (same core, same
settings), so the report can put the two side by side as ratios measured in one session.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .cluster import Cluster
from .nodekill import NODE_ATTACKS
from .runner import RunSettings, run_load

__all__ = ["check_multi", "is_multi", "run_multi"]

T = TypeVar("T")
#: Most nodes ``--cluster`` starts (they share one core; this is a bench, not a deployment).
MAX_NODES = 16


class BenchLike(Protocol):
    args: argparse.Namespace
    pin: bool

    def settings(self, rooms: int) -> RunSettings: ...
    def floor(self) -> dict[str, Any] | None: ...
    def _pin_self(self) -> None: ...
    def restore(self) -> None: ...
    def _with_floor(self, result: dict[str, Any]) -> dict[str, Any]: ...
    def run_single(self, rooms: int) -> dict[str, Any]: ...


def is_multi(args: argparse.Namespace) -> bool:
    return bool(args.cluster) or len(args.urls) > 1


def check_multi(args: argparse.Namespace) -> str | None:
    """What is wrong with the multi-node options, if anything."""
    if args.cluster is not None and not 1 <= args.cluster <= MAX_NODES:
        return f"--cluster must be 1..{MAX_NODES}"
    if args.cluster and args.urls:
        return "--cluster starts its own nodes: give it no --url"
    if args.redis and not (len(args.urls) > 1):
        return "--redis is for several --url (with --cluster the bench starts its own Redis)"
    if len(args.server_pids) > max(1, len(args.urls)):
        return "give one --server-pid per --url, in the same order"
    if args.compare_single and not args.cluster:
        return "--compare-single needs --cluster (both runs on this machine, pinned alike)"
    if args.attack in NODE_ATTACKS and (args.cluster or 0) < 2:
        return f"--attack {args.attack} needs --cluster 2 or more (nodes the bench started)"
    if not is_multi(args):
        return None
    if args.server_pids and len(args.server_pids) != len(args.urls):
        return "give one --server-pid per --url, in the same order, or none"
    if (args.attack not in (None, *NODE_ATTACKS) or args.kill_worker is not None
            or args.rss_every is not None):
        return ("--attack, --kill-worker and --rss-every measure one server; a multi-node run "
                "takes none of them yet")
    if args.compare_single and args.find_max:
        return "--compare-single compares one load, not --find-max"
    return None


def run_multi(bench: BenchLike, rooms: int,
              run: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
    """One multi-node run (and the single-node one after it with ``--compare-single``)."""
    a = bench.args
    progress = None if a.quiet else sys.stderr
    bench.floor()  # before any server runs
    if a.cluster:
        # Spawn before pinning ourselves: a child must not inherit the client core.
        cluster = Cluster.start(a.cluster, core=a.server_core if bench.pin else None,
                                max_users=max(a.users, 1), extra_args=list(a.server_arg))
    else:
        cluster = Cluster.given(a.urls, a.server_pids, a.redis, a.redis_prefix)
    try:
        bench._pin_self()
        if progress:
            where = f" pinned to core {a.server_core}" if bench.pin and a.cluster else ""
            print(f"bench: {len(cluster.nodes)} nodes{where}: "
                  f"{', '.join(n.url for n in cluster.nodes)}; clients on core "
                  f"{a.client_core if bench.pin else 'any'}", file=progress, flush=True)
        result = run(_identified_run(bench.settings(rooms), cluster, progress))
    finally:
        cluster.stop()
    result["cluster"].update(exit_codes=cluster.exit_codes, last_output=cluster.last_output)
    result["server"]["started_by_bench"] = cluster.started_by_bench
    result["bench"]["core"] = a.client_core if bench.pin else None
    result = bench._with_floor(result)
    if a.compare_single:
        bench.restore()
        single = bench.run_single(rooms)
        result["single_node"] = _summary(single)
        result["cluster"]["versus_single"] = _ratios(result, single)
    return result


async def _identified_run(settings: RunSettings, cluster: Cluster, progress: Any) -> dict[str, Any]:
    await cluster.identify()
    return await run_load(settings, cluster.nodes[0].url, None, progress, cluster=cluster)


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    """The single-node run's figures the comparison reads (its full JSON is not repeated)."""
    srv = r["server"]
    return {
        "join_ms": r["join_ms"], "latency_ms": {k: r["latency_ms"][k] for k in ("p50", "p99", "max")},
        "loss_ratio": r["loss_ratio"], "forwarded_packets_per_second": r["forwarded_packets_per_second"],
        "server_cpu_percent": srv.get("cpu_percent"),
        "server_cpu_us_per_forwarded_packet": r["server_cpu_us_per_forwarded_packet"],
        "server_cpu_per_packet_over_floor": r.get("server_cpu_per_packet_over_floor"),
        "users_connected": r["users_connected"], "functional_ok": r["functional_ok"],
        "checks": r["checks"], "pid": srv.get("pid"),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _ratios(multi: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    """Cluster figure / single-node figure, for the figures both runs have."""
    split = multi["cluster"]["join_ms"]
    return {
        "join_p50_through_other_over_single": _ratio(split["through_other"]["p50"],
                                                      single["join_ms"]["p50"]),
        "join_p99_through_other_over_single": _ratio(split["through_other"]["p99"],
                                                      single["join_ms"]["p99"]),
        "join_p50_through_owner_over_single": _ratio(split["through_owner"]["p50"],
                                                      single["join_ms"]["p50"]),
        "cpu_per_packet_over_single": _ratio(multi["server_cpu_us_per_forwarded_packet"],
                                             single["server_cpu_us_per_forwarded_packet"]),
        "latency_p99_over_single": _ratio(multi["latency_ms"]["p99"], single["latency_ms"]["p99"]),
    }
