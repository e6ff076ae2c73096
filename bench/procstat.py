"""CPU time and memory of a process from /proc (Linux), for server-side figures.

Why /proc and not psutil: one file read per sample, no dependency, and the exact kernel
accounting (utime + stime in clock ticks) that "µs of server CPU per forwarded packet" is
defined on (docs/BENCHMARKS.md, "What the bench does"). Parsing is separate from reading so it can be tested on text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "CpuSample",
    "ProcStatError",
    "StatFields",
    "parse_stat",
    "parse_stat_fields",
    "parse_status_rss",
    "sample",
]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcStatError(ValueError):
    """/proc text that does not look like /proc/<pid>/stat or status."""


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds used by a process (user, system) and resident memory at wall time ``t``."""

    t: float
    user_s: float
    system_s: float
    rss_bytes: int

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


@dataclass(frozen=True, slots=True)
class StatFields:
    """The fields of /proc/<pid>/stat a process-tree CPU figure needs (times in seconds).

    ``children_user_s`` / ``children_system_s`` (cutime / cstime) hold the CPU of children
    this process has *waited for*: a reaped child's time moves there, which is how the CPU of
    a process that ended inside a measurement window is still found (see proctree.py).
    ``start_ticks`` (starttime, clock ticks after boot) tells a reused pid from the original.
    """

    comm: str
    state: str
    ppid: int
    user_s: float
    system_s: float
    children_user_s: float
    children_system_s: float
    start_ticks: int


def _fields(text: str) -> tuple[str, list[str]]:
    """(command name, the fields after it). The name (field 2) is in parentheses and may
    contain spaces and parentheses, so fields are counted from the *last* ')' (proc(5))."""
    if not isinstance(text, str):
        raise ProcStatError("stat must be text")
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        raise ProcStatError("no command name in /proc stat text")
    return text[start + 1 : end], text[end + 1 :].split()


def _ints(fields: list[str], indexes: tuple[int, ...]) -> list[int]:
    try:
        values = [int(fields[i]) for i in indexes]
    except ValueError:
        raise ProcStatError("a /proc stat field is not an integer") from None
    if any(v < 0 for v in values):
        raise ProcStatError("negative /proc stat field")
    return values


def parse_stat(text: str, ticks_per_second: int = _TICKS) -> tuple[float, float]:
    """(user seconds, system seconds) from the text of /proc/<pid>/stat."""
    _, fields = _fields(text)
    # After the name: state(3) ppid(4) ... utime(14) stime(15) -> indexes 11 and 12 here.
    if len(fields) < 13:
        raise ProcStatError("too few fields in /proc stat text")
    utime, stime = _ints(fields, (11, 12))
    return utime / ticks_per_second, stime / ticks_per_second


def parse_stat_fields(text: str, ticks_per_second: int = _TICKS) -> StatFields:
    """Every :class:`StatFields` field from the text of /proc/<pid>/stat."""
    comm, fields = _fields(text)
    # state(3)=0 ppid(4)=1 utime(14)=11 stime(15)=12 cutime(16)=13 cstime(17)=14 starttime(22)=19
    if len(fields) < 20:
        raise ProcStatError("too few fields in /proc stat text")
    ppid, utime, stime, cutime, cstime, start = _ints(fields, (1, 11, 12, 13, 14, 19))
    hz = ticks_per_second
    return StatFields(comm, fields[0], ppid, utime / hz, stime / hz, cutime / hz, cstime / hz, start)


def parse_status_rss(text: str) -> int:
    """Resident set size in bytes from the text of /proc/<pid>/status (VmRSS line)."""
    if not isinstance(text, str):
        raise ProcStatError("status must be text")
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit() and parts[1].isascii():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                scale = {"kb": 1024, "mb": 1024 * 1024, "b": 1}.get(unit)
                if scale is None:
                    raise ProcStatError(f"unknown VmRSS unit {unit!r}")
                return int(parts[1]) * scale
            raise ProcStatError("malformed VmRSS line")
    raise ProcStatError("no VmRSS line (kernel thread or zombie?)")


def sample(pid: int, now: float) -> CpuSample:
    """Read one CpuSample of ``pid``; OSError if the process is gone."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        user, system = parse_stat(f.read())
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
        rss = parse_status_rss(f.read())
    return CpuSample(now, user, system, rss)
