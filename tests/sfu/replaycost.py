"""What say-again costs the media core per packet, sans-IO: ``python -m tests.sfu.replaycost``.

Not a test (nothing is asserted): a measurement for docs/BENCHMARKS.md, "Say again". One
room of ``--listeners`` + 1 members on the in-memory network (tests/sfu/memnet.py); the
talker's SRTP packets are made beforehand, then fed to ``MediaCore.handle_datagram`` and the
core's own CPU time (``time.process_time``) is read around that loop only: the forwarding
with say-again off, and on (every packet also kept by the capture, every turn kept by the
store). Then the cost of one replay packet (``handle_timeout`` sending it to one listener).
The two cores alternate, round after round, so that a busy machine disturbs both alike;
medians are printed, and the ratio on / off.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from sfu.certificate import Certificate
from sfu.core import CoreConfig, MediaCore
from sfu.replay import ReplayEvent, ReplayLimits

from .memnet import Browser, Net

CERT = Certificate.generate("replaycost")
FRAME = bytes([31 << 3]) + bytes(79)  # an 80-byte Opus-like payload (20 ms CELT TOC)


def make_net(listeners: int, replay: bool) -> tuple[Net, Browser]:
    config = CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000, consent_timeout=3600.0,
                        replay=ReplayLimits(120.0) if replay else None)
    net = Net(MediaCore(config, CERT, wall_offset=1.7e9, rng=random.Random(1)))
    members = [net.connect(Browser(f"m{i}", ("127.0.0.1", 50000 + i)))
               for i in range(listeners + 1)]
    for member in members:  # the listeners' own deliveries are not what is measured
        member.deliver = lambda data, now: None  # type: ignore[method-assign]
    return net, members[0]


def forward_cost(net: Net, talker: Browser, turns: int, frames: int) -> float:
    """µs of the core's CPU per talker packet forwarded (``turns`` turns of ``frames``)."""
    core = net.core
    spent = 0.0
    count = 0
    for _ in range(turns):
        packets = []
        for _ in range(frames):
            talker.audio(FRAME)
        packets, talker.outbox = talker.outbox, []
        core.set_speaker("r", talker.name, net.now)
        start = time.process_time()
        for data in packets:
            core.handle_datagram(net.now, talker.address, data)
            core.transmits.clear()  # sent: what a driver does after sendmmsg
            net.now += 0.02
        spent += time.process_time() - start
        count += len(packets)
        core.set_speaker("r", None, net.now)
        net.now += 0.5
        core.handle_timeout(net.now)  # the turn's tail ends: kept (say-again on)
        core.transmits.clear()
        while core.poll_event() is not None:
            pass
    return spent / count * 1e6


def replay_cost(net: Net) -> float:
    """µs of the core's CPU per replay packet sent to one listener (the replay desk's work:
    pacing, numbering, one header, one SRTP protect into the transmit queue)."""
    core = net.core
    kept = None
    core.set_speaker("r", None, net.now)
    net.now += 1.0
    core.handle_timeout(net.now)
    desk = core._replay
    assert desk is not None
    for item in desk.items("r"):
        kept = item
    assert kept is not None, "nothing was kept"
    spent = 0.0
    sent_before = core.stats()["replay_packets_sent"]
    core.start_replay("r", "m1", kept.id, net.now)
    core.transmits.clear()
    while True:
        due = core.poll_timeout()
        if due is None or due > net.now + 60:
            break
        net.now = max(net.now, due)
        start = time.process_time()  # the replay's own work (not the peers' RTCP timers)
        desk.handle_timeout(net.now, core.transmits)
        spent += time.process_time() - start
        core.handle_timeout(net.now)
        core.transmits.clear()
        events = []
        while (event := core.poll_event()) is not None:
            events.append(event)
        if any(isinstance(e, ReplayEvent) and e.kind == "replay_ended" for e in events):
            break
    sent = int(core.stats()["replay_packets_sent"]) - int(sent_before)  # type: ignore[call-overload]
    return spent / sent * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--frames", type=int, default=250, help="packets per turn (5 s)")
    args = parser.parse_args()
    off: list[float] = []
    on: list[float] = []
    replay: list[float] = []
    for _ in range(args.rounds):
        for keep, out in ((False, off), (True, on)):
            net, talker = make_net(args.listeners, keep)
            out.append(forward_cost(net, talker, args.turns, args.frames))
            if keep:
                replay.append(replay_cost(net))
    def show(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} µs (runs: {', '.join(f'{v:.2f}' for v in values)})"
    print(f"forwarding, say-again off: {show(off)} per talker packet, {args.listeners} listeners")
    print(f"forwarding, say-again on:  {show(on)}; ratio on/off "
          f"{statistics.median(on) / statistics.median(off):.3f}")
    print(f"one replay packet to one listener: {show(replay)}")


if __name__ == "__main__":
    main()
