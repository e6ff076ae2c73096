"""Incidents a run can stage while its rooms talk, and what they cost the rooms.

* :class:`OfferFlood` (``--attack offer-flood``): after ``after`` seconds of normal talking,
  the signaling flood of ``flood.py`` from one address for ``seconds``. Measured for the
  rooms that talk meanwhile (none of them is attacked): the longest audio gap at any
  listener before, during and after the flood, the loss among packets sent during it, and
  how long ``/healthz`` takes to answer before and during it. "During" is the flood plus
  one second (a server that queued the offers is still busy after the last one).
* :class:`WorkerKill` (``--kill-worker AFTER``): SIGKILL to one media worker of the server
  the bench started (its busiest one: the one forwarding rooms), then, for every member of
  the rooms it carried, the time from the kill to ``media reset``, to media connected again
  on the new session, and to the first audio packet received again.

Both run as a task next to the talk pattern and are reported after it (``report``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .accounting import window_loss
from .flood import Flood, FloodSettings
from .procstat import ProcStatError
from .proctree import ProcSample, process_role, sample_process, sample_tree, tree_cpu
from .server import fetch_healthz
from .stats import percentiles
from .window import GapLog

if TYPE_CHECKING:
    from .client import SyntheticClient
    from .context import BenchContext
    from .scenario import Turn

__all__ = ["OfferFlood", "WorkerKill", "recovery"]

#: Interval between two /healthz probes (one at a time: a slow answer delays the next).
HEALTHZ_INTERVAL = 0.5
#: Longest a /healthz probe waits (probes took seconds under the flood when signaling and
#: media shared one process).
HEALTHZ_TIMEOUT = 15.0
#: "During the flood" lasts this long after the last offer.
FLOOD_TAIL = 1.0
#: How long the kill incident watches for the server to start a new worker.
RESTART_WATCH = 10.0


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.perf_counter()))


class OfferFlood:
    """The flood incident; ``await run(t_start)`` next to the talk pattern."""

    def __init__(
        self, settings: FloodSettings, after: float, ws_url: str, origin: str, url: str,
        run_id: str, ctx: BenchContext, gaps: GapLog,
    ) -> None:
        self.settings = settings
        self.after = after
        self.url = url
        self.ctx = ctx
        self.gaps = gaps
        self.flood = Flood(settings, ws_url, origin, run_id)
        self.healthz: list[tuple[float, float | None]] = []  # (s since flood start, ms | None)
        self.seqs: list[dict[int, int]] = []  # every talker's counter at flood start, at end
        self.start: float | None = None
        self.error: str | None = None

    def _clients(self) -> list[SyntheticClient]:
        return [c for c in self.ctx.clients if c.monitor is not None and not c.closed]

    async def run(self, t_start: float) -> None:
        start = t_start + self.after
        probe_stop = asyncio.Event()
        prober = asyncio.ensure_future(self._probe(t_start, start, probe_stop))
        try:
            await _sleep_until(start - 2.0)  # joining 64 members takes well under 2 s
            try:
                await self.flood.connect()
            except TimeoutError:
                self.error = "the flood's connections did not all join within 15 s"
            await _sleep_until(start)
            self.start = time.perf_counter()
            self.gaps.cut("flood_start", self._clients())
            self.seqs.append(self._all_seqs())
            await self.flood.run()
            await asyncio.sleep(FLOOD_TAIL)
            self.gaps.cut("flood_end", self._clients())
            self.seqs.append(self._all_seqs())
        finally:
            probe_stop.set()
            await prober
            await self.flood.close()

    def _all_seqs(self) -> dict[int, int]:
        return {c.ssrc: c.uplink.seq for c in self.ctx.clients if c.uplink is not None}

    async def _probe(self, t_start: float, start: float, stop: asyncio.Event) -> None:
        """/healthz, one probe at a time, from 1 s into the talking until the end."""
        await _sleep_until(t_start + 1.0)
        for _ in range(10_000):
            if stop.is_set():
                return
            t0 = time.perf_counter()
            health = await fetch_healthz(self.url, timeout=HEALTHZ_TIMEOUT)
            ms = (time.perf_counter() - t0) * 1000 if health is not None else None
            self.healthz.append((round(t0 - start, 2), None if ms is None else round(ms, 1)))
            try:
                await asyncio.wait_for(stop.wait(), HEALTHZ_INTERVAL)
            except TimeoutError:
                pass

    def report(self, turns: Sequence[Turn]) -> dict[str, Any]:
        during_end = self.settings.seconds + FLOOD_TAIL
        before = [ms for t, ms in self.healthz if t < 0 and ms is not None]
        during = [(t, ms) for t, ms in self.healthz if 0 <= t < during_end]
        loss: dict[str, Any] = {}
        if len(self.seqs) == 2:  # every client is closed by now: the run is over
            loss = window_loss(*self.seqs, turns, self.ctx.clients)
        return {
            "kind": "offer-flood",
            "after_s": self.after,
            "error": self.error,
            "flood": self.flood.report(),
            "audio_gap_before": self.gaps.between("window_start", "flood_start"),
            "audio_gap_during": self.gaps.between("flood_start", "flood_end"),
            "audio_gap_after": self.gaps.between("flood_end", "window_end"),
            "loss_during": loss,
            "healthz_ms_before": percentiles(before),
            "healthz_ms_during": {
                **percentiles([ms for _, ms in during if ms is not None]),
                "failed": sum(1 for _, ms in during if ms is None),
                "samples": during[:60],
            },
        }


class WorkerKill:
    """The worker-kill incident; ``await run(t_start)`` next to the talk pattern."""

    def __init__(self, after: float, server_pid: int, ctx: BenchContext) -> None:
        self.after = after
        self.server_pid = server_pid
        self.ctx = ctx
        self.killed: ProcSample | None = None
        self.kill_at: float | None = None  # perf_counter
        self.kill_ns: int | None = None  # the run's clock
        self.workers_before: list[dict[str, Any]] = []
        self.new_worker: dict[str, Any] | None = None
        self.error: str | None = None

    async def run(self, t_start: float) -> None:
        await _sleep_until(t_start + self.after - 0.5)
        target = await self._busiest_worker()
        if target is None:
            return
        # Only this pid, and only if it is still the process we chose, a child of our server.
        try:
            now = sample_process(target.pid)
        except (OSError, ProcStatError):
            self.error = f"media worker {target.pid} ended before the kill"
            return
        if now.key != target.key or now.stat.ppid != target.stat.ppid:
            self.error = f"pid {target.pid} is no longer the worker chosen; nothing killed"
            return
        self.kill_ns = self.ctx.clock()
        self.kill_at = time.perf_counter()
        os.kill(target.pid, signal.SIGKILL)
        self.killed = target
        await self._watch_restart(target)

    async def _busiest_worker(self) -> ProcSample | None:
        """The media worker that used the most CPU over half a second: it carries rooms."""
        try:
            s0 = sample_tree(self.server_pid, time.perf_counter())
            await asyncio.sleep(0.5)
            s1 = sample_tree(self.server_pid, time.perf_counter(), s0.procs)
        except (OSError, ProcStatError):
            self.error = "the server is gone"
            return None
        rows = [r for r in tree_cpu(s0, s1).processes if r["role"] == "media worker"]
        self.workers_before = rows
        if not rows:
            self.error = ("no media worker process in the server's process tree (is media "
                          "running in worker processes? see --server-arg)")
            return None
        # Ties (a light load over half a second rounds to whole clock ticks) go to the worker
        # with the most CPU over its life: a spare or an empty worker has almost none.
        window = {r["pid"]: float(r["cpu_s"]) for r in rows}  # type: ignore[arg-type]
        workers = [p for p in s1.procs if p.pid in window]
        return max(workers, key=lambda p: (window[p.pid], p.own_s))

    async def _watch_restart(self, killed: ProcSample) -> None:
        """Until a new media worker appears in the tree (the server restarted it), bounded."""
        assert self.kill_at is not None
        known = {int(r["pid"]) for r in self.workers_before} | {killed.pid}  # type: ignore[call-overload]
        deadline = self.kill_at + RESTART_WATCH
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            try:
                tree = sample_tree(self.server_pid, time.perf_counter())
            except (OSError, ProcStatError):
                return
            for proc in tree.procs:
                if process_role(proc, self.server_pid) == "media worker" and proc.pid not in known:
                    self.new_worker = {"pid": proc.pid,
                                       "seen_ms": round((tree.t - self.kill_at) * 1000, 1)}
                    return

    def report(self, turns: Sequence[Turn]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "kind": "kill-worker",
            "after_s": self.after,
            "error": self.error,
            "workers_before": self.workers_before,
            "killed_pid": self.killed.pid if self.killed else None,
            "new_worker": self.new_worker,
        }
        if self.kill_at is None or self.kill_ns is None:
            return base
        hit_rooms = sorted({c.room for c in self.ctx.clients if _hit(c, self.kill_at)})
        return {**base, **recovery(self.ctx, hit_rooms, turns, self.kill_at, self.kill_ns)}


def recovery(ctx: BenchContext, hit_rooms: Sequence[str], turns: Sequence[Turn], kill_at: float,
             kill_ns: int) -> dict[str, Any]:
    """For every member of ``hit_rooms``: the time from the kill to its outage, to media up
    again, and to the first audio packet again (also used for a node's kill: nodekill.py)."""
    members: list[dict[str, Any]] = []
    audio_ms: list[float] = []
    audio_unsure: list[float] = []
    for room in hit_rooms:
        in_room = [t for t in turns if t.room == room]
        for client in ctx.rooms.get(room, []):
            members.append(row := _member(client, kill_at, kill_ns))
            first = row["first_audio_ms"]
            if first is None:
                continue
            heard_at = kill_at + first / 1000
            # A talker held the floor from before the kill until this member heard audio
            # again: the figure is the recovery alone, not a pause of the talk pattern.
            held = any(t.grant_t <= kill_at and heard_at <= t.release_t and t.talker is not client
                       for t in in_room)
            (audio_ms if held else audio_unsure).append(first)
    reoffer = [m["reoffer_ms"] for m in members if m["reoffer_ms"] is not None]
    not_back = [m["name"] for m in members if m["reoffer_ms"] is None]
    listeners = sum(1 for m in members if m["first_audio_ms"] is not None)
    return {
        "affected_rooms": len(hit_rooms),
        "affected_members": len(members),
        "members_not_reconnected": not_back[:20],
        "members_not_reconnected_count": len(not_back),
        "reset_ms": percentiles([m["reset_ms"] for m in members if m["reset_ms"] is not None]),
        "reoffer_ms": percentiles(reoffer),
        # members with more than one outage, and each member's time without media in all
        "members_with_several_outages": sum(1 for m in members if m["outages"] > 1),
        "outage_ms": percentiles([m["outage_ms"] for m in members if m["outage_ms"] is not None]),
        # the headline figure: kill -9 of a worker to audio at every member
        # (docs/BENCHMARKS.md, "Killing a media worker")
        "audio_back_ms": percentiles(audio_ms),
        "audio_back_ms_floor_changed": percentiles(audio_unsure),
        "listeners_heard_again": listeners,
        "members": members[:60],
    }


def _hit(client: SyntheticClient, kill_at: float) -> bool:
    """Did the kill reach this client: a reset after it, or its media failed after it (a
    server without worker restarts)?"""
    failed_at = client.media_failed_at
    return any(r.reset_at >= kill_at for r in client.reoffers) or (
        failed_at is not None and failed_at >= kill_at
    )


def _member(client: SyntheticClient, kill_at: float, kill_ns: int) -> dict[str, Any]:
    """One member's outages after the signal. A member may have more than one (a drained
    node's own socket: its room moved, then the node closed it); an outage a new one cut
    short (``back_at`` None) ends where the next begins. ``reoffer_ms`` is media up after
    the last one; ``outage_ms`` the time without media in all of them."""
    records = [r for r in client.reoffers if r.reset_at >= kill_at]
    record = records[0] if records else None
    last = records[-1] if records else None
    outage = 0.0
    for i, r in enumerate(records):
        end = r.back_at if r.back_at is not None else (
            records[i + 1].reset_at if i + 1 < len(records) else None)
        if end is not None:
            outage += end - r.reset_at
    first_audio = None
    mon = client.monitor
    if record is not None and mon is not None:
        after = [ns for ns in mon.resumed_ns if ns > kill_ns]
        if after:  # the first packet of the new session
            first_audio = round((after[0] - kill_ns) / 1e6, 1)
    return {
        "name": client.name,
        "reset_ms": None if record is None else round((record.reset_at - kill_at) * 1000, 1),
        "reoffer_ms": (None if last is None or last.back_at is None
                       else round((last.back_at - kill_at) * 1000, 1)),
        "outages": len(records),
        "outage_ms": (round(outage * 1000, 1)
                      if last is not None and last.back_at is not None else None),
        "reoffer_attempts": sum(r.attempts for r in records),
        "reoffer_errors": [e for r in records for e in r.errors][:3],
        "first_audio_ms": first_audio,
        "media_failed": client.media_failed,
    }
