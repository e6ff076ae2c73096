"""The server's memory over a long run (``--rss-every``): samples, and one growth figure.

Why: a leak in a media server shows only over time (a dict that keeps every peer ever seen,
a buffer per burst), and a 30-second run cannot tell it from start-up allocations. So a soak
samples the resident set of the server's whole process tree every few seconds (signaling,
each media worker, the warm spare: ``bench/proctree.py``) together with the load it carried,
and reduces the series to one figure:

**RSS growth** = median RSS over the *final* window / median RSS over the *baseline* window
- 1, where, for a run of duration D, the baseline window is [D/15, D/6] and the final window
is [5D/6, D]: for the 30-minute soak, minutes 2-5 against the last 5 minutes. Why these:

* the first D/15 (2 minutes) is warm-up and is left out: the rooms are joined just before it,
  and the first minutes fill what a server fills once (pre-roll buffers, the transmit arena,
  SRTP and DTLS state, caches, the allocator's free lists); that is not growth;
* medians, not single samples or means: RSS moves with the moment a sample lands (a burst of
  allocations, a collection), and a median of a few minutes is robust to one odd sample;
* windows of minutes at both ends, not "last sample / first sample": a plateau gives 0 %
  and a steady leak shows in full, whatever the sampling phase;
* scaled to D, so that a 3-minute validation run uses the same rule (12-30 s against the
  last 30 s).

A least-squares slope over every sample after warm-up (bytes per minute) is reported next to
it: a growth near zero with a clear slope means the run was too short to see a slow leak.
The same figures are given per role (signaling, media workers incl. the spare, helpers), so
that a leak is placed in its process. Pure except :class:`RssLog.sample`, which reads /proc.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .procstat import ProcStatError
from .proctree import TreeSample, process_role, sample_tree

__all__ = ["BASELINE", "FINAL", "RssLog", "growth", "rss_summary"]

#: The windows as fractions of the run (see the module docstring).
BASELINE = (1 / 15, 1 / 6)
FINAL = (5 / 6, 1.0)
#: Fewer samples than this in a window give no growth figure (too few to take a median of).
MIN_SAMPLES = 3
ROLES = ("signaling", "media worker", "helper", "child")


class RssLog:
    """RSS samples of one process tree, ``t`` in seconds from the start of the talking."""

    def __init__(self, root: int, every: float) -> None:
        self.root = root
        self.every = every
        self.samples: list[dict[str, Any]] = []
        self._previous: TreeSample | None = None
        self.errors = 0

    def sample(self, t: float, load: dict[str, Any]) -> None:
        """Read the tree now and append a sample (``load``: what the bench carried then)."""
        try:
            tree = sample_tree(self.root, time.perf_counter(),
                               self._previous.procs if self._previous else ())
        except (OSError, ProcStatError):
            self.errors += 1  # the server is gone or /proc is odd: the gap shows in the series
            return
        self._previous = tree
        by_role = dict.fromkeys(ROLES, 0)
        for proc in tree.procs:
            by_role[process_role(proc, self.root)] += proc.rss_bytes
        self.samples.append({
            "t": round(t, 2),
            "rss_bytes": tree.rss_bytes,
            "by_role": {role: rss for role, rss in by_role.items() if rss},
            "processes": {str(p.pid): p.rss_bytes for p in tree.procs},
            **load,
        })

    async def run(self, t_start: float, load: Callable[[], dict[str, Any]],
                  stop: asyncio.Event) -> None:
        """Sample at t = 0, every ``every`` s, and once more when ``stop`` is set."""
        while True:
            self.sample(time.perf_counter() - t_start, load())
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                continue
            self.sample(time.perf_counter() - t_start, load())
            return


def _window(points: Sequence[tuple[float, float]], lo: float, hi: float) -> list[float]:
    return [v for t, v in points if lo <= t <= hi]


def growth(points: Sequence[tuple[float, float]], duration: float) -> dict[str, Any]:
    """The growth figure of one series of ``(t, bytes)`` over a run of ``duration`` s."""
    base = _window(points, BASELINE[0] * duration, BASELINE[1] * duration)
    final = _window(points, FINAL[0] * duration, float("inf"))  # the sample at the end too
    after = [(t, v) for t, v in points if t >= BASELINE[0] * duration]
    out: dict[str, Any] = {
        "baseline_bytes": statistics.median(base) if base else None,
        "final_bytes": statistics.median(final) if final else None,
        "baseline_samples": len(base), "final_samples": len(final),
        "growth_ratio": None,
        "slope_bytes_per_min": _slope(after),
    }
    if len(base) >= MIN_SAMPLES and len(final) >= MIN_SAMPLES and out["baseline_bytes"]:
        out["growth_ratio"] = round(out["final_bytes"] / out["baseline_bytes"] - 1, 5)
    return out


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope in units per minute, or None for fewer than 2 distinct times."""
    if len(points) < 2:
        return None
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(60 * sum((t - mt) * (v - mv) for t, v in points) / var, 1)


def rss_summary(samples: Sequence[dict[str, Any]], duration: float, every: float,
                goal: float = 0.05) -> dict[str, Any]:
    """Every figure of the series: the tree's growth, each role's, and the samples."""
    total = growth([(s["t"], s["rss_bytes"]) for s in samples], duration)
    roles = sorted({r for s in samples for r in s["by_role"]})
    ratio = total["growth_ratio"]
    return {
        "every_s": every,
        "duration_s": duration,
        "definition": ("median RSS of the server's process tree over the last "
                       f"{(FINAL[1] - FINAL[0]) * duration:g} s against the median over "
                       f"{BASELINE[0] * duration:g}-{BASELINE[1] * duration:g} s, minus 1"),
        **total,
        "goal_ratio": goal,
        "within_goal": None if ratio is None else ratio < goal,
        "by_role": {r: growth([(s["t"], s["by_role"].get(r, 0)) for s in samples], duration)
                    for r in roles},
        "samples": list(samples),
    }
