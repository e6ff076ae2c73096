"""Talking through a cluster in the tests: a synthetic talker's packets must reach every
listener (the bench's clients: real ICE, DTLS and SRTP to the owning node's UDP port)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from bench.audio import encode_loop
from bench.client import SyntheticClient
from bench.context import BenchContext

from .helpers import until


@contextlib.asynccontextmanager
async def synthetic_users(room: str, count: int) -> AsyncIterator[list[SyntheticClient]]:
    """``count`` bench users of ``room`` (not joined yet: ``await user.join(url, origin)``)
    on one shared UDP socket; closed afterwards."""
    ctx = BenchContext(encode_loop("tone", 0.4), sample_every=1, shared_socket=True)
    users = [SyntheticClient(ctx, room, f"user {i}") for i in range(count)]
    try:
        yield users
    finally:
        for user in users:
            await user.close()
        if ctx.mux is not None:
            ctx.mux.close()


async def talk_and_hear(talker: SyntheticClient, listeners: Sequence[SyntheticClient],
                        frames: int = 50) -> None:
    """The talker gets the floor, sends ``frames`` packets and lets go; every listener
    received every one of them (waited for with a generous deadline, never timed)."""
    talker.start_talking()
    verdict, _ = await talker.request_floor()
    assert verdict == "granted", verdict
    first = talker.granted()
    for tick in range(frames):
        talker.send_frame(tick)
        await asyncio.sleep(0.02)
    last = talker.stop_talking()
    assert await talker.release_floor()
    await until(lambda: all(received(u, talker) >= set(range(first, last + 1))
                            for u in listeners), f"every listener got {talker.name}'s packets")


def received(listener: SyntheticClient, talker: SyntheticClient) -> set[int]:
    """The talker's sequence numbers this listener received so far (the open run too)."""
    mon = listener.monitor
    if mon is None:
        return set()
    runs = list(mon.runs)
    if mon.run_first >= 0:
        runs.append((mon.cur_csrc, mon.run_first, mon.run_last))
    return {seq for csrc, a, b in runs if csrc == talker.ssrc for seq in range(a, b + 1)}


async def media_back(users: Sequence[SyntheticClient], reason: str) -> None:
    """Every user had a ``media`` ``reset`` for ``reason`` and its re-offer got media up."""
    await until(lambda: all(u.reoffers and u.reoffers[-1].reason == reason
                            and u.reoffers[-1].back_at is not None for u in users),
                f"every member re-offered after {reason}")
