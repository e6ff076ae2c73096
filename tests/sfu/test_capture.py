"""sfu/capture.py: a room's transmission as received, its bounds, and sfu/opus.py's TOC reading."""

from __future__ import annotations

import pytest

from sfu.capture import PACKET_OVERHEAD, CapturedPacket, Transmission, TransmissionCapture
from sfu.opus import SILENCE_FRAME, packet_samples

# A 20 ms CELT packet (config 31, code 0) with 10 bytes of frame data.
FRAME = bytes([31 << 3]) + bytes(10)


def feed(capture: TransmissionCapture, count: int, *, seq: int = 100, ts: int = 5000,
         step: int = 960, payload: bytes = FRAME) -> None:
    for k in range(count):
        capture.add((seq + k) & 0xFFFF, (ts + k * step) & 0xFFFFFFFF, payload, 10.0 + k * 0.02)


def test_a_transmission_keeps_its_packets_in_arrival_order() -> None:
    capture = TransmissionCapture(10.0, 100_000, room_id="ops")
    capture.start("peer-a", 1_700_000_000.5)
    assert capture.active and capture.talker == "peer-a"
    feed(capture, 50)
    done = capture.end()
    assert done is not None and not capture.active
    assert (done.room_id, done.talker, done.started_at) == ("ops", "peer-a", 1_700_000_000.5)
    assert [p.sequence for p in done.packets] == list(range(100, 150))
    assert done.packets[0] == CapturedPacket(100, 5000, FRAME, 10.0)
    assert done.duration == pytest.approx(1.0)  # 50 packets of 20 ms
    assert done.size == 50 * len(FRAME)
    assert not done.truncated


def test_duration_follows_rtp_time_across_wrap_and_reordering() -> None:
    capture = TransmissionCapture(10.0, 100_000)
    capture.start("p", 0.0)
    capture.add(2, 0xFFFFFFFF - 959 + 960, FRAME, 0.0)  # arrives first, is second
    capture.add(1, 0xFFFFFFFF - 959, FRAME, 0.01)
    capture.add(3, 960, FRAME, 0.02)  # wrapped past zero
    done = capture.end()
    assert done is not None
    assert done.duration == pytest.approx(0.06)


def test_nothing_captured_ends_as_none_and_add_without_start_is_ignored() -> None:
    capture = TransmissionCapture(10.0, 100_000)
    capture.add(1, 1, FRAME, 0.0)
    assert capture.end() is None
    capture.start("p", 0.0)
    assert capture.end() is None
    with pytest.raises(RuntimeError):
        capture.start("p", 0.0)
        capture.start("q", 0.0)


def test_the_byte_bound_cuts_the_transmission_and_counts_it() -> None:
    capture = TransmissionCapture(60.0, 10 * (len(FRAME) + PACKET_OVERHEAD))
    capture.start("p", 0.0)
    feed(capture, 25)
    done = capture.end()
    assert done is not None and done.truncated
    assert len(done.packets) == 10 and done.size == 10 * len(FRAME)
    assert (capture.cut_transmissions, capture.cut_packets) == (1, 15)
    capture.start("q", 1.0)  # the next one starts fresh
    feed(capture, 3)
    again = capture.end()
    assert again is not None and not again.truncated and len(again.packets) == 3


def test_the_time_bound_counts_rtp_time_either_way_from_the_first_packet() -> None:
    capture = TransmissionCapture(1.0, 1 << 20)
    capture.start("p", 0.0)
    feed(capture, 60)  # 1.2 s: packets past 1 s of RTP time are cut
    done = capture.end()
    assert done is not None and done.truncated and len(done.packets) == 51
    capture.start("p", 0.0)
    capture.add(1, 1_000_000, FRAME, 0.0)
    capture.add(2, 1_000_000 - 48_001, FRAME, 0.0)  # a jump back beyond the bound
    capture.add(3, 1_000_960, FRAME, 0.0)  # cut too: a cut transmission stays cut
    done = capture.end()
    assert done is not None and done.truncated and [p.sequence for p in done.packets] == [1]


def test_a_huge_timestamp_jump_cannot_stretch_a_transmission() -> None:
    capture = TransmissionCapture(5.0, 1 << 20)
    capture.start("p", 0.0)
    capture.add(1, 0, FRAME, 0.0)
    capture.add(2, 0x7FFFFFFF, FRAME, 0.0)
    done = capture.end()
    assert done is not None and done.truncated and done.duration == pytest.approx(0.02)


@pytest.mark.parametrize("bad", [(0.0, 10), (1.0, 0), (float("nan"), 10)])
def test_bounds_must_be_positive(bad: tuple[float, int]) -> None:
    with pytest.raises(ValueError):
        TransmissionCapture(*bad)


def test_an_empty_transmission_has_no_duration() -> None:
    assert Transmission("r", "p", 0.0).duration == 0.0


@pytest.mark.parametrize(
    ("payload", "samples"),
    [
        (bytes([31 << 3, 1]), 960),  # CELT 20 ms, one frame
        (bytes([(16 << 3) | 1, 1, 2]), 240),  # CELT 2.5 ms, two frames (code 1)
        (bytes([(3 << 3) | 2, 1, 2]), 5760),  # SILK 60 ms, two frames (code 2): 120 ms
        (bytes([(15 << 3) | 3, 3]), 2880),  # hybrid 20 ms, code 3 with three frames
        (bytes([(3 << 3) | 3, 3]), 0),  # three 60 ms frames: over 120 ms, invalid
        (bytes([(31 << 3) | 3]), 0),  # code 3 without its count byte
        (bytes([(31 << 3) | 3, 0]), 0),  # zero frames
        (b"", 0),
        (SILENCE_FRAME, 960),
    ],
)
def test_packet_samples_reads_the_toc_byte(payload: bytes, samples: int) -> None:
    assert packet_samples(payload) == samples
