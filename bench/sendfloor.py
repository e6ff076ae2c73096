"""This machine's floor: CPU per packet of the cheapest forwarding Python can do.

Why: the same commit measured 9.4-10.4 µs of server CPU per forwarded packet on one machine
of this kind and 13.5-17 µs on another. An absolute figure does not carry from one machine to
the next; a ratio to something the same machine does in the same run does. The reference is
the irreducible core of forwarding: a tight loop of ``send()`` on a connected UDP socket,
100-byte datagrams (the size of a forwarded Opus packet), to a socket that another core
keeps drained, on loopback. A forwarder cannot do less per packet than that, so
``server CPU per forwarded packet / floor`` says how much the rest (SRTP, the event loop,
Python) costs, in units this machine defines.

(This "floor" is a cost floor, nothing to do with the push-to-talk floor.)

The sender is a child process pinned to the server's core (its CPU is read from its own
``getrusage`` around the loop only, without interpreter start-up); the drain is a thread of
this process pinned to the client core, reading as fast as it can. Bounded in time
(``seconds``, default 1.5) and in packets; loopback only.

``python -m bench.sendfloor`` prints one measurement as JSON (for trying it alone).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from .mux import set_receive_buffer
from .server import spawn_pinned

__all__ = ["FloorError", "measure_floor", "median_floor"]

PAYLOAD_BYTES = 100
#: Sends per clock check in the sender's loop (the check is then ~0.1 % of the work).
CHUNK = 1000
#: Upper bound on sends whatever the clock says (~10 s at 3 µs each).
MAX_PACKETS = 3_000_000
#: Receive buffer asked for, so a drain that falls briefly behind loses nothing.
RCVBUF = 32 << 20


class FloorError(RuntimeError):
    """The floor could not be measured (the sender failed or said nothing usable)."""


def _sender(host: str, port: int, seconds: float, size: int, max_packets: int) -> dict[str, Any]:
    """The child's loop: connected send()s until ``seconds`` or ``max_packets``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    send = sock.send
    payload = bytes([0x80]) + bytes(size - 1)  # looks like RTP to anyone who peeks
    warm_until = time.perf_counter() + min(0.1, seconds / 10)
    while time.perf_counter() < warm_until:  # fault in the code path and socket buffers
        for _ in range(100):
            send(payload)
    errors = 0
    sent = 0
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    end = t0 + seconds
    while sent < max_packets:
        for _ in range(CHUNK):
            try:
                send(payload)
            except OSError:  # ENOBUFS, ECONNREFUSED: counted, never fatal
                errors += 1
        sent += CHUNK
        if time.perf_counter() >= end:
            break
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    sock.close()
    return {
        "packets": sent,
        "errors": errors,
        "wall_s": t1 - t0,
        "user_s": r1.ru_utime - r0.ru_utime,
        "system_s": r1.ru_stime - r0.ru_stime,
    }


class _Drain(threading.Thread):
    """Reads (and throws away) every datagram on ``sock`` until told to stop.

    It polls without ever sleeping, so the sender never pays for waking it up: whether a
    blocking reader happened to be asleep when a datagram came would otherwise make the
    floor jump between two values from one run to the next.
    """

    def __init__(self, sock: socket.socket, core: int | None) -> None:
        super().__init__(name="walkie-bench-floor-drain", daemon=True)
        self.sock = sock
        self.core = core
        self.received = 0
        self.stop = threading.Event()

    def run(self) -> None:
        if self.core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {self.core})  # 0 = this thread on Linux
        recv_into = self.sock.recv_into
        buf = bytearray(2048)
        self.sock.setblocking(False)
        stopping = self.stop.is_set
        while True:
            try:
                recv_into(buf)
            except BlockingIOError:
                if stopping():
                    return
                continue
            except OSError:
                return
            self.received += 1


def measure_floor(
    sender_core: int | None,
    drain_core: int | None,
    seconds: float = 1.5,
    size: int = PAYLOAD_BYTES,
    max_packets: int = MAX_PACKETS,
) -> dict[str, Any]:
    """Measure the floor; returns ``us_per_send`` and how it was obtained.

    Raises FloorError when the sender fails; an unpinned run (``None`` cores) works too.
    """
    if not 0 < seconds <= 10 or not 12 <= size <= 1400 or max_packets < CHUNK:
        raise ValueError("seconds must be in (0, 10], size 12..1400, max_packets >= 1000")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        set_receive_buffer(sink, RCVBUF)
        sink.bind(("127.0.0.1", 0))
        host, port = sink.getsockname()[:2]
        drain = _Drain(sink, drain_core)
        drain.start()
        try:
            report = _run_sender(host, port, seconds, size, max_packets, sender_core)
        finally:
            time.sleep(0.1)  # the last datagrams reach the drain
            drain.stop.set()
            drain.join(2.0)
    finally:
        sink.close()
    packets = int(report["packets"])
    cpu = float(report["user_s"]) + float(report["system_s"])
    wall = float(report["wall_s"])
    if packets <= 0 or cpu <= 0 or wall <= 0:
        raise FloorError(f"the floor sender measured nothing usable: {report}")
    return {
        "us_per_send": round(cpu / packets * 1e6, 3),
        "packets": packets,
        "payload_bytes": size,
        "wall_s": round(wall, 3),
        "sender_cpu_percent": round(100 * cpu / wall, 1),
        "sender_user_percent": round(100 * float(report["user_s"]) / wall, 1),
        "sender_system_percent": round(100 * float(report["system_s"]) / wall, 1),
        "send_errors": report["errors"],
        "received": drain.received,
        "sender_core": sender_core,
        "drain_core": drain_core,
    }


def median_floor(
    sender_core: int | None, drain_core: int | None, seconds: float = 1.5, repeats: int = 3
) -> dict[str, Any]:
    """The median of ``repeats`` measurements sharing ``seconds``, with every sample.

    One measurement on a virtual machine can land on a bad moment (another guest's burst,
    steal time): seen here, single floors of one session ranged 3.6-5.7 us per send. The
    median of a few short ones is steadier.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    runs = sorted(
        (measure_floor(sender_core, drain_core, seconds / repeats) for _ in range(repeats)),
        key=lambda run: run["us_per_send"],
    )
    median = dict(runs[len(runs) // 2])
    median["samples_us_per_send"] = [run["us_per_send"] for run in runs]
    return median


def _run_sender(
    host: str, port: int, seconds: float, size: int, max_packets: int, core: int | None,
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.sendfloor", "--send", host, str(port), str(seconds),
           str(size), str(max_packets)]
    proc = spawn_pinned(cmd, core, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise FloorError("the floor sender did not finish in time") from None
    if proc.returncode != 0:
        raise FloorError(f"the floor sender exited with {proc.returncode}: "
                         f"{err.decode(errors='replace')[-500:]}")
    try:
        report = json.loads(out)
    except ValueError:
        raise FloorError(f"the floor sender printed no JSON: {out[-200:]!r}") from None
    if not isinstance(report, dict):
        raise FloorError("the floor sender printed no JSON object")
    return report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 6 and args[0] == "--send":
        host, port, seconds, size, max_packets = args[1:]
        print(json.dumps(_sender(host, int(port), float(seconds), int(size), int(max_packets))))
        return 0
    if args:
        print("usage: python -m bench.sendfloor   (measures the floor, prints JSON)",
              file=sys.stderr)
        return 2
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    sender, drain = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    print(json.dumps(measure_floor(sender, drain), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
