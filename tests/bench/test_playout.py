"""bench/playout.py: what a listener can play of one burst, received or recovered from RED."""

from __future__ import annotations

from bench.playout import PlayoutLog
from sfu.red import build_red

ANCHOR = 4_000_000_000  # near the 32-bit wrap: frame numbers must survive it
FRAMES = [bytes([k]) * 30 for k in range(10)]


def red_packet(k: int) -> bytes:
    return build_red(111, FRAMES[k], [(960, FRAMES[k - 1])] if k else [])


def fill(log: PlayoutLog, keep: set[int], *, red: bool, late: dict[int, float] | None = None
         ) -> None:
    """Packets of frames ``keep`` arriving 10 ms after they were sent (or ``late[k]``)."""
    for k in sorted(keep):
        arrival = (late or {}).get(k, k * 0.02 + 0.01)
        pt, payload = (63, red_packet(k)) if red and k else (111, FRAMES[k])
        log.add(arrival, (ANCHOR + 960 * k) & 0xFFFFFFFF, pt, k == 0, payload)


def test_every_frame_received_is_playable() -> None:
    log = PlayoutLog(111, 63)
    fill(log, set(range(10)), red=True)
    count = log.count(10, 0.0, 0.06)
    assert (count.primary, count.recovered, count.playable, count.playable_any) == (10, 0, 10, 10)
    assert count.playable_ratio == 1.0 and count.concealed_ratio == 0.0


def test_a_lost_frame_is_recovered_from_the_next_red_packet_in_time() -> None:
    log = PlayoutLog(111, 63)
    fill(log, set(range(10)) - {3, 7}, red=True)
    count = log.count(10, 0.0, 0.06)
    assert (count.primary, count.recovered, count.playable) == (8, 2, 10)


def test_two_lost_in_a_row_lose_one_frame_and_plain_opus_loses_both() -> None:
    red, plain = PlayoutLog(111, 63), PlayoutLog(111, None)
    fill(red, set(range(10)) - {4, 5}, red=True)
    fill(plain, set(range(10)) - {4, 5}, red=False)
    assert red.count(10, 0.0, 0.06).playable == 9  # frame 4 rode only in packet 5
    assert plain.count(10, 0.0, 0.06).playable == 8


def test_a_copy_after_the_playout_time_is_late_not_playable() -> None:
    log = PlayoutLog(111, 63)
    fill(log, set(range(10)) - {2}, red=True, late={3: 0.3})  # frame 2's only copy: late
    count = log.count(10, 0.0, 0.06)
    assert count.late == 1 and count.playable == 9 and count.playable_any == 10
    assert count.recovered == 1  # frame 3's own packet was late, packet 4 carried it in time


def test_without_the_marker_packet_nothing_is_anchored() -> None:
    log = PlayoutLog(111, 63)
    fill(log, set(range(1, 10)), red=True)
    count = log.count(10, 0.0, 0.06)
    assert count.packets == 9 and count.playable_any == 0


def test_a_red_payload_that_does_not_split_is_counted() -> None:
    log = PlayoutLog(111, 63)
    fill(log, {0}, red=True)
    log.add(0.03, ANCHOR + 960, 63, False, b"\xef\x00")  # block length past the end
    assert log.count(10, 0.0, 0.06).bad_red == 1
