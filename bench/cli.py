"""``walkie bench`` / ``python -m bench``: the command line of the load benchmark.

(Over 400 lines because every option, its validation and the find-max search are in one
place; what a run does is in runner.py.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from .clusterreport import format_cluster
from .clusterrun import check_multi, is_multi, run_multi
from .nodekill import NODE_ATTACKS
from .flood import DEFAULT_OFFER_BYTES, FloodSettings
from .probes import PROBES, ProbeSettings, run_probe
from .report import (client_bound, format_find_max, format_table, plot_find_max, plot_rss,
                     plot_run)
from .runner import RunSettings, run_load
from .scenario import TalkSettings
from .sendfloor import FloorError, median_floor
from .server import ServerError, ServerProcess
from .uplinkflood import UplinkFloodSettings

__all__ = ["build_parser", "main"]

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="walkie bench",
        description="Load-test walkie with synthetic WebRTC push-to-talk users (real signaling, "
                    "ICE, DTLS, SRTP and Opus). Starts its own server pinned to one core unless "
                    "--url is given; the clients run pinned to another core.",
    )
    p.add_argument("--rooms", type=int, default=None,
                   help="rooms (default 1; with --find-max: the first step, default 10)")
    p.add_argument("--users", type=int, default=15, help="users per room (default 15)")
    p.add_argument("--duration", type=float, default=30.0,
                   help="seconds of talking per run or find-max step (default 30)")
    p.add_argument("--pattern", choices=["rotate", "stress"], default="rotate",
                   help="rotate: PTT turns rotating through the room (default); stress: "
                        "several members press at once")
    p.add_argument("--pressers", type=int, default=3,
                   help="members pressing at once in the stress pattern (default 3)")
    p.add_argument("--talk", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
                   help="talk burst length range in seconds (default 2 5)")
    p.add_argument("--url", action="append", default=[], metavar="URL",
                   help="target a running server (http://host:port/) instead of starting one; "
                        "repeat it for the nodes of a cluster (users are spread over them)")
    p.add_argument("--server-pid", type=int, action="append", default=[], metavar="PID",
                   help="with --url: the server's pid, for its CPU and memory figures (one "
                        "per --url, in the same order)")
    p.add_argument("--cluster", type=int, default=None, metavar="N",
                   help="start a redis-server and N walkie nodes (walkie serve --redis) on "
                        "loopback, all pinned to --server-core, and spread every room's "
                        "members over them round robin (docs/BENCHMARKS.md, \"Several nodes\")")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="with several --url: the cluster's Redis, to read which node owns "
                        "each room (join time through the owner vs through another node)")
    p.add_argument("--redis-prefix", default="walkie:", metavar="PREFIX",
                   help="with --redis: the cluster's key prefix (default walkie:)")
    p.add_argument("--compare-single", action="store_true",
                   help="with --cluster: run the same load against one server afterwards and "
                        "report the cluster's figures as ratios to it")
    p.add_argument("--server-core", type=int, default=0,
                   help="core the started server is pinned to (default 0)")
    p.add_argument("--client-core", type=int, default=1,
                   help="core the bench pins itself to (default 1)")
    p.add_argument("--no-pin", action="store_true", help="pin neither server nor clients")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the started server (repeatable)")
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE",
                   help="write every figure and the settings to FILE")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="PNG: latency CDF (and CPU / p99 vs rooms with --find-max)")
    p.add_argument("--find-max", action="store_true",
                   help="ramp rooms until p99 latency or loss exceeds its bound")
    p.add_argument("--latency-bound-ms", type=float, default=10.0,
                   help="find-max p99 added-latency bound (default 10 ms)")
    p.add_argument("--loss-bound", type=float, default=0.001,
                   help="find-max loss bound as a ratio (default 0.001 = 0.1 %%)")
    p.add_argument("--step", type=int, default=0,
                   help="find-max: rooms added per step (default 0 = grow by half each step)")
    p.add_argument("--max-rooms", type=int, default=400, help="find-max: stop here (default 400)")
    p.add_argument("--refine", type=int, default=2,
                   help="find-max: bisection runs between the last pass and the first failure "
                        "(default 2)")
    p.add_argument("--sample-every", type=int, default=50,
                   help="fully decrypt and check 1 packet in N per listener (default 50)")
    p.add_argument("--verify-all", action="store_true",
                   help="decrypt and check every packet (functional mode; more bench CPU)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every functional check passed (CI)")
    p.add_argument("--user-timestamps", action="store_true",
                   help="time arrivals when the bench reads them, not with the kernel's "
                        "receive timestamps (then bench-side queueing counts as latency)")
    p.add_argument("--socket-per-user", action="store_true",
                   help="one UDP socket per user instead of one shared socket with a loopback "
                        "address per user (costs the bench ~2-3x more CPU per packet)")
    p.add_argument("--join-concurrency", type=int, default=8,
                   help="users joining at the same time (default 8)")
    p.add_argument("--audio", choices=["speech", "tone"], default="speech",
                   help="synthetic source encoded once with Opus (default speech-like noise)")
    p.add_argument("--red", action="store_true",
                   help="every user offers RED (RFC 2198) and talkers send each Opus frame "
                        "with the previous one as a redundant block, as Chromium does; the "
                        "server must accept RED (listeners check they get it byte for byte)")
    p.add_argument("--seed", type=int, default=None, help="random seed for the talk pattern")
    p.add_argument("--floor-seconds", type=float, default=1.5,
                   help="measure this machine's floor (CPU per send() of a 100-byte datagram, "
                        "sender on the server's core) over this long (median of 3) before the first run, and "
                        "report server CPU per packet as a multiple of it (default 1.5; 0 = "
                        "skip)")
    p.add_argument("--attack", choices=["offer-flood", "uplink-flood", *PROBES, *NODE_ATTACKS],
                   default=None,
                   help="stage an attack while the rooms talk: offer-flood = WebSockets from "
                        "one address (at the per-address limit), each sending invalid offers "
                        "as large as the server parses at the per-connection message rate; "
                        "reports the talking rooms' longest audio gap, loss and /healthz "
                        "latency before and during. Or probe signaling alone (no rooms talk): "
                        "join-sweep = joins/s --flood-connections sockets from one address "
                        "get; password-guess = wrong passwords/s the server evaluates for one "
                        "address, and a legitimate password join's time meanwhile. uplink-flood = "
                        "the first room's floor holder floods its SRTP uplink "
                        "(--uplink-flood-rate); reports the packets/s each of its listeners "
                        "received and the other rooms' longest audio gap and loss. With --cluster: "
                        "kill-node = SIGKILL to the node owning the most rooms (and its "
                        "workers), drain-node = SIGTERM to it; reports when every member of "
                        "its rooms had media and audio again")
    p.add_argument("--attack-after", type=float, default=5.0, metavar="S",
                   help="the attack starts S seconds after talking starts (default 5)")
    p.add_argument("--attack-seconds", type=float, default=10.0, metavar="S",
                   help="the attack lasts S seconds (default 10)")
    p.add_argument("--flood-connections", type=int, default=64,
                   help="WebSockets of the flood, all from one address (default 64, the "
                        "server's default per-address limit)")
    p.add_argument("--flood-rate", type=float, default=20.0,
                   help="offers per second per flood connection (default 20, the server's "
                        "per-connection message rate)")
    p.add_argument("--flood-offer-bytes", type=int, default=DEFAULT_OFFER_BYTES,
                   help=f"size of each flood offer message (default {DEFAULT_OFFER_BYTES}: the "
                        "server parses offers up to 32 KiB; a message may be 64 KiB)")
    p.add_argument("--flood-address", default="127.0.0.66",
                   help="the flood's source address (default 127.0.0.66)")
    p.add_argument("--uplink-flood-rate", type=float, default=10_000.0, metavar="N",
                   help="uplink-flood: SRTP packets per second the attacker adds to its 50 "
                        "(default 10000; at most 100000)")
    p.add_argument("--kill-worker", type=float, default=None, metavar="AFTER",
                   help="SIGKILL the busiest media worker process of the bench's own server "
                        "AFTER seconds into the talking, and measure the time to audio at "
                        "every member of its rooms (use long talk bursts, e.g. --talk 8 8)")
    p.add_argument("--rss-every", type=float, default=None, metavar="S",
                   help="soak: sample the resident memory of the server's process tree "
                        "(signaling, media workers, spare) every S seconds through the run, "
                        "and report its growth after warm-up (docs/BENCHMARKS.md, \"Soak\")")
    p.add_argument("--rss-plot", default=None, metavar="FILE",
                   help="with --rss-every: PNG of the RSS samples over time")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _machine() -> dict[str, Any]:
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    commit = None
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        commit = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "git": commit,
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": load,
    }


class _Bench:
    """Runs loads, starting a fresh pinned server per run unless a URL was given."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
        self._saved_affinity: set[int] | None = None
        self._floor: dict[str, Any] | None = None

    def settings(self, rooms: int) -> RunSettings:
        a = self.args
        return RunSettings(
            rooms=rooms,
            users=a.users,
            duration=a.duration,
            pattern=a.pattern,
            sample_every=a.sample_every,
            verify_all=a.verify_all,
            join_concurrency=a.join_concurrency,
            seed=a.seed,
            audio=a.audio,
            kernel_timestamps=not a.user_timestamps,
            shared_socket=not a.socket_per_user,
            talk=TalkSettings(talk_min=a.talk[0], talk_max=a.talk[1], pressers=a.pressers),
            flood=FloodSettings(
                connections=a.flood_connections, rate=a.flood_rate,
                offer_bytes=a.flood_offer_bytes, seconds=a.attack_seconds,
                address=a.flood_address, room_size=a.users,
            ) if a.attack == "offer-flood" else None,
            attack_after=a.attack_after,
            kill_worker_after=a.kill_worker,
            node_attack=a.attack if a.attack in NODE_ATTACKS else None,
            uplink_flood=UplinkFloodSettings(rate=a.uplink_flood_rate, seconds=a.attack_seconds)
            if a.attack == "uplink-flood" else None,
            rss_every=a.rss_every,
            red=a.red,
        )

    def probe(self) -> dict[str, Any]:
        """A signaling probe (``--attack join-sweep`` / ``password-guess``): no rooms talk."""
        a = self.args
        settings = ProbeSettings(a.attack, seconds=a.attack_seconds,
                                 connections=a.flood_connections, address=a.flood_address)
        server = None if a.url else ServerProcess.start(
            max_users=max(a.users, 1), core=a.server_core if self.pin else None,
            extra_args=list(a.server_arg), address_limits=True)
        url = a.url or server.url  # type: ignore[union-attr]
        base = url.rstrip("/")
        ws_url = ("wss://" if base.startswith("https://") else "ws://") + base.split("://", 1)[1] + "/ws"
        try:
            self._pin_self()
            result = _run(run_probe(settings, ws_url, base, os.urandom(3).hex()))
        finally:
            code = server.stop() if server is not None else None
        result["server"] = {"url": url, "started_by_bench": server is not None, "exit_code": code}
        return result

    def floor(self) -> dict[str, Any] | None:
        """This machine's floor, measured once per bench invocation (before any server runs)."""
        a = self.args
        if self._floor is None and a.floor_seconds > 0:
            cores = (a.server_core, a.client_core) if self.pin else (None, None)
            try:
                self._floor = median_floor(cores[0], cores[1], a.floor_seconds)
            except (FloorError, OSError) as exc:
                self._floor = {"error": str(exc)}
        return self._floor

    def _with_floor(self, result: dict[str, Any]) -> dict[str, Any]:
        floor = self.floor()
        result["machine_floor"] = floor
        us = result.get("server_cpu_us_per_forwarded_packet")
        per_send = (floor or {}).get("us_per_send")
        result["server_cpu_per_packet_over_floor"] = (
            round(us / per_send, 2) if us is not None and per_send else None
        )
        return result


    def _pin_self(self) -> None:
        if self.pin and self._saved_affinity is None:
            self._saved_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {self.args.client_core})

    def restore(self) -> None:
        if self._saved_affinity is not None:
            os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None

    def run(self, rooms: int) -> dict[str, Any]:
        """One run: over several nodes (clusterrun.py), or against one server."""
        if is_multi(self.args):
            return run_multi(self, rooms, _run)
        return self.run_single(rooms)

    def run_single(self, rooms: int) -> dict[str, Any]:
        a = self.args
        progress = None if a.quiet else sys.stderr
        self.floor()  # before any server runs, so nothing else uses the server's core
        if a.url:
            self._pin_self()
            result = _run(run_load(self.settings(rooms), a.url, a.server_pid, progress))
            result["server"]["started_by_bench"] = False
            return self._with_floor(result)
        # Spawn before pinning ourselves: the child must not inherit the client core.
        server = ServerProcess.start(
            max_users=max(a.users, 1),
            core=a.server_core if self.pin else None,
            extra_args=list(a.server_arg),
            # The offer flood keeps the server's per-address limits, so that they bind the
            # attacker's address; the bench's users then each connect from an address of their
            # own. The uplink flood is media: its users all come from one address, as usual.
            address_limits=a.attack == "offer-flood",
        )
        try:
            self._pin_self()
            if progress:
                where = f" pinned to core {a.server_core}" if self.pin else ""
                print(f"bench: server pid {server.pid}{where} at {server.url}; clients on core "
                      f"{a.client_core if self.pin else 'any'}", file=progress, flush=True)
            result = _run(run_load(self.settings(rooms), server.url, server.pid, progress))
        finally:
            code = server.stop()
        result["server"].update(started_by_bench=True, core=server.core, exit_code=code,
                                last_output=server.output[-10:])
        result["bench"]["core"] = a.client_core if self.pin else None
        return self._with_floor(result)


def _verdict(r: dict[str, Any], bound_ms: float, loss_bound: float) -> tuple[bool, str]:
    p99 = r["latency_ms"]["p99"]
    loss = r["loss_ratio"]
    reasons = []
    if p99 is None or loss is None:
        reasons.append("no packets measured")
    else:
        if p99 > bound_ms:
            reasons.append(f"p99 {p99:.2f} ms > {bound_ms} ms")
        if loss > loss_bound:
            reasons.append(f"loss {100 * loss:.3f} % > {100 * loss_bound} %")
    failed_joins = r["join_ms"]["failures"]
    users = r["rooms"] * r["users_per_room"]
    if failed_joins > max(1, users // 100):
        reasons.append(f"{failed_joins} of {users} joins failed")
    ok = not reasons
    verdict = "pass" if ok else "fail: " + "; ".join(reasons)
    if ok and failed_joins:
        verdict += f" ({failed_joins} of {users} joins failed)"
    if client_bound(r):
        verdict += " (client-bound)"
    return ok, verdict


def _find_max(bench: _Bench, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    rooms = args.rooms or 10
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    passing = 0
    failing: int | None = None
    for _ in range(40):
        if rooms > args.max_rooms:
            break
        result = bench.run(rooms)
        ok, verdict = _verdict(result, args.latency_bound_ms, args.loss_bound)
        steps.append({"rooms": rooms, "verdict": verdict, "passed": ok, "result": result})
        print(f"bench: find-max step {rooms} rooms: {verdict}", file=sys.stderr, flush=True)
        if not ok:
            failing = rooms
            break
        passing = rooms
        best = result
        if client_bound(result):
            print("bench: the bench's own core is saturated; stopping the ramp (a larger load "
                  "would measure the clients, not the server)", file=sys.stderr, flush=True)
            break
        rooms = rooms + args.step if args.step > 0 else max(rooms + 1, math.ceil(rooms * 1.5))
    for _ in range(max(0, args.refine)):
        if failing is None or failing - passing <= max(1, passing // 20):
            break
        mid = (passing + failing) // 2
        if mid <= passing:
            break
        result = bench.run(mid)
        ok, verdict = _verdict(result, args.latency_bound_ms, args.loss_bound)
        steps.append({"rooms": mid, "verdict": verdict, "passed": ok, "result": result})
        print(f"bench: find-max refine {mid} rooms: {verdict}", file=sys.stderr, flush=True)
        if ok:
            passing, best = mid, result
        else:
            failing = mid
    steps.sort(key=lambda s: s["rooms"])
    return steps, best


def _check_incidents(args: argparse.Namespace) -> str | None:
    """What is wrong with the attack / kill / floor / soak options, if anything."""
    if not 0 <= args.floor_seconds <= 10:
        return "--floor-seconds must be 0..10"
    if args.attack and args.kill_worker is not None:
        return "--attack and --kill-worker are separate experiments: use one at a time"
    if (args.attack or args.kill_worker is not None) and args.find_max:
        return "--attack and --kill-worker measure one load, not --find-max"
    if args.attack:
        if not 1 <= args.flood_connections <= 1000 or not 0 < args.flood_rate <= 100:
            return "--flood-connections must be 1..1000 and --flood-rate in (0, 100]"
        if not 1200 <= args.flood_offer_bytes <= 1 << 20:
            return "--flood-offer-bytes must be 1200..1048576"
        if args.attack == "uplink-flood" and (
                not 1 <= args.uplink_flood_rate <= 100_000 or (args.rooms or 1) < 2):
            return "--attack uplink-flood needs --rooms >= 2 and --uplink-flood-rate 1..100000"
        if not 0 < args.attack_seconds <= 120 or args.attack_after < 2.5:
            return "--attack-seconds must be in (0, 120] and --attack-after >= 2.5"
        if args.duration < args.attack_after + args.attack_seconds + 2 and args.attack not in PROBES:
            return ("--duration must cover the attack and 2 s after it "
                    f"(>= {args.attack_after + args.attack_seconds + 2:g} s)")
        try:
            if not ipaddress.ip_address(args.flood_address).is_loopback:
                return "--flood-address must be a loopback address"
        except ValueError:
            return "--flood-address must be an IP address"
    if args.rss_every is not None:
        if args.find_max:
            return "--rss-every samples one long run, not --find-max"
        if not 1 <= args.rss_every <= args.duration / 10:
            return "--rss-every must be 1 s or more, and at most a tenth of --duration"
        if args.url and args.server_pid is None:
            return "--rss-every with --url needs --server-pid (whose memory to sample)"
    if args.rss_plot and args.rss_every is None:
        return "--rss-plot plots the samples of --rss-every"
    if args.kill_worker is not None:
        if args.url:
            return ("--kill-worker kills a worker of the server the bench starts; it does not "
                    "kill processes of a server given with --url")
        if not 1 <= args.kill_worker <= args.duration - 4:
            return "--kill-worker must be at least 1 s and leave 4 s of the run for recovery"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.users < 2 or args.users > 1000:
        print("walkie bench: --users must be 2..1000", file=sys.stderr)
        return 2
    if args.rooms is not None and not 1 <= args.rooms <= 10000:
        print("walkie bench: --rooms must be 1..10000", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 3600 or args.talk[0] <= 0 or args.talk[1] < args.talk[0]:
        print("walkie bench: --duration must be 1..3600 s and 0 < talk MIN <= MAX", file=sys.stderr)
        return 2
    if args.sample_every < 1 or args.join_concurrency < 1 or args.pressers < 1:
        print("walkie bench: --sample-every, --join-concurrency and --pressers must be >= 1",
              file=sys.stderr)
        return 2
    args.urls, args.server_pids = args.url, args.server_pid
    args.url = args.urls[0] if len(args.urls) == 1 else None
    args.server_pid = args.server_pids[0] if len(args.server_pids) == 1 and args.url else None
    problem = check_multi(args) or _check_incidents(args)
    if problem:
        print(f"walkie bench: {problem}", file=sys.stderr)
        return 2
    bench = _Bench(args)
    machine = _machine()
    try:
        if args.find_max:
            steps, best = _find_max(bench, args)
            if not steps:
                print("walkie bench: no find-max step ran", file=sys.stderr)
                return 2
            top = dict(best or steps[0]["result"])
            top["find_max"] = {
                "latency_bound_ms": args.latency_bound_ms,
                "loss_bound": args.loss_bound,
                "largest_passing_rooms": best["rooms"] if best else None,
                "largest_passing_users": best["users_connected"] if best else None,
                "steps": [{k: v for k, v in s.items()} for s in steps],
            }
            top["machine"] = machine
            print(format_find_max(steps, best, args.latency_bound_ms, args.loss_bound))
            if best is not None:
                print(format_table(best))
            if args.plot:
                plot_find_max(steps, args.plot, args.latency_bound_ms)
            result = top
        elif args.attack in PROBES:
            result = bench.probe()
            result["machine"] = machine
            print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
        else:
            result = bench.run(args.rooms or 1)
            result["machine"] = machine
            print(format_table(result))
            if "cluster" in result:
                print(format_cluster(result))
            if args.plot:
                plot_run(result, args.plot)
            if args.rss_plot and result.get("rss_over_time"):
                plot_rss(result, args.rss_plot)
    except ServerError as exc:
        print(f"walkie bench: {exc}", file=sys.stderr)
        return 3
    finally:
        bench.restore()
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
            f.write("\n")
    if args.check and not result.get("functional_ok"):
        return 1
    return 0
