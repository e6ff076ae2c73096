"""CPU of a whole process tree, on real processes: children, grandchildren, and processes
that start or end inside the window (no timing assertions: fixed amounts of work)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.procstat import StatFields
from bench.proctree import (
    ProcSample,
    TreeSample,
    _children_by_scan,
    children,
    process_role,
    sample_tree,
    tree_cpu,
)

#: A parent with one child that burns a fixed amount of CPU once ``go`` exists. Modes:
#: ``child``: the child exists from the start and lives on after its work; ``dies``: the
#: child exists from the start and exits after its work; ``late``: the child is started only
#: once ``go`` exists, and exits after its work. The parent reaps an exited child (so its
#: time moves into the parent's cutime), then waits until ``stop`` exists.
_PARENT = r"""
import os, subprocess, sys, time
go, stop, burn, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
wait_go = f"import os, sys, time\nwhile not os.path.exists({go!r}): time.sleep(0.01)\n"
work = "x = 0\nfor i in range(int(sys.argv[1])): x += i * i\n"
linger = "while True: time.sleep(0.05)\n" if mode == "child" else ""
if mode == "late":
    while not os.path.exists(go):
        time.sleep(0.01)
child = subprocess.Popen([sys.executable, "-c", wait_go + work + linger, str(burn)])
print(child.pid, flush=True)
if mode != "child":
    child.wait()
while not os.path.exists(stop):
    time.sleep(0.01)
if mode == "child":
    child.kill()
    child.wait()
"""


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


@pytest.fixture
def parent(tmp_path: Path):
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str, burn: int = 3_000_000) -> tuple[subprocess.Popen[str], Path, Path]:
        go, stop = tmp_path / "go", tmp_path / "stop"
        proc = subprocess.Popen([sys.executable, "-c", _PARENT, str(go), str(stop), str(burn), mode],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc, go, stop

    yield start
    (tmp_path / "stop").touch()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_tree_counts_its_child_and_the_child_shows_per_process(parent) -> None:
    proc, go, _stop = parent("child")
    child = int(proc.stdout.readline())
    s0 = sample_tree(proc.pid, time.perf_counter())
    go.touch()  # the child burns its fixed amount of work only now, inside the window
    assert s0.pids()[0] == proc.pid and child in s0.pids()
    assert child in children(proc.pid)
    assert child in _children_by_scan(proc.pid)  # the fallback finds the same child
    _wait(lambda: sample_tree(proc.pid, 0.0).procs[1].own_s - s0.procs[1].own_s >= 0.05)
    s1 = sample_tree(proc.pid, time.perf_counter(), s0.procs)
    cpu = tree_cpu(s0, s1)
    rows = {r["pid"]: r for r in cpu.processes}
    assert set(rows) == {proc.pid, child}
    assert rows[child]["lifetime"] == "whole window" and rows[child]["cpu_s"] > 0
    assert rows[child]["cpu_s"] > 0 and cpu.cpu_s >= rows[child]["cpu_s"] - 0.001  # rows are rounded
    assert cpu.ended_in_window == 0 and cpu.started_in_window == 0
    assert s1.rss_bytes > 1 << 20


def test_a_child_that_starts_and_ends_inside_the_window_is_counted(parent) -> None:
    proc, go, _stop = parent("late")
    s0 = sample_tree(proc.pid, time.perf_counter())
    assert s0.pids() == [proc.pid]
    go.touch()
    child = int(proc.stdout.readline())
    # the parent reaps the child: its CPU moves into the parent's children time
    _wait(lambda: child not in children(proc.pid) and not Path(f"/proc/{child}").exists())
    s1 = sample_tree(proc.pid, time.perf_counter(), s0.procs)
    cpu = tree_cpu(s0, s1)
    assert [r["pid"] for r in cpu.processes] == [proc.pid]
    reaped = s1.procs[0].stat.children_user_s + s1.procs[0].stat.children_system_s
    assert reaped > 0  # the child's work, found in the parent's cutime/cstime
    assert cpu.ended_in_window_cpu_s == pytest.approx(reaped, abs=0.002)  # all of it
    assert cpu.cpu_s >= reaped


def test_a_child_seen_at_the_start_that_ends_inside_the_window_is_counted(parent) -> None:
    proc, go, _stop = parent("dies")
    child = int(proc.stdout.readline())
    _wait(lambda: child in sample_tree(proc.pid, 0.0).pids())
    s0 = sample_tree(proc.pid, time.perf_counter())
    assert child in s0.pids()
    go.touch()  # the child works, exits and is reaped, all inside the window
    at_start = next(p for p in s0.procs if p.pid == child).own_s
    _wait(lambda: not Path(f"/proc/{child}").exists(), timeout=120)
    s1 = sample_tree(proc.pid, time.perf_counter(), s0.procs)
    cpu = tree_cpu(s0, s1)
    assert cpu.ended_in_window == 1
    # what the child did after s0 is in the window; what it did before s0 is not
    child_total = s1.procs[0].stat.children_user_s + s1.procs[0].stat.children_system_s
    assert child_total > at_start
    assert cpu.ended_in_window_cpu_s == pytest.approx(child_total - at_start, abs=1e-6)


def _proc(pid: int, start: int, own: float, reaped: float = 0.0, ppid: int = 1,
          cmd: str = "python") -> ProcSample:
    stat = StatFields("python", "S", ppid, own, 0.0, reaped, 0.0, start)
    return ProcSample(pid, stat, 1 << 20, cmd)


def test_a_reused_pid_is_a_new_process() -> None:
    s0 = TreeSample(0.0, 10, (_proc(10, 1, 1.0), _proc(11, 5, 2.0, ppid=10)))
    # pid 11 ended (reaped by 10: its 2.5 s moved into 10's children time), and a new
    # process got pid 11 and used 0.25 s
    s1 = TreeSample(1.0, 10, (_proc(10, 1, 1.5, reaped=2.5), _proc(11, 9, 0.25, ppid=10)))
    cpu = tree_cpu(s0, s1)
    rows = {r["pid"]: r for r in cpu.processes}
    assert rows[11]["lifetime"] == "started in window" and rows[11]["cpu_s"] == 0.25
    assert cpu.ended_in_window == 1 and cpu.started_in_window == 1
    assert cpu.cpu_s == pytest.approx(0.5 + 0.5 + 0.25)
    assert cpu.ended_in_window_cpu_s == pytest.approx(0.5)


def test_roles() -> None:
    root = _proc(10, 1, 0.0)
    worker = _proc(11, 2, 0.0, ppid=10, cmd="python -c from multiprocessing.spawn import spawn_main")
    tracker = _proc(12, 2, 0.0, ppid=10, cmd="python -c from multiprocessing.resource_tracker import main")
    assert process_role(root, 10) == "signaling"
    assert process_role(worker, 10) == "media worker"
    assert process_role(tracker, 10) == "helper"
    assert process_role(_proc(13, 2, 0.0, ppid=10, cmd="sleep 5"), 10) == "child"
    alone = TreeSample(1.0, 10, (root,))
    assert tree_cpu(alone, alone).processes[0]["role"] == "server"  # no workers: does both


def test_own_tree_and_a_gone_root() -> None:
    tree = sample_tree(os.getpid(), 0.0)
    assert tree.procs[0].pid == os.getpid() and tree.cpu_s > 0
    with pytest.raises(OSError):
        sample_tree(2**22 + 12345, 0.0)  # above the kernel's pid_max: never a process
