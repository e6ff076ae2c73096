"""One bench run: join R x U synthetic users, play a talk pattern, measure, tear down.

Timeline of a run::

    join (bounded concurrency) -> talk pattern for `duration` s -> drain -> leave
                                   |<- warmup ->|<------ steady window ------>|
                                                   (an incident, if any: flood or worker kill)

Server CPU (of the server's whole process tree), forwarded packets and the bench's own CPU
are sampled at both ends of the steady window (after the first turns have started in every
room), so joins and DTLS handshakes are not charged to forwarding (``window.py``). Forwarded
packets are counted where they arrive, at the listeners (the server's own counter from
/healthz is reported next to it when available). Packets that fell into a media outage
(``media reset`` and the re-offer after it) are reported as outage, not as loss.

(Over 400 lines because the result of a run, every figure of the JSON, is assembled here in
one place; the measurements themselves are in window.py, accounting.py and incidents.py.)
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .accounting import account_listeners, expected_ranges
from .audio import encode_loop
from .client import SyntheticClient
from .cluster import Cluster
from .clusterwatch import ClusterWindow, apply_cluster, room_owners
from .context import BenchContext
from .flood import FloodSettings
from .incidents import OfferFlood, WorkerKill
from .nodekill import NodeIncident
from .procstat import sample
from .proctree import TreeSample
from .rsslog import RssLog, rss_summary
from .scenario import Metronome, TalkSettings, Turn, rotate, stress
from .server import fetch_healthz
from .stats import percentiles
from .uplinkflood import UplinkFlood, UplinkFloodSettings
from .window import (
    GapLog,
    Window,
    bench_percent,
    cpu_self,
    other_load,
    sample_server,
    server_figures,
)

__all__ = ["RunSettings", "run_load"]

#: Consent checks per client (RFC 7675 wants one every ~5 s; the server times out at 30 s).
CONSENT_INTERVAL = 5.0


@dataclass(slots=True)
class RunSettings:
    rooms: int = 1
    users: int = 15
    duration: float = 30.0
    pattern: str = "rotate"
    sample_every: int = 50
    verify_all: bool = False
    join_concurrency: int = 8
    join_timeout: float = 15.0
    warmup: float = 1.5
    seed: int | None = None
    audio: str = "speech"
    bitrate: int = 32000
    local_host: str = "127.0.0.1"
    kernel_timestamps: bool = True
    shared_socket: bool = True
    talk: TalkSettings = field(default_factory=TalkSettings)
    #: ``--attack offer-flood``: the flood, and when it starts (s after talking starts)
    flood: FloodSettings | None = None
    attack_after: float = 5.0
    #: ``--kill-worker AFTER``: SIGKILL to a media worker AFTER s into the talking
    kill_worker_after: float | None = None
    #: ``--attack kill-node`` / ``drain-node`` (a cluster the bench started), at attack_after
    node_attack: str | None = None
    #: ``--attack uplink-flood``: the first room's floor holder floods its uplink
    uplink_flood: UplinkFloodSettings | None = None
    #: ``--rss-every S``: sample the server tree's RSS every S s through the talking (soak)
    rss_every: float | None = None
    #: ``--red``: every user offers RED (RFC 2198); talkers send RED with one redundant block
    red: bool = False


def _rss_self() -> int:
    try:
        return sample(os.getpid(), 0.0).rss_bytes
    except (OSError, ValueError):
        return 0


class _GcWatch:
    """Pauses of the bench's own cyclic garbage collector (a long one stalls every client)."""

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
            return
        pause = time.perf_counter() - self._t
        self.count += 1
        self.total_s += pause
        self.max_s = max(self.max_s, pause)


async def _join_all(
    settings: RunSettings, ctx: BenchContext, entries: list[tuple[str, str]], run_id: str,
    log: Callable[[str], None],
) -> tuple[list[list[SyntheticClient]], list[float], list[str]]:
    """Every user joins; ``entries`` are the (WebSocket URL, origin) of the nodes: user ``u``
    of room ``r`` joins through node ``(r + u) % len(entries)``, so the members of one room
    join through different nodes (most of them through one that does not own the room)."""
    rooms: list[list[SyntheticClient]] = []
    for r in range(settings.rooms):
        room = f"bench-{run_id}-{r}"
        rooms.append([SyntheticClient(ctx, room, f"bench {r}.{u}") for u in range(settings.users)])
    ctx.clients = [c for members in rooms for c in members]
    sem = asyncio.Semaphore(max(1, settings.join_concurrency))
    join_ms: list[float] = []
    failures: list[str] = []
    done = 0

    async def one(client: SyntheticClient, ws_url: str, origin: str) -> None:
        nonlocal done
        async with sem:
            try:
                join_ms.append(await client.join(ws_url, origin, settings.join_timeout))
            except Exception as exc:  # noqa: BLE001 - a failed join is a result, reported
                failures.append(f"{client.name}: {type(exc).__name__}: {exc} [{client.describe()}]")
                await client.close()
            done += 1
            if done % 50 == 0:
                log(f"joined {done}/{len(ctx.clients)}")

    await asyncio.gather(*(one(c, *entries[(r + u) % len(entries)])
                           for r, members in enumerate(rooms) for u, c in enumerate(members)))
    return rooms, join_ms, failures


async def _consent(clients: list[SyntheticClient], stop: asyncio.Event) -> None:
    """Consent checks, spread evenly so the server sees a steady trickle."""
    if not clients:
        return
    gap = CONSENT_INTERVAL / len(clients)
    i = 0
    while not stop.is_set():
        for client in clients:
            if stop.is_set():
                return
            client.send_consent()
            i += 1
            if i % 16 == 0:
                await asyncio.sleep(gap * 16)
        await asyncio.sleep(0)


async def _progress(
    clients: list[SyntheticClient], ctx: BenchContext, pid: int | None, t_start: float,
    duration: float, out: TextIO | None, stop: asyncio.Event,
) -> None:
    """One status line a second (rewritten in place on a terminal)."""
    if out is None:
        return
    tty = out.isatty()
    last_rx = 0
    last_t = time.perf_counter()
    last_cpu = cpu_self()
    last_srv = sample_server(pid)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
        now = time.perf_counter()
        rx = sum(c.monitor.packets for c in clients if c.monitor is not None)
        dt = max(1e-6, now - last_t)
        cpu = cpu_self()
        srv_text = ""
        if pid is not None and last_srv is not None:
            srv = sample_server(pid, last_srv)
            if srv is None:
                srv_text = "  server gone"
            else:
                srv_text = f"  server cpu {100 * (srv.cpu_s - last_srv.cpu_s) / dt:5.1f}%"
                if len(srv.procs) > 1:
                    srv_text += f" ({len(srv.procs)} processes)"
                last_srv = srv
        p99 = ctx.hist.percentile_ms(99)
        line = (
            f"[{now - t_start:5.1f}/{duration:.0f}s] rx {(rx - last_rx) / dt:9,.0f} pkt/s"
            f"  p99 {p99 if p99 is not None else 0:6.2f} ms{srv_text}"
            f"  bench cpu {100 * (cpu - last_cpu) / dt:5.1f}%"
        )
        if tty:
            out.write("\r" + line + "   ")
        else:
            out.write(line + "\n")
        out.flush()
        last_rx, last_t, last_cpu = rx, now, cpu
    if tty:
        out.write("\n")
        out.flush()


async def run_load(
    settings: RunSettings,
    url: str,
    server_pid: int | None = None,
    progress: TextIO | None = sys.stderr,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Run one load against the server at ``url`` (http://host:port/); return every figure.
    ``cluster``: spread the users over these nodes instead (``url`` is the first node's;
    per-node figures come from clusterwatch.py, ``server_pid`` is not used)."""
    log: Callable[[str], None] = (
        (lambda text: print(f"bench: {text}", file=progress, flush=True)) if progress else (lambda _t: None)
    )
    rng = random.Random(settings.seed)
    run_id = secrets.token_hex(3)
    frames = encode_loop(settings.audio, 2.0, settings.bitrate)
    ctx = BenchContext(
        frames,
        sample_every=1 if settings.verify_all else settings.sample_every,
        verify_rtcp=settings.verify_all,
        local_host=settings.local_host,
        kernel_timestamps=settings.kernel_timestamps,
        shared_socket=settings.shared_socket,
        # the attack keeps the server's per-address limit on: one address per user, as
        # browsers have, and the flood alone on its address
        ws_source_addresses=settings.flood is not None,
        red=settings.red,
    )
    base = url.rstrip("/")
    ws_url = ("wss://" if base.startswith("https://") else "ws://") + base.split("://", 1)[1] + "/ws"
    origin = base
    entries = [(ws_url, origin)]
    cluster_window = None
    if cluster is not None:
        entries = [(n.ws_url, n.origin) for n in cluster.nodes]
        cluster_window = ClusterWindow(cluster)
        ctx.reconnect_to = entries
        server_pid = None
    idle = sample_server(server_pid)

    t_join = time.perf_counter()
    log(f"joining {settings.rooms} room(s) x {settings.users} users ...")
    rooms, join_ms, join_failures = await _join_all(settings, ctx, entries, run_id, log)
    join_wall = time.perf_counter() - t_join
    clients = [c for members in rooms for c in members if c.monitor is not None and not c.closed]
    # Thousands of clients make a large, long-lived object graph (SSL objects, sessions):
    # freeze it so the collector's full passes do not walk it and stall every client.
    gc.collect()
    gc.freeze()
    gc_watch = _GcWatch()
    gc.callbacks.append(gc_watch)
    log(f"{len(clients)} users joined in {join_wall:.1f} s ({len(join_failures)} failed); talking")
    owners = await room_owners(cluster, [m[0].room for m in rooms if m]) if cluster else {}

    turns: list[Turn] = []
    floor_stats: dict[str, list[float]] = {}
    metronome = Metronome(rooms)
    metronome.start()
    stop = asyncio.Event()
    consent = asyncio.ensure_future(_consent(clients, stop))
    t_start = time.perf_counter()
    deadline = t_start + settings.duration
    prog = asyncio.ensure_future(
        _progress(clients, ctx, server_pid, t_start, settings.duration, progress, stop)
    )
    pattern = stress if settings.pattern == "stress" else rotate
    window = Window()
    gaps = GapLog()
    live_rooms = [[c for c in members if c.monitor is not None and not c.closed] for members in rooms]
    incident: OfferFlood | WorkerKill | UplinkFlood | NodeIncident | None = None
    if settings.uplink_flood is not None:  # the first room is the attacker's: no talk pattern
        incident = UplinkFlood(settings.uplink_flood, settings.attack_after, live_rooms[0],
                               [c for members in live_rooms[1:] for c in members], metronome,
                               gaps, url)
        live_rooms = live_rooms[1:]
    elif settings.flood is not None:
        incident = OfferFlood(settings.flood, settings.attack_after, ws_url, origin, url, run_id,
                              ctx, gaps)
    elif settings.node_attack is not None and cluster is not None:
        incident = NodeIncident(settings.node_attack, settings.attack_after, cluster, ctx)
    elif settings.kill_worker_after is not None and server_pid is not None:
        incident = WorkerKill(settings.kill_worker_after, server_pid, ctx)
    staged = None
    if isinstance(incident, UplinkFlood):
        staged = asyncio.ensure_future(incident.run(t_start, deadline))
    elif incident is not None:
        staged = asyncio.ensure_future(incident.run(t_start))
    rss_log = RssLog(server_pid, settings.rss_every) if settings.rss_every and server_pid else None
    sampler = asyncio.ensure_future(rss_log.run(
        t_start, lambda: _load_now(clients), stop)) if rss_log is not None else None

    async def measure() -> None:
        await asyncio.sleep(min(settings.warmup, settings.duration / 4))
        gaps.cut("window_start", clients)
        await window.mark(clients, None if cluster else url, server_pid)
        if cluster_window is not None:
            await cluster_window.mark(clients)
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        gaps.cut("window_end", clients)
        await window.mark(clients, None if cluster else url, server_pid)
        if cluster_window is not None:
            await cluster_window.mark(clients)

    measurer = asyncio.ensure_future(measure())
    await asyncio.gather(
        *(pattern(m, settings.talk, random.Random(rng.random()), deadline, turns, floor_stats)
          for m in live_rooms)
    )
    await measurer
    if staged is not None:
        await staged
    await asyncio.sleep(0.3)  # the last packets drain
    end_server = sample_server(server_pid, window.server[-1] if window.server else None)
    health_end = None if cluster else await fetch_healthz(url, timeout=2.0)
    stop.set()
    await metronome.stop()
    await asyncio.gather(consent, prog, *([sampler] if sampler else []), return_exceptions=True)
    bench_rss = _rss_self()

    # Leave (closing WebSockets removes peers on the server).
    sem = asyncio.Semaphore(64)

    async def leave(client: SyntheticClient) -> None:
        async with sem:
            await client.close()

    await asyncio.gather(*(leave(c) for c in ctx.clients))
    gc.callbacks.remove(gc_watch)
    gc.unfreeze()
    mux_stats = None
    if ctx.mux is not None:
        mux = ctx.mux
        mux_stats = {"port": mux.port, "datagrams": mux.datagrams, "wakeups": mux.batches,
                     "unrouted": mux.unknown, "errors": mux.errors}
        mux.close()

    result = _result(
        settings, ctx, clients, turns, floor_stats, join_ms, join_failures, join_wall,
        window, idle, end_server, health_end, bench_rss, metronome, server_pid, url, mux_stats,
        gc_watch,
    )
    result["audio_gap"] = gaps.between("window_start", "window_end")
    if cluster_window is not None:
        apply_cluster(result, cluster_window, window, owners, clients)
    if rss_log is not None:
        result["rss_over_time"] = rss_summary(rss_log.samples, settings.duration,
                                              settings.rss_every or 0.0)
    if incident is not None:
        result["incident"] = incident.report(turns)
    return result


def _load_now(clients: list[SyntheticClient]) -> dict[str, Any]:
    """What the bench carries at an RSS sample: packets received so far, users still in."""
    return {"received": sum(c.monitor.packets for c in clients if c.monitor is not None),
            "users": sum(not c.closed for c in clients), "bench_rss_bytes": _rss_self()}


def _result(
    settings: RunSettings, ctx: BenchContext, clients: list[SyntheticClient], turns: list[Turn],
    floor_stats: dict[str, list[float]], join_ms: list[float], join_failures: list[str],
    join_wall: float, window: Window, idle: TreeSample | None, end_server: TreeSample | None,
    health_end: dict[str, Any] | None, bench_rss: int, metronome: Metronome,
    server_pid: int | None, url: str, mux_stats: dict[str, int] | None, gc_watch: _GcWatch,
) -> dict[str, Any]:
    acc, worst, outages = account_listeners(clients, expected_ranges(turns))
    mons = [c.monitor for c in clients if c.monitor is not None]
    hist = ctx.hist
    wall = window.wall
    forwarded = window.forwarded
    srv_fwd = None
    if len(window.server_forwarded) == 2 and None not in window.server_forwarded:
        srv_fwd = window.server_forwarded[1] - window.server_forwarded[0]  # type: ignore[operator]
    server, us_per_packet = server_figures(window, server_pid, url, idle, end_server, len(clients))
    if health_end is not None:
        server["healthz"] = health_end
    bench_cpu = window.bench_cpu[1] - window.bench_cpu[0] if len(window.bench_cpu) == 2 else 0.0
    failures: dict[str, int] = {}
    for m in mons:
        for k, v in m.failures.items():
            failures[k] = failures.get(k, 0) + v
    received = sum(m.packets for m in mons)
    verified = sum(m.verified for m in mons)
    latency = {
        "p50": hist.percentile_ms(50), "p95": hist.percentile_ms(95),
        "p99": hist.percentile_ms(99), "p999": hist.percentile_ms(99.9),
        "max": round(hist.max_ns / 1e6, 3) if hist.count() else None,
        "n": hist.count(), "resolution_ms": hist.BUCKET_NS / 1e6,
    }
    pre = ctx.preroll_hist
    preroll_latency = {
        "p50": pre.percentile_ms(50), "p99": pre.percentile_ms(99),
        "max": round(pre.max_ns / 1e6, 3) if pre.count() else None, "n": pre.count(),
    }
    loss_ratio = acc.missing / acc.expected if acc.expected else None
    sequence = {
        "bursts": sum(m.bursts for m in mons),
        "gaps_at_talker_change": sum(m.jumps_at_switch for m in mons),
        "gaps_within_burst": sum(m.jumps_in_burst for m in mons),
        "marker_missing": sum(m.marker_missing for m in mons),
    }
    own_audio = sum(m.own_audio for m in mons)
    checks = {
        "all_joined": not join_failures,
        "turns_completed": len(turns) > 0,
        "no_loss": acc.expected > 0 and acc.missing == 0,
        "no_duplicates": acc.duplicates == 0,
        "in_order": acc.out_of_order == 0,
        "no_own_audio": own_audio == 0,
        "payload_intact": not failures and verified > 0,
        "all_verified": (not settings.verify_all) or verified == received,
        "no_sequence_gaps_at_talker_change": sequence["gaps_at_talker_change"] == 0,
        "no_unmatched_packets": sum(m.unmatched + m.malformed for m in mons) == 0,
        "no_ambiguous_matches": sum(m.ambiguous for m in mons) == 0,
    }
    result: dict[str, Any] = {
        "settings": {**asdict(settings), "sample_every_effective": ctx.sample_every},
        "server_cpu_us_per_forwarded_packet": us_per_packet,
        "latency_ms": latency,
        "preroll_latency_ms": preroll_latency,
        "loss_ratio": loss_ratio,
        "packets_forwarded": forwarded,
        "packets_forwarded_server_count": srv_fwd,
        "forwarded_packets_per_second": round(forwarded / wall) if wall else None,
        "packets_received_total": received,
        "packets_sent_total": sum(c.sent_packets for c in clients),
        "floor_access_ms": percentiles(floor_stats.get("floor_access_ms", [])),
        "queue_wait_ms": percentiles(floor_stats.get("queue_wait_ms", [])),
        "floor_denied": len(floor_stats.get("denied", [])),
        "floor_errors": len(floor_stats.get("floor_errors", [])),
        "join_ms": {**percentiles(join_ms), "failures": len(join_failures),
                    "failure_samples": join_failures[:5], "wall_s": round(join_wall, 2),
                    "concurrency": settings.join_concurrency},
        "turns": len(turns),
        "rooms": settings.rooms,
        "users_per_room": settings.users,
        "users_connected": len(clients),
        "accounting": asdict(acc),
        "outage": outages,
        "worst_listeners": worst,
        "sequence": sequence,
        "own_audio_packets": own_audio,
        "unmatched_packets": sum(m.unmatched for m in mons),
        "malformed_packets": sum(m.malformed for m in mons),
        "ambiguous_matches": sum(m.ambiguous for m in mons),
        "rtcp_received": sum(m.rtcp for m in mons),
        "rtcp_auth_failures": sum(m.rtcp_bad for m in mons),
        "verified_packets": verified,
        "verify_failures": failures,
        "server": server,
        "bench": {
            "cpu_percent": round(100 * bench_cpu / wall, 1) if wall else None,
            "user_percent": bench_percent(window, 0),
            "system_percent": bench_percent(window, 1),
            "cpu_us_per_received_packet": round(bench_cpu / forwarded * 1e6, 2) if forwarded else None,
            "rss_bytes": bench_rss,
            "metronome_late_wakeups": metronome.late_wakeups,
            "metronome_max_late_ms": round(metronome.max_late_ms, 2),
            "metronome_catch_up_frames": metronome.catch_up_frames,
            "metronome_skipped_frames": metronome.skipped_frames,
            "client_errors": sum(len(c.errors) for c in clients),
            "client_error_samples": [e for c in clients for e in c.errors][:5],
            "socket_errors": sum(c.socket_errors + c.send_errors for c in clients),
            "shared_socket": mux_stats,
            "gc_collections": gc_watch.count,
            "gc_pause_total_ms": round(gc_watch.total_s * 1000, 1),
            "gc_pause_max_ms": round(gc_watch.max_s * 1000, 2),
        },
        "window_s": round(wall, 2),
        "machine_load": other_load(window, (server.get("cpu_s") or 0.0) + bench_cpu),
        "checks": checks,
        "functional_ok": all(checks.values()),
        "latency_cdf": dict(zip(("x_ms", "y"), hist.cdf_ms(200), strict=True)),
    }
    return result
