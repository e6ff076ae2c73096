"""CPU time and memory of a process from /proc (Linux), for server-side figures.

Why /proc and not psutil: one file read per sample, no dependency, and the exact kernel
accounting (utime + stime in clock ticks) that "µs of server CPU per forwarded packet" is
defined on (docs/BENCHMARKS.md, "What the bench does"). Parsing is separate from reading so it can be tested on text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["CpuSample", "ProcStatError", "parse_stat", "parse_status_rss", "sample"]

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


def parse_stat(text: str, ticks_per_second: int = _TICKS) -> tuple[float, float]:
    """(user seconds, system seconds) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may contain spaces and parentheses,
    so fields are counted from the *last* ')' (proc(5)).
    """
    if not isinstance(text, str):
        raise ProcStatError("stat must be text")
    end = text.rfind(")")
    if end < 0:
        raise ProcStatError("no command name in /proc stat text")
    fields = text[end + 1 :].split()
    # After the name: state(3) ppid(4) ... utime(14) stime(15) -> indexes 11 and 12 here.
    if len(fields) < 13:
        raise ProcStatError("too few fields in /proc stat text")
    try:
        utime, stime = int(fields[11]), int(fields[12])
    except ValueError:
        raise ProcStatError("utime/stime are not integers") from None
    if utime < 0 or stime < 0:
        raise ProcStatError("negative CPU time")
    return utime / ticks_per_second, stime / ticks_per_second


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
