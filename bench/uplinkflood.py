"""``--attack uplink-flood``: the floor holder of one room floods its SRTP uplink.

The attack of issue 9, finding 4, as a hostile member would run it: it joins normally, takes
the floor and then sends valid SRTP audio packets (authenticated with its own keys, so the
server cannot tell them from speech before the cap) far faster than any browser, for a
bounded time. Without an uplink cap the server forwards every one of them to each of the
room's listeners (38.7k packets/s in became 128.5k/s out in a room of 15, and saturated the
worker).

The run's first room is the flooded room: it takes no part in the talk pattern. Its first
member asks for the floor when talking starts and talks normally (20 ms packets on the
shared clock); ``after`` seconds later it adds the flood: ``rate`` packets per second, sent
in batches every millisecond, for ``seconds``; then it talks normally again until the end.
Every other room talks as usual (``rotate`` or ``stress``).

Measured, over the flood (plus one second, like the signaling flood):

* in the flooded room: packets per second each listener received (the figure the cap
  bounds) and what the talker actually sent;
* in every other room: the longest audio gap at any listener, before / during / after, and
  the loss among the packets their talkers sent during the flood;
* the server's own counters from ``/healthz`` before and after (``packets_forwarded``, and
  ``uplink_dropped_packet_rate`` / ``uplink_dropped_byte_rate`` where the server has caps).

Bounded: at most ``ceil(rate * seconds)`` flood packets, over at most ``seconds`` of wall
time (a flood that falls behind drops the batches it is late for instead of bunching them).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .accounting import window_loss
from .server import fetch_healthz

if TYPE_CHECKING:
    from .client import SyntheticClient
    from .scenario import Metronome, Turn
    from .window import GapLog

__all__ = ["UplinkFlood", "UplinkFloodSettings"]

#: One batch of flood packets per this many seconds.
BATCH_SECONDS = 0.001
#: The most a late wake-up of the flood catches up on.
MAX_CATCH_UP = 0.005
#: "During the flood" lasts this long after its last packet.
FLOOD_TAIL = 1.0
#: The server counters the report compares before and after.
COUNTERS = ("packets_forwarded", "datagrams_received", "uplink_dropped_packet_rate",
            "uplink_dropped_byte_rate")


@dataclass(slots=True)
class UplinkFloodSettings:
    rate: float = 10_000.0  # flood packets per second, on top of the talker's 50
    seconds: float = 10.0


class UplinkFlood:
    """The incident; ``await run(t_start, deadline)`` next to the other rooms' talk pattern."""

    def __init__(self, settings: UplinkFloodSettings, after: float, room: Sequence[SyntheticClient],
                 others: Sequence[SyntheticClient], metronome: Metronome, gaps: GapLog,
                 url: str) -> None:
        self.settings = settings
        self.after = after
        self.room = [c for c in room if c.monitor is not None and not c.closed]
        self.others = others
        self.metronome = metronome
        self.gaps = gaps
        self.url = url
        self.talker: SyntheticClient | None = None
        self.error: str | None = None
        self.flood_sent = 0
        self.flood_skipped = 0
        self.start: float | None = None
        self.end: float | None = None
        self.received: list[dict[str, int]] = []  # each listener's packet count, start / end
        self.talker_sent: list[int] = []
        self.seqs: list[dict[int, int]] = []  # the other rooms' talkers' counters, start / end
        self.counters: list[dict[str, Any]] = []

    async def run(self, t_start: float, deadline: float) -> None:
        if len(self.room) < 2:
            self.error = "the flooded room needs a talker and a listener"
            return
        talker = self.talker = self.room[0]
        talker.start_talking()
        try:
            verdict, _ = await talker.request_floor()
        except (TimeoutError, RuntimeError, OSError) as exc:
            talker.stop_talking()
            self.error = f"floor request failed: {exc!r}"
            return
        if verdict != "granted":
            talker.stop_talking()
            self.error = f"floor {verdict}"
            return
        talker.granted()
        try:
            await asyncio.sleep(max(0.0, t_start + self.after - time.perf_counter()))
            self.counters.append(await self._counters())
            self._mark()
            self.start = time.perf_counter()
            await self._flood(talker)
            self.end = time.perf_counter()
            await asyncio.sleep(FLOOD_TAIL)
            self._mark()
            self.counters.append(await self._counters())
            await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        finally:
            talker.stop_talking()
            await asyncio.sleep(0.1)
            await talker.release_floor()

    def _mark(self) -> None:
        label = "uplink_flood_start" if not self.received else "uplink_flood_end"
        self.gaps.cut(label, [c for c in self.others if not c.closed])
        self.received.append({c.name: c.monitor.packets for c in self.room[1:]
                              if c.monitor is not None})
        self.talker_sent.append(self.talker.sent_packets if self.talker else 0)
        self.seqs.append({c.ssrc: c.uplink.seq for c in self.others if c.uplink is not None})

    async def _counters(self) -> dict[str, Any]:
        health = await fetch_healthz(self.url, timeout=5.0)
        media = (health or {}).get("media") or {}
        return {key: media.get(key) for key in COUNTERS} | {"t": time.perf_counter()}

    async def _flood(self, talker: SyntheticClient) -> None:
        """``rate`` packets a second for ``seconds``, in 1 ms batches, on the talker's uplink."""
        s = self.settings
        total = math.ceil(s.rate * s.seconds)
        last = time.perf_counter()
        end = last + s.seconds
        owed = 0.0
        while self.flood_sent < total:
            await asyncio.sleep(BATCH_SECONDS)
            now = time.perf_counter()
            if now >= end:
                return
            # A late wake-up sends at most MAX_CATCH_UP worth: skip the rest, never bunch up.
            elapsed = min(now - last, MAX_CATCH_UP)
            self.flood_skipped += int((now - last - elapsed) * s.rate)
            last = now
            owed += elapsed * s.rate
            count = min(int(owed), total - self.flood_sent)
            owed -= count
            tick = self.metronome.ticks
            for _ in range(count):
                talker.send_frame(tick)
            self.flood_sent += count

    def report(self, turns: Sequence[Turn]) -> dict[str, Any]:
        base: dict[str, Any] = {"kind": "uplink-flood", "after_s": self.after,
                                "settings": asdict(self.settings), "error": self.error,
                                "talker": self.talker.name if self.talker else None}
        if self.start is None or self.end is None or len(self.received) < 2:
            return base
        flood_s = self.end - self.start
        window_s = flood_s + FLOOD_TAIL
        start, end = self.received
        per_listener = [(end[name] - start[name]) / window_s for name in start if name in end]
        sent = self.talker_sent[1] - self.talker_sent[0]
        loss = window_loss(*self.seqs, turns, self.others) if len(self.seqs) == 2 else {}
        counters: dict[str, Any] = {}
        if len(self.counters) == 2:
            before, after = self.counters
            for key in COUNTERS:
                if before[key] is not None and after[key] is not None:
                    counters[key] = after[key] - before[key]
        return {
            **base,
            "flood_s": round(flood_s, 2),
            "flood_packets_sent": self.flood_sent,
            "flood_packets_skipped_late": self.flood_skipped,
            "flood_packets_per_second": round(self.flood_sent / flood_s, 1) if flood_s else None,
            "talker_packets_per_second": round(sent / window_s, 1),
            "listeners": len(per_listener),
            "forwarded_per_listener_per_second": {
                "max": round(max(per_listener), 1) if per_listener else None,
                "median": round(statistics.median(per_listener), 1) if per_listener else None,
            },
            "server_counters_during": counters,
            "other_rooms": len({c.room for c in self.others}),
            "audio_gap_before": self.gaps.between("window_start", "uplink_flood_start"),
            "audio_gap_during": self.gaps.between("uplink_flood_start", "uplink_flood_end"),
            "audio_gap_after": self.gaps.between("uplink_flood_end", "window_end"),
            "loss_during": loss,
        }
