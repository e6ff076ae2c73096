"""Probe: how long a talker whose client freezes keeps the floor (``--attack freeze-talker``).

    python -m bench.freeze [--url URL] [--modes media,no-media] [--repeats N] [--json FILE]

Each trial: an observer (a plain WebSocket member, in this process) joins a fresh room; a
talker in a process of its own (``python -m bench.freeze --talker URL ROOM MODE``) joins it,
with media (ICE, DTLS, SRTP, an Opus frame every 20 ms: the bench's own client stack) or
without (WebSocket only), takes the floor and keeps talking. Once the observer has seen it
hold the floor for ``--talk-before`` seconds, the probe stops the talker with SIGSTOP by its
pid: the most faithful freeze there is (its sockets stay open, the kernel still acknowledges
TCP, nothing answers). The observer then waits for the floor to go idle and notes whether
the talker's ``member_left`` came first (its socket or media was given up) or not (its floor
was revoked). Then the talker gets SIGKILL, by pid, and the next trial starts.

Without ``--url`` the probe starts its own ``walkie serve`` (``--server-arg`` passes extra
flags). Every wait is bounded (``--timeout``); nothing is sent anywhere but the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import websockets

__all__ = ["FreezeTrial", "main", "freeze_trial", "ws_url"]

MODES = ("media", "no-media")
#: The talker process gives up on its own after this long (a bound on every load loop).
TALKER_LIFETIME = 300.0


@dataclass(slots=True)
class FreezeTrial:
    """One frozen talker, as the observer saw it."""

    mode: str  # "media" or "no-media"
    idle_ms: float | None  # SIGSTOP to the observer's `floor` idle (None: not within timeout)
    how: str  # "revoked" (the talker was still a member) or "left" (it left first) or "timeout"
    left_ms: float | None  # SIGSTOP to the talker's member_left, if seen by then


def ws_url(url: str) -> str:
    """The signaling WebSocket of the server at ``url`` (http://host:port/)."""
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws"


# ------------------------------------------------------------------------- the talker process

async def _talker(url: str, room: str, mode: str) -> None:
    """Join, take the floor, say "ready <id>" on stdout, then talk until killed (bounded)."""
    end = time.monotonic() + TALKER_LIFETIME
    if mode == "no-media":
        async with websockets.connect(ws_url(url), ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "join", "room": room, "name": "Frozen"}))
            me = None
            await ws.send(json.dumps({"type": "floor_request"}))
            while time.monotonic() < end:
                msg = json.loads(await asyncio.wait_for(ws.recv(), end - time.monotonic()))
                if msg["type"] == "joined":
                    me = msg["you"]["id"]
                elif msg["type"] == "floor_granted":
                    print(f"ready {me}", flush=True)
        return
    from .audio import encode_loop
    from .client import SyntheticClient
    from .context import BenchContext

    ctx = BenchContext(encode_loop("speech", 1.0), kernel_timestamps=False)
    client = SyntheticClient(ctx, room, "Frozen")
    await client.join(ws_url(url), None, timeout=20.0)
    client.start_talking()
    tick = 0
    client.send_frame(tick)  # the page sends on press, while the request travels
    outcome, _ = await client.request_floor(timeout=20.0)
    if outcome != "granted":
        raise SystemExit(f"talker: floor {outcome}")
    client.granted()
    print(f"ready {client.id}", flush=True)
    start = time.monotonic()
    while time.monotonic() < end:
        tick += 1
        client.send_frame(tick)
        if tick % 100 == 0:
            client.send_consent()
        # On a 20 ms metronome, so that a late wake-up does not slow the stream down.
        await asyncio.sleep(max(0.0, start + tick * 0.02 - time.monotonic()))


# ------------------------------------------------------------------------- one trial

async def freeze_trial(url: str, mode: str, *, talk_before: float = 1.0,
                       timeout: float = 60.0) -> FreezeTrial:
    """One frozen talker in a fresh room; see the module docstring."""
    room = f"freeze-{secrets.token_hex(4)}"
    async with websockets.connect(ws_url(url)) as observer:
        await observer.send(json.dumps({"type": "join", "room": room, "name": "Observer"}))
        await _until(observer, lambda m: m["type"] == "joined", 10.0)
        talker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.freeze", "--talker", url, room, mode,
            stdout=asyncio.subprocess.PIPE, env=_child_env(),
        )
        try:
            assert talker.stdout is not None
            line = await asyncio.wait_for(talker.stdout.readline(), 30.0)
            if not line.startswith(b"ready "):
                raise RuntimeError(f"the talker did not take the floor: {line!r}")
            talker_id = line.split()[1].decode()
            await _until(observer, lambda m: m["type"] == "floor" and (m["holder"] or {})
                         .get("id") == talker_id, 10.0)
            await asyncio.sleep(talk_before)
            os.kill(talker.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            left_ms = idle_ms = None
            deadline = frozen + timeout
            while idle_ms is None and time.monotonic() < deadline:
                try:
                    text = await asyncio.wait_for(observer.recv(), deadline - time.monotonic())
                except TimeoutError:
                    break
                msg = json.loads(text)
                ms = (time.monotonic() - frozen) * 1000
                if msg["type"] == "member_left" and msg["id"] == talker_id:
                    left_ms = ms
                elif msg["type"] == "floor" and msg["holder"] is None:
                    idle_ms = ms
                    # A member who leaves frees the floor first, then is announced gone,
                    # in one go: a member_left right behind means "left", not "revoked".
                    left_ms = left_ms or await _left_soon(observer, talker_id, frozen)
            if idle_ms is None:
                how = "timeout"
            else:
                how = "left" if left_ms is not None else "revoked"
            return FreezeTrial(mode, idle_ms, how, left_ms)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(talker.pid, signal.SIGKILL)  # a stopped process dies of it too
            await talker.wait()


async def _left_soon(ws: Any, member: str, since: float, within: float = 0.2) -> float | None:
    """ms from ``since`` to ``member``'s member_left if it comes within ``within`` s."""
    with contextlib.suppress(TimeoutError):
        await _until(ws, lambda m: m["type"] == "member_left" and m["id"] == member, within)
        return (time.monotonic() - since) * 1000
    return None


async def _until(ws: Any, match: Any, timeout: float) -> dict[str, Any]:
    """The first message ``match`` accepts (others are skipped), within ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if match(msg):
                return msg


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ------------------------------------------------------------------------- the probe

def summary(trials: Sequence[FreezeTrial]) -> dict[str, Any]:
    """Per mode: the idle times (ms), their median and range, and how the floor was freed."""
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [t for t in trials if t.mode == mode]
        if not mine:
            continue
        times = [t.idle_ms for t in mine if t.idle_ms is not None]
        out[mode] = {
            "trials": len(mine),
            "idle_ms": [round(x) for x in times],
            "median_ms": round(statistics.median(times)) if times else None,
            "min_ms": round(min(times)) if times else None,
            "max_ms": round(max(times)) if times else None,
            "how": {h: sum(t.how == h for t in mine) for h in ("revoked", "left", "timeout")},
        }
    return out


async def _probe(url: str, modes: Sequence[str], repeats: int, talk_before: float,
                 spread: float, timeout: float) -> list[FreezeTrial]:
    trials = []
    for i in range(repeats):
        # Freezes at different moments of the server's ping cycle: the keepalive's time
        # depends on where in it the talker stops.
        before = talk_before + spread * i / repeats
        for mode in modes:
            trial = await freeze_trial(url, mode, talk_before=before, timeout=timeout)
            print(f"freeze: {mode}: floor idle after "
                  f"{'-' if trial.idle_ms is None else f'{trial.idle_ms:.0f} ms'} ({trial.how})",
                  file=sys.stderr, flush=True)
            trials.append(trial)
    return trials


def build_parser() -> argparse.ArgumentParser:
    from .server import add_server_options

    p = argparse.ArgumentParser(
        prog="python -m bench.freeze",
        description="Freeze a floor holder (SIGSTOP) and measure how long until the others "
                    "see the floor idle, with and without media.")
    add_server_options(p)
    p.add_argument("--modes", default="media,no-media",
                   help="comma-separated: media, no-media (default both)")
    p.add_argument("--repeats", type=int, default=3, help="trials per mode (default 3)")
    p.add_argument("--talk-before", type=float, default=1.0,
                   help="seconds the talker holds the floor before it freezes (default 1)")
    p.add_argument("--spread", type=float, default=1.5,
                   help="trial i of N freezes spread*i/N seconds later still, so that the "
                        "freezes sample the server's ping cycle (default 1.5, its interval)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="longest wait for the floor to go idle (default 60 s)")
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE")
    p.add_argument("--talker", nargs=3, metavar=("URL", "ROOM", "MODE"), help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.talker:
        url, room, mode = args.talker
        asyncio.run(_talker(url, room, mode))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        print(f"bench.freeze: --modes takes {', '.join(MODES)}", file=sys.stderr)
        return 2
    if (not 1 <= args.repeats <= 100 or not 0 < args.timeout <= 600
            or not 0 <= args.talk_before <= 60 or not 0 <= args.spread <= 60):
        print("bench.freeze: --repeats must be 1..100, --timeout in (0, 600], --talk-before "
              "and --spread 0..60 s", file=sys.stderr)
        return 2
    from .server import server_for

    with server_for(args.url, args.server_arg) as url:
        trials = asyncio.run(_probe(url, modes, args.repeats, args.talk_before, args.spread,
                                    args.timeout))
    from .report import write_record

    write_record(args.json_path, {"url": url, "server_args": args.server_arg,
                                  "trials": [asdict(t) for t in trials],
                                  "summary": summary(trials)})
    print(json.dumps(summary(trials), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
