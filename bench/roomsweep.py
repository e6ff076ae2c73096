"""The room-sweep probe: how long would one address take to try every room name that
"Create a new room" can make? (docs/SECURITY.md, "Rooms and names".)

A room without a password is as private as its name is hard to guess, and ``joined`` lists
the members, so a sweeper who tries names finds the rooms in use. Two measurements, against
a server started here from a source tree (this one, or an older checkout with ``--tree``, so
that before and after run the same probe):

1. **Names.** The page's own generator (``/static/names.js`` ``randomRoomName``) runs in
   Chromium with ``crypto.getRandomValues`` replaced by a scripted source and ``Math.random``
   by a function that throws. For each random draw the generator makes, the number of
   distinct names when that draw alone takes every value 0..65535 is the number of choices
   it makes; their product is the number of names (each draw picks its own part of the name:
   words or digits joined by hyphens). :data:`NAME_SPACE_JS` is that script; the browser
   tests use it too.
2. **Join rate.** One source address tries names as a sweeper does: open a WebSocket, send
   ``join``, read the answer (``joined``: the room and its members, or an error), drop it; ``--concurrency`` at a time,
   for ``--seconds`` and at most ``--max-joins`` joins (bounded in count and time).

The sweep time is names / joins per second (finding one given room takes half that on
average). Run inside a loopback-only namespace:

    unshare -n sh -c 'ip link set lo up; exec .venv/bin/python -m bench.roomsweep [--tree DIR]'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .server import ServerProcess

__all__ = ["NAME_SPACE_JS", "JoinRate", "NameSpace", "measure_join_rate", "measure_name_space"]

#: Run in a page of the server (``page.evaluate``): the generator's draws and choices.
NAME_SPACE_JS = """async (values) => {
  const { randomRoomName } = await import('/static/names.js');
  const realRandom = Math.random;
  let script = [];
  let used = 0;
  crypto.getRandomValues = (array) => {
    for (let i = 0; i < array.length; i += 1) array[i] = used < script.length ? script[used++] : (used++, 0);
    return array;
  };
  Math.random = () => { throw new Error('the room-name generator called Math.random'); };
  try {
    const make = (s) => { script = s; used = 0; return randomRoomName(); };
    const example = make([]);
    const draws = used;
    const choices = [];
    let longest = example.length;
    let valid = /^[a-z0-9-]{1,64}$/.test(example);
    for (let d = 0; d < draws; d += 1) {
      const seen = new Set();
      for (let v = 0; v < values; v += 1) {
        const s = new Array(draws).fill(0);
        s[d] = v;
        const name = make(s);
        seen.add(name);
        longest = Math.max(longest, name.length);
        valid = valid && /^[a-z0-9-]{1,64}$/.test(name);
      }
      choices.push(seen.size);
    }
    return { example, draws, choices, longest, valid };
  } finally {
    delete crypto.getRandomValues;  // the prototype's own again
    Math.random = realRandom;
  }
}"""

#: Chromium without a sandbox (root) and without reaching for a network: no media is needed.
_CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

#: Values each draw takes in NAME_SPACE_JS: more than any list or number range it indexes.
DRAW_VALUES = 65536


@dataclass(slots=True)
class NameSpace:
    example: str
    draws: int  # crypto.getRandomValues values one name takes
    choices: list[int]  # distinct names per draw
    longest: int  # characters, the longest name the probe made
    valid: bool  # every name made was a valid room name

    @property
    def names(self) -> int:
        return math.prod(self.choices)

    @property
    def bits(self) -> float:
        return math.log2(self.names) if self.names else 0.0


@dataclass(slots=True)
class JoinRate:
    seconds: float
    attempts: int
    joined: int
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.joined / self.seconds if self.seconds else 0.0


def measure_name_space(page: Any) -> NameSpace:
    """The name space of the generator that the page's server serves."""
    return NameSpace(**page.evaluate(NAME_SPACE_JS, DRAW_VALUES))


async def measure_join_rate(
    url: str, seconds: float = 5.0, concurrency: int = 8, max_joins: int = 20_000
) -> JoinRate:
    """Joins one address completes per second, each on its own WebSocket.

    The client is as cheap as a sweeper would make it (:func:`_join_once`: one write, one
    read, no library), so that the rate measures the server rather than the probe."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counts: Counter[str] = Counter()
    attempts = 0
    deadline = time.monotonic() + seconds

    async def sweeper(index: int) -> None:
        nonlocal attempts
        while time.monotonic() < deadline and attempts < max_joins:
            attempts += 1
            try:
                answer = await asyncio.wait_for(_join_once(host, port, f"sweep-{index}-{attempts}"), 5)
            except (OSError, TimeoutError, ValueError) as exc:
                answer = type(exc).__name__
            counts[answer] += 1

    start = time.monotonic()
    await asyncio.gather(*(sweeper(i) for i in range(concurrency)))
    elapsed = time.monotonic() - start
    joined = counts.pop("joined", 0)
    return JoinRate(round(elapsed, 3), attempts, joined, dict(counts))


async def _join_once(host: str, port: int, room: str) -> str:
    """Upgrade, send ``join`` (in the same write), read the first answer, drop the socket.
    Returns ``joined``, the error code, or the HTTP status line when the upgrade fails."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        payload = json.dumps({"type": "join", "room": room, "name": "sweeper"}).encode()
        assert len(payload) < 126
        # A masked text frame (RFC 6455 5.2); an all-zero mask leaves the payload as it is.
        frame = bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: c3dlZXBzd2VlcHN3ZWVwIQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode() + frame
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status + " ":
            return status
        _opcode, size = await reader.readexactly(2)
        size &= 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8), "big")
        message = json.loads(await reader.readexactly(size))
        return str(message.get("code", message.get("type", "?")))
    finally:
        writer.transport.abort()


def _human(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds:,.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roomsweep", description=__doc__.split("\n")[0])
    parser.add_argument("--tree", default=None, help="source tree of the server (default: this one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="join-rate window (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="joins in flight (default 8)")
    parser.add_argument("--max-joins", type=int, default=20_000, help="bound on joins (default 20000)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the result here")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser Playwright drives")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tree = str(Path(args.tree).resolve()) if args.tree else None
    # The server's own per-address limits, not the bench's unlimited ones. (A tree older than
    # the budgets has no such limits; "--max-connections-per-ip 64" is its default anyway.)
    server = ServerProcess.start(max_users=15, core=None, root=tree, address_limits=True)
    base = server.url.rstrip("/")
    try:
        served = urllib.request.urlopen(base + "/static/names.js", timeout=5).read()
        expected = (Path(tree or Path(__file__).parents[1]) / "www" / "names.js").read_bytes()
        if served != expected:
            raise SystemExit("the server does not serve the tree's www/names.js")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=_CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(base + "/")
            space = measure_name_space(page)
            browser.close()
        rate = asyncio.run(measure_join_rate(base, args.seconds, args.concurrency, args.max_joins))
    finally:
        server.stop()
    sweep = space.names / rate.per_second if rate.per_second else math.inf
    result = {
        "tree": tree or str(Path(__file__).parents[1]),
        "names": space.names,
        "bits": round(space.bits, 2),
        "name_space": asdict(space),
        "join_rate": {**asdict(rate), "per_second": round(rate.per_second, 1)},
        "sweep_seconds": sweep,
        "sweep": _human(sweep),
    }
    print(f"names: {space.names:,} ({space.bits:.1f} bits; e.g. {space.example!r}; "
          f"the longest the probe made: {space.longest} characters)")
    print(f"joins: {rate.joined} in {rate.seconds:.1f} s = {rate.per_second:,.0f}/s from one "
          f"address (other answers: {rate.errors or 'none'})")
    print(f"sweep of every generated name: {_human(sweep)}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
