"""Say-again's keeping (sfu/replay.py) and pacing (sfu/replayer.py ``ReplayPlayer``), alone:
the store's bounds by age, bytes and count, and a replay's timing and numbering."""

from __future__ import annotations

import math

import pytest

from sfu.capture import CapturedPacket, Transmission
from sfu.replay import REPLAY_KEEP, ReplayLimits, ReplayStore
from sfu.replayer import ReplayPlayer

#: A 20 ms CELT frame's TOC byte (config 31, one frame): durations come out exact.
TOC_20MS = bytes([31 << 3])


def transmission(talker: str, packets: int, start: float, *, size: int = 100,
                 timestamp: int = 1000, spacing: float = 0.02) -> Transmission:
    """``packets`` packets of ``size`` bytes, 20 ms apart from ``start`` (arrival)."""
    return Transmission("r", talker, 1.7e9 + start, [
        CapturedPacket(100 + i, (timestamp + 960 * i) & 0xFFFFFFFF,
                       TOC_20MS + bytes([i % 256]) * (size - 1), start + spacing * i)
        for i in range(packets)])


def test_limits_refuse_nonsense() -> None:
    for seconds in (0, -1, math.nan, 3601):
        with pytest.raises(ValueError):
            ReplayLimits(seconds)
    with pytest.raises(ValueError):
        ReplayLimits(10, max_bytes=10)


def test_a_transmission_is_kept_for_seconds_after_it_ended() -> None:
    store = ReplayStore(ReplayLimits(30))
    t = transmission("ann", 50, start=100.0)  # ends at 100.98
    assert store.keep("a1", t, now=101.0)
    assert store.get("a1") is t and len(store) == 1 and store.size == 5000
    (item,) = store.items()
    assert (item.id, item.talker, item.started_at) == ("a1", "ann", 1.7e9 + 100.0)
    assert item.duration == pytest.approx(1.0) and not item.truncated
    assert store.next_expiry() == pytest.approx(130.98)
    assert not store.expire(130.9)
    assert store.expire(131.0)
    assert store.get("a1") is None and store.items() == () and store.size == 0
    assert store.next_expiry() is None


def test_the_byte_bound_drops_the_oldest_first() -> None:
    store = ReplayStore(ReplayLimits(60, max_bytes=12_000))
    for n in range(3):  # 5,000 bytes each: the third pushes the first out
        assert store.keep(f"t{n}", transmission("ann", 50, start=100.0 + n), now=103.0)
    assert [item.id for item in store.items()] == ["t1", "t2"]
    assert store.size == 10_000 <= 12_000


def test_one_transmission_over_the_byte_bound_keeps_its_beginning() -> None:
    store = ReplayStore(ReplayLimits(60, max_bytes=4_050))
    assert store.keep("small", transmission("ann", 10, start=1.0), now=2.0)
    assert store.keep("big", transmission("bob", 50, start=2.0), now=3.0)
    assert [item.id for item in store.items()] == ["big"]  # it pushed the other out
    big = store.get("big")
    assert big is not None and len(big.packets) == 40 and big.truncated
    assert store.items()[0].truncated and store.size == 4_000
    assert not store.keep("empty", Transmission("r", "bob", 0.0), now=3.0)  # nothing to keep


def test_at_most_replay_keep_transmissions() -> None:
    store = ReplayStore(ReplayLimits(600, max_bytes=1 << 20))
    for n in range(REPLAY_KEEP + 3):
        store.keep(f"t{n}", transmission("ann", 2, start=float(n)), now=float(n) + 1)
    assert [item.id for item in store.items()] == [f"t{n}" for n in range(3, REPLAY_KEEP + 3)]


def test_a_truncated_transmission_says_so() -> None:
    t = transmission("ann", 5, start=1.0)
    t.truncated = True
    store = ReplayStore(ReplayLimits(60))
    store.keep("cut", t, now=2.0)
    assert store.items()[0].truncated


# ---------------------------------------------------------------------- pacing


class _Nobody:
    peer_id = "bob"


def test_a_replay_keeps_the_original_spacing_and_the_talkers_timestamp_steps() -> None:
    t = transmission("ann", 4, start=50.0, timestamp=0xFFFFF000, spacing=0.02)
    t.packets[2] = CapturedPacket(102, t.packets[2].timestamp, t.packets[2].payload, 50.07)
    item = ReplayStore(ReplayLimits(60))
    item.keep("x", t, now=51.0)
    player = ReplayPlayer(None, _Nobody(), item.items()[0], t.packets, now=200.0,  # type: ignore[arg-type]
                          anchor=7)
    assert player.due == 200.0
    first = player.take(200.0)
    assert [(m, ts) for m, ts, _ in first] == [(0x80, 7)]  # marker on the first packet only
    assert player.due == pytest.approx(200.02)
    assert player.take(200.019) == []
    assert [(m, ts) for m, ts, _ in player.take(200.02)] == [(0, 7 + 960)]
    assert player.due == pytest.approx(200.07)  # the late packet keeps its lateness
    rest = player.take(300.0)
    # timestamps: the talker's own steps, across its 32-bit wrap
    assert [(m, ts) for m, ts, _ in rest] == [(0, 7 + 1920), (0, 7 + 2880)]
    assert [p for _, _, p in first + rest][0] == t.packets[0].payload
    assert player.done and player.due == math.inf and player.take(400.0) == []
