"""Talk patterns (who presses when) and the shared 20 ms sending clock.

* :class:`Metronome`: one timer for all talkers. Each room gets a phase slot inside the
  20 ms frame period, so R rooms' packets reach the server spread out like independent
  browsers', not in one synchronized burst (which would make latency grow with R for a
  reason no real deployment has). Late wake-ups are caught up (bounded) so every talker
  still sends 50 packets/s; lateness is recorded, because a late bench is a bench problem.
* :func:`rotate`: PTT turns rotating through the room: press (start sending at once, as the
  page does, while the request travels), wait for the grant (floor access time), talk
  2-5 s, stop, release, short gap. Exercises the floor, pre-roll and talker switching.
* :func:`stress`: several members press at once; one is granted, the others queue (or are
  denied when the server does not queue) and talk when their grant arrives.

Each completed turn is a :class:`Turn`: the talker sequence numbers every listener of the
room must have received (from the first packet sent after the grant arrived to the last
one sent before release).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import websockets

from .client import SyntheticClient

__all__ = ["Metronome", "TalkSettings", "Turn", "rotate", "stress"]

FRAME_SECONDS = 0.02


@dataclass(slots=True)
class TalkSettings:
    talk_min: float = 2.0
    talk_max: float = 5.0
    gap_min: float = 0.2
    gap_max: float = 0.6
    #: pause between the last packet and floor_release, so that the last packets reach the
    #: server before the release does (they travel on different sockets)
    release_delay: float = 0.1
    pressers: int = 3
    request_timeout: float = 10.0


@dataclass(slots=True)
class Turn:
    """One granted talk turn."""

    room: str
    talker: SyntheticClient
    first_seq: int
    last_seq: int
    press_t: float
    grant_t: float
    release_t: float
    queued: bool
    listeners: list[SyntheticClient] = field(default_factory=list)

    @property
    def access_ms(self) -> float:
        return (self.grant_t - self.press_t) * 1000


class Metronome:
    """Calls ``send_frame(tick)`` on every talking client every 20 ms, room by room in
    phase slots."""

    def __init__(self, rooms: Sequence[Sequence[SyntheticClient]], slots: int = 10) -> None:
        self.slots = max(1, min(slots, len(rooms) or 1))
        self.groups: list[list[SyntheticClient]] = [[] for _ in range(self.slots)]
        for i, members in enumerate(rooms):
            self.groups[i % self.slots].extend(members)
        self.ticks = 0
        self.late_wakeups = 0
        self.catch_up_frames = 0
        self.skipped_frames = 0
        self.max_late_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        period = FRAME_SECONDS / self.slots
        t0 = time.perf_counter()
        step = 0  # the next slot-step to run
        while not self._stop:
            due = t0 + step * period
            delay = due - time.perf_counter()
            await asyncio.sleep(max(0, delay))
            now = time.perf_counter()
            late = now - due
            if late > period:
                self.late_wakeups += 1
                self.max_late_ms = max(self.max_late_ms, late * 1000)
            latest = int((now - t0) / period)
            backlog = latest - step
            if backlog > 5 * self.slots:  # more than 5 frames behind: skip, do not flood
                self.skipped_frames += backlog - 5 * self.slots
                step = latest - 5 * self.slots
            if latest > step:
                self.catch_up_frames += latest - step
            while step <= latest:
                tick, slot = divmod(step, self.slots)
                self.ticks = tick
                for client in self.groups[slot]:
                    if client.talking:
                        client.send_frame(tick)
                step += 1


async def _talk(
    client: SyntheticClient,
    members: Sequence[SyntheticClient],
    settings: TalkSettings,
    rng: random.Random,
    deadline: float,
    turns: list[Turn],
    stats: dict[str, list[float]],
) -> None:
    """One turn; a client whose session broke is recorded, never fatal to the run."""
    try:
        await _talk_turn(client, members, settings, rng, deadline, turns, stats)
    except (RuntimeError, OSError, websockets.WebSocketException) as exc:
        client.stop_talking()
        stats.setdefault("floor_errors", []).append(1.0)
        client.errors.append({"code": "turn_failed", "message": repr(exc)})


async def _talk_turn(
    client: SyntheticClient,
    members: Sequence[SyntheticClient],
    settings: TalkSettings,
    rng: random.Random,
    deadline: float,
    turns: list[Turn],
    stats: dict[str, list[float]],
) -> None:
    """One member's press -> (queue) -> grant -> talk -> release."""
    press_t = time.perf_counter()
    client.start_talking()
    try:
        verdict, reply_t = await client.request_floor(settings.request_timeout)
    except (TimeoutError, RuntimeError, OSError) as exc:
        client.stop_talking()
        stats.setdefault("floor_errors", []).append(1.0)
        client.errors.append({"code": "floor_request_failed", "message": repr(exc)})
        return
    queued = False
    if verdict == "denied":
        client.stop_talking()
        stats.setdefault("denied", []).append((reply_t - press_t) * 1000)
        return
    if verdict == "queued":
        queued = True
        client.stop_talking()  # a page stops sending while it waits in the queue
        waiting = client.expect_grant()
        remaining = deadline - time.perf_counter()
        try:
            msg, reply_t = await asyncio.wait_for(waiting, max(0.05, remaining))
        except (TimeoutError, RuntimeError, OSError):
            await client.release_floor()  # leave the queue
            return
        if msg.get("type") != "floor_granted":
            return
        stats.setdefault("queue_wait_ms", []).append((reply_t - press_t) * 1000)
        client.start_talking()  # sends from the next tick, after granted() below
    else:
        stats.setdefault("floor_access_ms", []).append((reply_t - press_t) * 1000)
    grant_t = reply_t
    # Everything sent from now on was sent after the server granted us: it must arrive.
    first_seq = client.granted()
    listeners = [m for m in members if m is not client and m.monitor is not None and not m.closed]
    talk = rng.uniform(settings.talk_min, settings.talk_max)
    await asyncio.sleep(max(0.0, min(talk, deadline - time.perf_counter())))
    last_seq = client.stop_talking()
    await asyncio.sleep(settings.release_delay)
    release_t = time.perf_counter()
    await client.release_floor()
    listeners = [m for m in listeners if not m.closed]
    turns.append(
        Turn(client.room, client, first_seq, last_seq, press_t, grant_t, release_t, queued, listeners)
    )


async def rotate(
    members: Sequence[SyntheticClient],
    settings: TalkSettings,
    rng: random.Random,
    deadline: float,
    turns: list[Turn],
    stats: dict[str, list[float]],
) -> None:
    """PTT turns rotating through the room until ``deadline`` (perf_counter seconds)."""
    order = list(members)
    if len(order) < 2:
        return
    i = rng.randrange(len(order))
    await asyncio.sleep(rng.uniform(0, settings.gap_max))  # rooms do not start in lockstep
    for _ in range(100_000):
        if time.perf_counter() + settings.talk_min / 2 >= deadline:
            return
        talker = order[i % len(order)]
        i += 1
        if talker.closed or talker.monitor is None:
            continue
        await _talk(talker, order, settings, rng, deadline, turns, stats)
        await asyncio.sleep(rng.uniform(settings.gap_min, settings.gap_max))


async def stress(
    members: Sequence[SyntheticClient],
    settings: TalkSettings,
    rng: random.Random,
    deadline: float,
    turns: list[Turn],
    stats: dict[str, list[float]],
) -> None:
    """Rounds where ``settings.pressers`` members press at the same moment."""
    order = [m for m in members]
    if len(order) < 2:
        return
    await asyncio.sleep(rng.uniform(0, settings.gap_max))
    for _ in range(100_000):
        if time.perf_counter() + settings.talk_min / 2 >= deadline:
            return
        live = [m for m in order if not m.closed and m.monitor is not None]
        if len(live) < 2:
            return
        pressers = rng.sample(live, min(settings.pressers, len(live) - 1))
        await asyncio.gather(
            *(_talk(p, order, settings, rng, deadline, turns, stats) for p in pressers)
        )
        await asyncio.sleep(rng.uniform(settings.gap_min, settings.gap_max))
