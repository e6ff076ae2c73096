"""Probe: how much of a talker a listener can play under loss and jitter, with and without
RED (RFC 2198).

    python -m bench.redloss [--url URL] [--frames N] [--playout-ms MS]
                            [--condition UP_LOSS,DOWN_LOSS,JITTER_MS ...] [--json FILE]

This machine's kernel has no ``netem``, so the impairment is applied in the clients, in user
space: the talker drops each packet of its uplink with probability UP_LOSS and delays each
by a uniform 0..JITTER_MS before sending it (so packets reorder on their way through the
server); each listener drops each packet of its downlink with probability DOWN_LOSS (before
SRTP, as the network would) and adds a uniform 0..JITTER_MS to its arrival time. The
burst's first packet is never dropped (it anchors the listener's timeline).

Each condition is one fresh room on the server: a talker that negotiated RED and sends what
Chromium sends (each Opus frame with the previous one as a redundant block), a listener that
negotiated RED (it gets the RED payloads and recovers a lost frame from the next packet) and
one that did not (the server sends it the primary block only: exactly what it would get
from a talker without RED, under the same uplink loss). Both are counted with
``bench.playout``: frames playable before a fixed playout delay (``--playout-ms``, a jitter
buffer), received or recovered. Every wait and every loop is bounded; traffic goes only to
the server on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sfu.red import build_red
from sfu.rtp import RtpError, RtpPacket, build_rtp, read_uplink
from sfu.srtp import SrtpError

from .audio import encode_loop
from .client import SyntheticClient
from .context import BenchContext
from .freeze import ws_url
from .playout import FRAME_SECONDS, PlayoutCount, PlayoutLog
from .report import write_record
from .server import add_server_options, server_for

__all__ = ["Condition", "DEFAULT_CONDITIONS", "main", "run_condition"]

#: Consent checks (RFC 7675) every this many frames (5 s), so long bursts keep their peers.
CONSENT_FRAMES = 250


@dataclass(frozen=True, slots=True)
class Condition:
    """One impairment: loss ratios of the talker's uplink and each listener's downlink, and
    the jitter (uniform 0..jitter_ms of extra delay) on both."""

    uplink_loss: float
    downlink_loss: float
    jitter_ms: float

    def __post_init__(self) -> None:
        if not (0 <= self.uplink_loss < 1 and 0 <= self.downlink_loss < 1
                and 0 <= self.jitter_ms <= 500):
            raise ValueError("loss must be in [0, 1) and jitter in 0..500 ms")

    @property
    def label(self) -> str:
        return (f"up {self.uplink_loss:.0%}, down {self.downlink_loss:.0%}, "
                f"jitter {self.jitter_ms:g} ms")


DEFAULT_CONDITIONS = (
    Condition(0.0, 0.05, 0), Condition(0.0, 0.15, 0),
    Condition(0.05, 0.0, 0), Condition(0.15, 0.0, 0),
    Condition(0.05, 0.05, 30), Condition(0.15, 0.15, 30),
)


class _Impairment:
    """One direction of one client: a loss ratio and a jitter, from a seeded generator."""

    def __init__(self, loss: float, jitter_s: float, rng: random.Random) -> None:
        self.loss, self.jitter_s, self.rng = loss, jitter_s, rng

    def drop(self) -> bool:
        return self.loss > 0 and self.rng.random() < self.loss

    def delay(self) -> float:
        return self.rng.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0


def _listen(client: SyntheticClient, log: PlayoutLog, impairment: _Impairment) -> None:
    """Route the client's downlink into ``log``, through ``impairment``."""
    session = client.session
    assert session is not None and session.srtp is not None and session.answer is not None
    unprotect = session.srtp.unprotect
    loop = asyncio.get_running_loop()

    def feed(data: bytes, _now: int) -> None:
        if len(data) < 12 or 191 < data[1] < 224:
            return  # RTCP (or nothing)
        arrival = loop.time()
        if not data[1] & 0x80 and impairment.drop():  # the marker packet anchors: kept
            return
        try:
            plain = unprotect(data)
        except SrtpError:
            return
        try:
            _ssrc, _seq, timestamp, _level, start, end = read_uplink(plain, 0)
        except RtpError:
            return
        log.add(arrival + impairment.delay(), timestamp, plain[1] & 0x7F,
                bool(plain[1] & 0x80), bytes(plain[start:end]))

    session.route_media(feed, session.answer.ssrc)


async def _talk(talker: SyntheticClient, frames: Sequence[bytes], count: int,
                impairment: _Impairment, others: Sequence[SyntheticClient]) -> float:
    """Send ``count`` frames as RED, one every 20 ms; returns when frame 0 was due."""
    session = talker.session
    assert session is not None and session.srtp is not None and session.answer is not None
    answer, protect, send = session.answer, session.srtp.protect, session.send
    assert send is not None and answer.red_pt is not None and answer.opus_pt is not None
    level = {answer.audio_level_id or 1: b"\xa0"}
    loop = asyncio.get_running_loop()
    seq0, ts0 = secrets.randbits(16), secrets.randbits(32)
    start = loop.time() + 0.05
    for k in range(count):
        await asyncio.sleep(max(0.0, start + k * FRAME_SECONDS - loop.time()))
        frame = frames[k % len(frames)]
        redundant = [(960, frames[(k - 1) % len(frames)])] if k else []
        packet = build_rtp(RtpPacket(
            answer.red_pt, (seq0 + k) & 0xFFFF, (ts0 + 960 * k) & 0xFFFFFFFF, talker.ssrc,
            marker=k == 0, extensions=level,
            payload=build_red(answer.opus_pt, frame, redundant)))
        data = protect(packet)
        if k and impairment.drop():
            continue
        delay = impairment.delay()
        if delay:
            loop.call_later(delay, send, data)
        else:
            send(data)
        if k % CONSENT_FRAMES == CONSENT_FRAMES - 1:
            for client in (talker, *others):
                client.send_consent()
    return start


async def run_condition(url: str, condition: Condition, frames: Sequence[bytes], count: int,
                        playout: float, rng: random.Random,
                        logs_out: dict[str, PlayoutLog] | None = None) -> dict[str, Any]:
    """One fresh room under ``condition``: a RED talker, a RED listener, a plain one.
    ``logs_out`` receives the listeners' logs (``RED``, ``Opus``), for tests."""
    ctx = BenchContext(frames, kernel_timestamps=False)
    room = f"redloss-{secrets.token_hex(4)}"
    talker, with_red, without = (SyntheticClient(ctx, room, name)
                                 for name in ("Talker", "RED", "Opus"))
    without.red = False
    talker.red = with_red.red = True
    clients = (talker, with_red, without)
    try:
        for client in clients:
            await client.join(ws_url(url), url.rstrip("/"), timeout=20.0)
        jitter = condition.jitter_ms / 1000
        logs = {}
        for client in (with_red, without):
            answer = client.session.answer  # type: ignore[union-attr]
            assert answer is not None and answer.opus_pt is not None
            log = logs[client.name] = PlayoutLog(answer.opus_pt, answer.red_pt)
            _listen(client, log, _Impairment(condition.downlink_loss, jitter,
                                             random.Random(rng.random())))
        outcome, _ = await talker.request_floor(timeout=10.0)
        if outcome != "granted":
            raise RuntimeError(f"the talker was not granted the floor ({outcome})")
        uplink = _Impairment(condition.uplink_loss, jitter, random.Random(rng.random()))
        start = await _talk(talker, frames, count, uplink, (with_red, without))
        await asyncio.sleep(0.3 + jitter)  # the last packets' way, and the jitter
        await talker.release_floor()
    finally:
        for client in clients:
            await client.close()
    if logs_out is not None:
        logs_out.update(logs)
    counts: dict[str, PlayoutCount] = {name: log.count(count, start, playout)
                                       for name, log in logs.items()}
    return {"condition": asdict(condition),
            "red_listener": asdict(counts["RED"]), "plain_listener": asdict(counts["Opus"])}


def _row(result: dict[str, Any]) -> str:
    c = Condition(**result["condition"])
    red, plain = result["red_listener"], result["plain_listener"]

    def pct(n: int) -> str:
        return f"{100 * n / red['frames']:.1f} %"

    return (f"{c.label:<36} RED listener {pct(red['playable'])} "
            f"(received {pct(red['primary'])}, recovered {pct(red['recovered'])}) | "
            f"plain listener {pct(plain['playable'])}")


async def _probe(url: str, conditions: Sequence[Condition], count: int, playout: float,
                 seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    frames = encode_loop("speech", 2.0)
    results = []
    for condition in conditions:
        result = await run_condition(url, condition, frames, count, playout, rng)
        print(_row(result), file=sys.stderr, flush=True)
        results.append(result)
    return results


def _condition(text: str) -> Condition:
    try:
        up, down, jitter = (float(x) for x in text.split(","))
        return Condition(up / 100, down / 100, jitter)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want UP_LOSS%,DOWN_LOSS%,JITTER_MS, e.g. 5,0,30 ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.redloss",
        description="Frames a listener can play under loss and jitter, with RED (RFC 2198) "
                    "negotiated and without.")
    add_server_options(p)
    p.add_argument("--condition", type=_condition, action="append", default=None,
                   metavar="UP,DOWN,JITTER",
                   help="uplink loss %%, downlink loss %%, jitter ms (repeatable; default: "
                        "0,5,0 0,15,0 5,0,0 15,0,0 5,5,30 15,15,30)")
    p.add_argument("--frames", type=int, default=1000,
                   help="20 ms frames per condition (default 1000 = 20 s; at most 15000)")
    p.add_argument("--playout-ms", type=float, default=60.0,
                   help="the listener's fixed playout delay after a frame was sent "
                        "(default 60 ms)")
    p.add_argument("--seed", type=int, default=1, help="seed of the impairment (default 1)")
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    conditions = args.condition or list(DEFAULT_CONDITIONS)
    if not 2 <= args.frames <= 15000 or not 0 < args.playout_ms <= 2000 or len(conditions) > 20:
        print("bench.redloss: --frames 2..15000, --playout-ms in (0, 2000], at most 20 "
              "conditions", file=sys.stderr)
        return 2
    with server_for(args.url, args.server_arg) as url:
        results = asyncio.run(_probe(url, conditions, args.frames, args.playout_ms / 1000,
                                     args.seed))
    write_record(args.json_path, {"url": url, "frames": args.frames,
                                  "playout_ms": args.playout_ms, "seed": args.seed,
                                  "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
