"""CPU per forwarded packet of the media core alone, for before/after comparisons.

    python tests/sfu/corecost.py [--listeners 14] [--packets 3000] [--red] [--mixed]

One room on an in-memory network (tests/sfu/memnet.py): a talker and ``--listeners``
listeners, all connected (ICE, DTLS, SRTP done as browsers do); the talker's SRTP packets
(Chromium-shaped 80-byte Opus, or RED of two such frames with ``--red``) are made first,
then fed to ``MediaCore.handle_datagram`` one by one, the transmit queue emptied after each
as the driver does after its ``sendmmsg``. Reported: process CPU time (``time.process_time``)
of those calls divided by the datagrams they queued, the median of ``--repeats`` passes.
No socket, no event loop, no kernel: the Python and libsrtp work of the hot path only, so
the figure moves little with other load on the machine (CPU time, not wall time).

Run by path from a tree's root with that tree first on the path, e.g. against an older
checkout: ``cd OLD && PYTHONPATH=OLD python NEW/tests/sfu/corecost.py`` (``--red`` needs a
tree that negotiates RED). ``--mixed``: every other listener without RED.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

from sfu.certificate import Certificate
from sfu.core import CoreConfig, MediaCore
from tests.sfu.memnet import Browser, Net


def _browser(name: str, n: int, red: bool) -> Browser:
    if red:
        return Browser(name, ("127.0.0.1", 50000 + n), red_pt=63)  # type: ignore[call-arg]
    return Browser(name, ("127.0.0.1", 50000 + n))


def measure(listeners: int, packets: int, red: bool, mixed: bool, repeats: int) -> dict[str, object]:
    core = MediaCore(CoreConfig("127.0.0.1", 40000), Certificate.generate("corecost"),
                     rng=random.Random(1))
    net = Net(core)
    talker = net.connect(_browser("t", 0, red))
    for n in range(1, listeners + 1):
        net.connect(_browser(f"l{n}", n, red and not (mixed and n % 2)))
    core.set_speaker("r", "t", net.now)
    frame = bytes([0x78]) + os.urandom(79)
    if red:
        from sfu.red import build_red

        payload = build_red(111, frame, [(960, frame)])
    else:
        payload = frame
    results = []
    source = talker.address
    queue = core.transmits
    for _ in range(repeats):
        datagrams = []
        for _ in range(packets):
            talker.audio(payload, payload_type=63) if red else talker.audio(payload)
            datagrams.append(talker.outbox.pop())
        sent = 0
        handle = core.handle_datagram
        now = net.now
        start = time.process_time()
        for data in datagrams:
            now += 0.02
            handle(now, source, data)
            sent += len(queue)
            queue.clear()
        results.append((time.process_time() - start) / sent * 1e6)
        net.now = now
    return {"us_per_forwarded_packet": statistics.median(results),
            "runs": [round(r, 3) for r in results], "listeners": listeners,
            "packets": packets, "red": red, "mixed": mixed}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listeners", type=int, default=14)
    p.add_argument("--packets", type=int, default=3000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--red", action="store_true")
    p.add_argument("--mixed", action="store_true")
    a = p.parse_args()
    if not (1 <= a.listeners <= 100 and 1 <= a.packets <= 100_000 and 1 <= a.repeats <= 50):
        print("--listeners 1..100, --packets 1..100000, --repeats 1..50", file=sys.stderr)
        return 2
    print(json.dumps(measure(a.listeners, a.packets, a.red, a.mixed, a.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
