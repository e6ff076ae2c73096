"""The measurement window of a run: what is sampled at its ends, and the figures from it.

Server CPU is the CPU of the server's whole process tree (``proctree.py``: signaling and
every media worker), sampled at both ends of the steady window together with the packets
the listeners received, the bench's own CPU and the machine's busy time (so that load from
other processes shows up as such). Audio gaps are cut into stretches (:class:`GapLog`) so that
one run can report the longest gap before, during and after an incident as well as over the
whole window.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .procstat import ProcStatError
from .proctree import TreeSample, sample_tree, tree_cpu
from .server import fetch_healthz

if TYPE_CHECKING:
    from .client import SyntheticClient

__all__ = ["GapLog", "Window", "cpu_self", "other_load", "sample_server", "server_figures"]


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_self_split() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _machine_busy() -> tuple[float, float]:
    """(busy seconds over all CPUs, steal seconds) from /proc/stat: with our own processes
    subtracted, what is left is other load that disturbs the measurement."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0, 0.0
    if len(fields) < 9 or fields[0] != "cpu":
        return 0.0, 0.0
    ticks = [int(v) for v in fields[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def sample_server(pid: int | None, previous: TreeSample | None = None) -> TreeSample | None:
    """The server's process tree now (None without a pid, or if the server is gone).
    ``previous``: keep reading its processes even if they left the tree (see proctree)."""
    if pid is None:
        return None
    try:
        return sample_tree(pid, time.perf_counter(), previous.procs if previous else ())
    except (OSError, ProcStatError):
        return None


class Window:
    """Counters at the start and end of the steady window."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.server: list[TreeSample | None] = []
        self.bench_cpu: list[float] = []
        self.bench_split: list[tuple[float, float]] = []
        self.machine: list[tuple[float, float]] = []
        self.received: list[int] = []
        self.server_forwarded: list[int | None] = []

    async def mark(self, clients: Sequence[SyntheticClient], url: str | None, pid: int | None) -> None:
        previous = self.server[-1] if self.server else None
        server = sample_server(pid, previous)
        self.t.append(server.t if server is not None else time.perf_counter())
        self.server.append(server)
        self.bench_cpu.append(cpu_self())
        self.bench_split.append(_cpu_self_split())
        self.machine.append(_machine_busy())
        self.received.append(sum(c.monitor.packets for c in clients if c.monitor is not None))
        forwarded = None
        if url is not None:
            health = await fetch_healthz(url, timeout=2.0)
            media = (health or {}).get("media")
            if isinstance(media, dict) and isinstance(media.get("packets_forwarded"), int):
                forwarded = media["packets_forwarded"]
        self.server_forwarded.append(forwarded)

    @property
    def wall(self) -> float:
        return self.t[1] - self.t[0] if len(self.t) == 2 else 0.0

    @property
    def forwarded(self) -> int:
        return self.received[1] - self.received[0] if len(self.received) == 2 else 0


def server_figures(
    window: Window, pid: int | None, url: str, idle: TreeSample | None, end: TreeSample | None,
    users: int,
) -> tuple[dict[str, Any], float | None]:
    """(the report's ``server`` section, µs of server CPU per forwarded packet)."""
    server: dict[str, Any] = {"pid": pid, "url": url}
    wall = window.wall
    forwarded = window.forwarded
    us_per_packet = None
    s0, s1 = (window.server + [None, None])[:2]
    if s0 is not None and s1 is not None:
        cpu = tree_cpu(s0, s1)
        us_per_packet = round(cpu.cpu_s / forwarded * 1e6, 2) if forwarded else None
        server.update(
            cpu_s=round(cpu.cpu_s, 3),
            cpu_percent=round(100 * cpu.cpu_s / wall, 1) if wall else None,
            user_percent=round(100 * cpu.user_s / wall, 1) if wall else None,
            system_percent=round(100 * cpu.system_s / wall, 1) if wall else None,
            rss_bytes=s1.rss_bytes,
            processes=cpu.processes,
            ended_in_window_cpu_s=cpu.ended_in_window_cpu_s,
            processes_ended_in_window=cpu.ended_in_window,
            processes_started_in_window=cpu.started_in_window,
        )
        for row in cpu.processes:
            if forwarded and isinstance(row["cpu_s"], float):
                row["us_per_forwarded_packet"] = round(row["cpu_s"] / forwarded * 1e6, 2)
    if idle is not None:
        server["rss_idle_bytes"] = idle.rss_bytes
    if end is not None:
        server["rss_bytes"] = end.rss_bytes
        server["pids_at_end"] = end.pids()
    if users and "rss_bytes" in server:
        server["rss_per_user_bytes"] = round(server["rss_bytes"] / users)
        if idle is not None:
            server["rss_added_per_user_bytes"] = round((server["rss_bytes"] - idle.rss_bytes) / users)
    return server, us_per_packet


def bench_percent(window: Window, i: int) -> float | None:
    """The bench's user (i=0) or system (i=1) CPU over the window, in % of one core."""
    pairs, wall = window.bench_split, window.wall
    if len(pairs) != 2 or not wall:
        return None
    return round(100 * (pairs[1][i] - pairs[0][i]) / wall, 1)


def other_load(window: Window, ours_cpu: float) -> dict[str, Any]:
    """CPU used on the machine by processes other than the server tree and the bench."""
    wall = window.wall
    if len(window.machine) != 2 or not wall:
        return {}
    busy = window.machine[1][0] - window.machine[0][0]
    steal = window.machine[1][1] - window.machine[0][1]
    other = busy - ours_cpu
    return {
        "machine_busy_percent": round(100 * busy / wall, 1),
        "other_processes_cpu_percent": round(max(0.0, 100 * other / wall), 1),
        "steal_percent": round(100 * steal / wall, 1),
        "loadavg_end": list(os.getloadavg()),
    }


class GapLog:
    """The longest audio gap at any listener, per stretch of a run.

    ``cut(label)`` ends the current stretch: it takes (and resets) every listener's longest
    gap since the previous cut. A window between two cuts is the stretches in between.
    """

    def __init__(self) -> None:
        self.stretches: list[dict[str, Any]] = []

    def cut(self, label: str, clients: Sequence[SyntheticClient]) -> None:
        worst_ns, worst_name, worst_at, long_gaps = 0, None, 0, 0
        for client in clients:
            mon = client.monitor
            if mon is None:
                continue
            gap, at, long = mon.take_gaps()
            long_gaps += long
            if gap > worst_ns:
                worst_ns, worst_name, worst_at = gap, client.name, at
        self.stretches.append({"until": label, "t": time.perf_counter(), "max_ns": worst_ns,
                               "listener": worst_name, "at_ns": worst_at, "long_gaps": long_gaps})

    def between(self, start: str, end: str) -> dict[str, Any] | None:
        """The longest gap after cut ``start`` up to cut ``end``; None if either is missing."""
        labels = [s["until"] for s in self.stretches]
        if start not in labels or end not in labels:
            return None
        i, j = labels.index(start), labels.index(end)
        part = self.stretches[i + 1 : j + 1]
        worst = max(part, key=lambda s: s["max_ns"], default=None)
        if worst is None or not worst["max_ns"]:
            return {"max_ms": None, "listener": None, "long_gaps": 0,
                    "window_s": round(self.stretches[j]["t"] - self.stretches[i]["t"], 2)}
        return {
            "max_ms": round(worst["max_ns"] / 1e6, 2),
            "listener": worst["listener"],
            "long_gaps": sum(s["long_gaps"] for s in part),
            "window_s": round(self.stretches[j]["t"] - self.stretches[i]["t"], 2),
        }
