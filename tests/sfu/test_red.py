"""sfu/red.py: RFC 2198 payloads of Opus, checked, split, built and re-tagged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.red import MAX_REDUNDANT, RedError, build_red, red_layout, retag_red, split_red

blocks = st.lists(
    st.tuples(st.integers(0, 0x3FFF), st.binary(min_size=0, max_size=300)),
    max_size=MAX_REDUNDANT,
)


def test_chromium_shape_one_redundant_block_of_the_previous_frame() -> None:
    previous, current = b"\x01" * 70, b"\x02" * 75
    payload = build_red(111, current, [(960, previous)])
    # F=1, PT 111 | offset 960 (14 bits) | length 70 (10 bits) ; F=0, PT 111
    assert payload[:5] == bytes([0x80 | 111, 960 >> 6, ((960 & 0x3F) << 2) | 0, 70, 111])
    assert red_layout(payload, 111) == (1, 5 + 70)
    assert payload[5 + 70:] == current
    assert split_red(payload, 111) == [(960, previous), (0, current)]


def test_a_red_packet_with_only_a_primary_block() -> None:
    payload = build_red(111, b"opus")
    assert payload == bytes([111]) + b"opus"
    assert red_layout(payload, 111) == (0, 1)


@given(blocks, st.binary(min_size=1, max_size=400), st.integers(0, 127))
def test_build_then_split_round_trips(redundant: list[tuple[int, bytes]], primary: bytes,
                                      pt: int) -> None:
    payload = build_red(pt, primary, redundant)
    count, start = red_layout(payload, pt)
    assert count == len(redundant) and payload[start:] == primary
    assert split_red(payload, pt) == [*redundant, (0, primary)]


@given(blocks, st.binary(min_size=1, max_size=100))
def test_retag_sets_every_block_pt_and_nothing_else(redundant: list[tuple[int, bytes]],
                                                    primary: bytes) -> None:
    payload = build_red(111, primary, redundant)
    retagged = retag_red(payload, len(redundant), 109)
    assert split_red(retagged, 109) == split_red(payload, 111)
    assert len(retagged) == len(payload)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "run past"),
        (bytes([0x80 | 111, 0, 0]), "truncated"),  # a redundant header cut short
        (bytes([0x80 | 111, 15, 0, 10, 111]) + b"x" * 5, "lengths run past"),  # 10 > 5 bytes
        (bytes([0x80 | 111, 15, 0, 2, 111]) + b"ab", "no primary"),  # primary empty
        (bytes([111]), "no primary"),
        (bytes([0x80 | 111, 15, 0, 0]), "run past"),  # no primary header at all
        (bytes([0x80 | 0, 15, 0, 1, 111]) + b"ab", "not Opus"),  # PCMU inside
        (bytes([13]) + b"comfort noise", "not Opus"),
        (bytes([0x80 | 111, 15, 0, 0] * (MAX_REDUNDANT + 1) + [111]) + b"p", "more than"),
    ],
)
def test_malformed_red_is_refused_with_a_reason(payload: bytes, why: str) -> None:
    with pytest.raises(RedError, match=why):
        red_layout(payload, 111)


@given(st.binary(max_size=64))
def test_any_bytes_give_a_layout_inside_the_payload_or_red_error(payload: bytes) -> None:
    try:
        count, start = red_layout(payload, 111)
    except RedError:
        return
    assert 0 <= count <= MAX_REDUNDANT and 4 * count + 1 <= start < len(payload)


def test_build_refuses_what_rfc_2198_cannot_carry() -> None:
    with pytest.raises(ValueError, match="14 bits"):
        build_red(111, b"p", [(0x4000, b"r")])
    with pytest.raises(ValueError, match="10-bit"):
        build_red(111, b"p", [(960, b"r" * 1024)])
    with pytest.raises(ValueError, match="empty"):
        build_red(111, b"")
