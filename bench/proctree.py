"""CPU time of a whole process tree (a server and every process it started), from /proc.

Why a tree: ``walkie serve`` runs signaling in one process and media in worker processes, its
children (and multiprocessing adds a helper or two). "Server CPU per forwarded packet" has to
count all of them, or moving work into a worker would look like a saving.

How a window [t0, t1] is counted honestly, with one :class:`TreeSample` at each end:

* every process of the tree is read at both ends; a process is identified by its pid *and*
  its start time, so a reused pid is never taken for the process it replaced;
* ``total_s`` of a process is its own CPU plus the CPU of the children it has reaped
  (cutime/cstime: the kernel moves a child's whole CPU there when the parent waits for it).
  The tree's CPU at an instant is the sum of ``total_s`` over its live (or zombie) members,
  so the window's CPU is that sum at t1 minus that sum at t0. A process that ended inside
  the window is then counted through the parent that reaped it, including its last moments;
  a process that started inside the window is counted whole (all its CPU is in the window);
* a process seen at t0 that has since left the tree (reparented: its parent died) is still
  read at t1 by its pid, so its CPU is neither lost nor subtracted;
* per process, :func:`tree_cpu` reports each live member's own CPU in the window and puts
  what ended inside the window (and was reaped) in one ``ended_in_window_cpu_s`` figure: the
  kernel keeps that time per parent, not per child.

One case stays invisible: a process reparented out of the tree that then ended (init reaps
it, so its time is nowhere in the tree); ``ended_in_window_cpu_s`` then comes out negative,
which the report shows rather than hides.

Children are listed from /proc/<pid>/task/<tid>/children (each thread's children), or, on a
kernel without that file, by scanning every /proc/<pid>/stat for the parent pid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .procstat import ProcStatError, StatFields, parse_stat_fields, parse_status_rss

__all__ = [
    "ProcSample",
    "TreeCpu",
    "TreeSample",
    "children",
    "process_role",
    "sample_process",
    "sample_tree",
    "tree_cpu",
]

#: Processes read per tree sample at most (a runaway fork bomb must not stall the bench).
MAX_PROCESSES = 512


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One process at one instant."""

    pid: int
    stat: StatFields
    rss_bytes: int  # 0 for a zombie (it has no memory left)
    cmdline: str

    @property
    def key(self) -> tuple[int, int]:
        """(pid, start time): unique over the machine's uptime, unlike the pid alone."""
        return self.pid, self.stat.start_ticks

    @property
    def own_s(self) -> float:
        return self.stat.user_s + self.stat.system_s

    @property
    def total_s(self) -> float:
        """Own CPU plus the CPU of every child this process has reaped."""
        return self.own_s + self.stat.children_user_s + self.stat.children_system_s


@dataclass(frozen=True, slots=True)
class TreeSample:
    """Every process of a tree at wall time ``t`` (the root first)."""

    t: float
    root: int
    procs: tuple[ProcSample, ...]

    @property
    def cpu_s(self) -> float:
        return sum(p.total_s for p in self.procs)

    @property
    def user_s(self) -> float:
        return sum(p.stat.user_s + p.stat.children_user_s for p in self.procs)

    @property
    def system_s(self) -> float:
        return sum(p.stat.system_s + p.stat.children_system_s for p in self.procs)

    @property
    def rss_bytes(self) -> int:
        """Sum of the members' resident sets (pages shared between them count once each)."""
        return sum(p.rss_bytes for p in self.procs)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


@dataclass(frozen=True, slots=True)
class TreeCpu:
    """CPU of a tree over a window (see the module docstring for the rules)."""

    wall_s: float
    cpu_s: float
    user_s: float
    system_s: float
    #: one entry per process alive at t1: pid, role, own CPU in the window, how long it lived
    processes: list[dict[str, object]]
    #: CPU of processes that ended inside the window (found in their parents' reaped time)
    ended_in_window_cpu_s: float
    ended_in_window: int
    started_in_window: int


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def sample_process(pid: int) -> ProcSample:
    """Read one process; OSError if it is gone, ProcStatError if /proc looks wrong."""
    stat = parse_stat_fields(_read(f"/proc/{pid}/stat"))
    try:
        rss = parse_status_rss(_read(f"/proc/{pid}/status"))
    except ProcStatError:  # a zombie has no VmRSS line
        rss = 0
    try:
        cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()[:300]
    except OSError:
        cmdline = ""
    return ProcSample(pid, stat, rss, cmdline)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty if it is gone)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    listed = False
    for tid in tids:
        try:
            text = _read(f"/proc/{pid}/task/{tid}/children")
        except FileNotFoundError:
            continue  # the thread ended, or the kernel has no children file
        except OSError:
            continue
        listed = True
        found.extend(int(c) for c in text.split() if c.isdigit())
    if listed:
        return found
    return _children_by_scan(pid)


def _children_by_scan(pid: int) -> list[int]:
    """Fallback without /proc/<pid>/task/<tid>/children: every process whose ppid is ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if parse_stat_fields(_read(f"/proc/{name}/stat")).ppid == pid:
                found.append(int(name))
        except (OSError, ProcStatError):
            continue
    return found


def sample_tree(root: int, now: float, also: tuple[ProcSample, ...] = ()) -> TreeSample:
    """The root and all its descendants at ``now``; OSError if the root is gone.

    ``also``: processes of an earlier sample to read again even if they are no longer
    descendants (reparented after their parent died), so that a window keeps them.
    """
    first = sample_process(root)
    procs = [first]
    seen = {root}
    queue = children(root)
    while queue and len(procs) < MAX_PROCESSES:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        try:
            procs.append(sample_process(pid))
        except (OSError, ProcStatError):
            continue  # ended between the listing and the read
        queue.extend(children(pid))
    for old in also:
        if old.pid in seen:
            continue
        try:
            again = sample_process(old.pid)
        except (OSError, ProcStatError):
            continue
        if again.key == old.key:
            seen.add(old.pid)
            procs.append(again)
    return TreeSample(now, root, tuple(procs))


def process_role(proc: ProcSample, root: int) -> str:
    """``signaling`` (the server process itself), ``media worker``, ``helper`` or ``child``.

    Workers are recognised by multiprocessing's spawn command line; the resource tracker and
    fork server are helpers. When the root has no worker children it does both jobs: the
    report then calls it ``server`` (see :func:`tree_cpu`).
    """
    if proc.pid == root:
        return "signaling"
    cmd = proc.cmdline
    if "resource_tracker" in cmd or "forkserver" in cmd:
        return "helper"
    if "spawn_main" in cmd or "sfu" in cmd:
        return "media worker"
    return "child"


def tree_cpu(s0: TreeSample, s1: TreeSample) -> TreeCpu:
    """The tree's CPU between two samples, in total and per process alive at ``s1``."""
    wall = max(0.0, s1.t - s0.t)
    before = {p.key: p for p in s0.procs}
    after = {p.key for p in s1.procs}
    rows: list[dict[str, object]] = []
    own_total = 0.0
    started = 0
    # A zombie (ended, not yet reaped) has no command line left: keep the role it had.
    roles = {p.pid: process_role(before.get(p.key, p) if not p.cmdline else p, s1.root)
             for p in s1.procs}
    has_workers = any(r == "media worker" for r in roles.values())
    for p in s1.procs:
        old = before.get(p.key)
        if old is None:  # started inside the window: all of it is in the window
            started += 1
            own, user, system = p.own_s, p.stat.user_s, p.stat.system_s
            lifetime = "started in window"
        else:
            own = p.own_s - old.own_s
            user, system = p.stat.user_s - old.stat.user_s, p.stat.system_s - old.stat.system_s
            lifetime = "whole window"
        own_total += own
        role = roles[p.pid]
        if role == "signaling" and not has_workers:
            role = "server"
        rows.append({
            "pid": p.pid,
            "ppid": p.stat.ppid,
            "role": role,
            "comm": p.stat.comm,
            "state": p.stat.state,
            "lifetime": lifetime,
            "cpu_s": round(own, 3),
            "cpu_percent": round(100 * own / wall, 1) if wall else None,
            "user_percent": round(100 * user / wall, 1) if wall else None,
            "system_percent": round(100 * system / wall, 1) if wall else None,
            "rss_bytes": p.rss_bytes,
        })
    cpu = s1.cpu_s - s0.cpu_s
    ended = sum(1 for key in before if key not in after)
    return TreeCpu(
        wall_s=wall,
        cpu_s=cpu,
        user_s=s1.user_s - s0.user_s,
        system_s=s1.system_s - s0.system_s,
        processes=rows,
        ended_in_window_cpu_s=round(cpu - own_total, 3),
        ended_in_window=ended,
        started_in_window=started,
    )
