"""Splitting expected packets: by a time window (clip) and by media outages (carve)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.accounting import (
    MAX_NOTICE_FRAMES,
    OPEN_END,
    OutageMark,
    account,
    carve,
    clip,
    outage_holes,
)


def test_clip_keeps_what_was_sent_inside_the_window() -> None:
    expected = [(1, 10, 50), (2, 100, 120), (3, 5, 9)]
    assert clip(expected, {1: (20, 29), 2: (0, 99)}) == [(1, 20, 29)]


def test_carve_splits_around_holes() -> None:
    outside, inside = carve([(1, 0, 99), (2, 0, 9)], [(1, 10, 19), (1, 50, 59), (1, 55, 200)])
    assert outside == [(1, 0, 9), (1, 20, 49), (2, 0, 9)]
    assert inside == [(1, 10, 19), (1, 50, 99)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(0, 200), st.integers(0, 60)), max_size=6),
    st.lists(st.tuples(st.integers(1, 3), st.integers(0, 250), st.integers(-5, 80)), max_size=6),
)
def test_carve_partitions_every_expected_packet(raw: list, raw_holes: list) -> None:
    expected = [(c, a, a + n) for c, a, n in raw]
    holes = [(c, a, a + n) for c, a, n in raw_holes]
    outside, inside = carve(expected, holes)

    def count(ranges):
        return sum(b - a + 1 for _, a, b in ranges)

    assert count(outside) + count(inside) == count(expected)
    for c, a, b in inside:  # every packet inside is in some hole
        for seq in range(a, b + 1):
            assert any(h[0] == c and h[1] <= seq <= h[2] for h in holes)
    for c, a, b in outside:
        for seq in range(a, b + 1):
            assert not any(h[0] == c and h[1] <= seq <= h[2] for h in holes)


def test_an_outage_starts_where_the_listener_stopped_hearing_the_talker() -> None:
    # talker 7 was heard up to 140 on the old session; the reset came when it was at 150
    # (the worker died ~200 ms before the reset arrived); back when it was at 200
    runs = [(7, 100, 140)]
    marks = [OutageMark(1, {7: 150, 8: 30}, {7: 200, 8: 30})]
    assert outage_holes(runs, marks) == [(7, 141, 199)]  # talker 8 sent nothing meanwhile
    # what the listener got after: from 200 on; everything between is outage, not loss
    expected = [(7, 100, 260)]
    ordinary, inside = carve(expected, outage_holes(runs, marks))
    got = runs + [(7, 200, 260)]
    assert account(got, [], ordinary).missing == 0
    assert account(got, [], inside).missing == 59


def test_an_old_silence_is_not_taken_for_the_outage() -> None:
    # the listener last heard talker 7 long before the reset: that gap is ordinary loss
    heard = 150 - MAX_NOTICE_FRAMES - 50
    marks = [OutageMark(1, {7: 150}, None)]
    assert outage_holes([(7, 100, heard)], marks) == [(7, 150, OPEN_END)]
