"""sfu/ogg.py: Ogg Opus files from captured RTP payloads, read back with an independent
parser (tests/oggopus.py) and decoded with opuslib."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.capture import CapturedPacket
from sfu.ogg import PRE_SKIP, ogg_crc, ogg_opus, opus_tags, timeline
from sfu.opus import packet_samples

from ..oggopus import crc_reference, decode, frequency, parse, read_pages, rms

TAGS = {"ROOM": "ops", "TALKER": "Zoë", "DATE": "2026-12-01T02:30:00.000Z"}


@pytest.fixture(scope="module")
def tone() -> list[bytes]:
    """Two seconds of a 440 Hz tone, Opus-encoded as a browser would (20 ms frames)."""
    audio = pytest.importorskip("bench.audio")
    return audio.encode_loop("tone", 2.0)


def captured(frames: list[bytes], *, seq: int = 65500, ts: int = 4_294_960_000,
             skip: frozenset[int] = frozenset()) -> list[CapturedPacket]:
    """RTP as received: sequence numbers and timestamps that wrap on the way."""
    return [CapturedPacket((seq + k) & 0xFFFF, (ts + 960 * k) & 0xFFFFFFFF, frame, k * 0.02)
            for k, frame in enumerate(frames) if k not in skip]


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=600))
def test_the_fast_crc_is_oggs_crc(data: bytes) -> None:
    assert ogg_crc(data) == crc_reference(data)


def test_the_crc_of_a_known_vector() -> None:
    # Ogg's CRC is CRC-32/CKSUM's without its final XOR: the catalogue's check value of
    # "123456789" for CKSUM is 0x765E7680, so Ogg's is 0x765E7680 ^ 0xFFFFFFFF.
    assert ogg_crc(b"123456789") == 0x89A1897F


def test_a_transmission_becomes_a_file_that_decodes_to_the_same_tone(tone: list[bytes]) -> None:
    data = ogg_opus(captured(tone), TAGS, serial=0x1234)
    info, samples = decode(data)
    assert (info.channels, info.pre_skip, info.input_rate) == (1, PRE_SKIP, 48000)
    assert info.vendor == "walkie" and info.tags == TAGS
    assert {p.serial for p in info.pages} == {0x1234}
    assert info.audio == tone  # no transcoding: the payloads as they came
    assert info.final_granule == 960 * len(tone)
    assert len(samples) == 960 * len(tone) - PRE_SKIP  # 2 s less the pre-skip
    steady = samples[9600:-9600]  # the middle, away from the encoder's start
    assert frequency(steady) == pytest.approx(440, abs=5)
    assert rms(steady) > 3000


def test_pages_carry_whole_packets_and_granules_at_their_last_packet(tone: list[bytes]) -> None:
    pages = read_pages(ogg_opus(captured(tone), TAGS))
    audio_pages = pages[2:]
    assert len(audio_pages) == 2  # a page closes once it holds a second of audio
    total = 0
    for page in audio_pages:
        total += sum(packet_samples(p) for p in page.packets)
        assert page.granule == total
        assert len(page.lacing) <= 255


def test_lost_packets_are_concealed_and_the_timeline_kept(tone: list[bytes]) -> None:
    lost = frozenset(range(30, 36)) | {70}  # 7 packets lost on the way
    data = ogg_opus(captured(tone, skip=lost), TAGS)
    info, samples = decode(data)
    assert info.final_granule == 960 * len(tone)  # as long as the talk was
    assert len(samples) == 960 * len(tone) - PRE_SKIP
    fills = [p for p in info.audio if len(p) == 2 and p[0] & 3 == 3]
    assert [p[1] for p in fills] == [6, 1]  # code 3, zero-length frames: 6 lost, then 1
    # each shaped after the packet before its gap (RFC 7845 §4.1)
    assert [p[0] >> 3 for p in fills] == [tone[29][0] >> 3, tone[69][0] >> 3]
    assert frequency(samples[9600:28000]) == pytest.approx(440, abs=5)


def test_a_gap_that_is_no_multiple_of_the_frame_is_filled_with_shorter_frames() -> None:
    frame = bytes([31 << 3]) + bytes(20)  # CELT 20 ms
    packets = [CapturedPacket(1, 0, frame, 0.0), CapturedPacket(2, 960 + 360, frame, 0.0)]
    audio = timeline(packets)
    assert [n for _, n in audio] == [960, 360, 960]
    fill = audio[1][0]
    assert fill == bytes([(28 << 3) | 3, 3])  # three 2.5 ms CELT frames, all lost
    info = parse(ogg_opus(packets, TAGS))
    assert info.final_granule == 960 + 360 + 960


def test_reordered_and_duplicated_packets_make_the_same_file(tone: list[bytes]) -> None:
    packets = captured(tone[:20])
    shuffled = packets[:]
    random.Random(3).shuffle(shuffled)
    shuffled += packets[5:8]  # duplicates
    assert ogg_opus(shuffled, TAGS) == ogg_opus(packets, TAGS)


def test_a_timestamp_that_goes_back_never_rewinds_the_granule() -> None:
    frame = bytes([31 << 3]) + bytes(20)
    packets = [CapturedPacket(1, 9600, frame, 0.0), CapturedPacket(2, 0, frame, 0.0),
               CapturedPacket(3, 1920, frame, 0.0)]
    assert [n for _, n in timeline(packets)] == [960, 960, 960]


def test_long_packets_are_laced_across_255_byte_segments() -> None:
    sizes = [254, 255, 256, 600, 1275]
    packets = [CapturedPacket(k, 960 * k, bytes([31 << 3]) + os.urandom(n - 1), 0.0)
               for k, n in enumerate(sizes)]
    info = parse(ogg_opus(packets, TAGS))
    assert info.audio == [p.payload for p in packets]
    lacing = info.pages[2].lacing
    assert lacing[:5] == [254, 255, 0, 255, 1]


def test_a_page_never_holds_more_than_255_lacing_values() -> None:
    frame = bytes([16 << 3]) + bytes(3)  # 2.5 ms: 400 packets are one second
    packets = [CapturedPacket(k, 120 * k, frame, 0.0) for k in range(400)]
    pages = read_pages(ogg_opus(packets, TAGS))
    assert [len(p.packets) for p in pages[2:]] == [255, 145]
    assert pages[-1].granule == 400 * 120


def test_the_channel_count_follows_the_first_packets_stereo_flag() -> None:
    stereo = bytes([(31 << 3) | 0x04]) + bytes(30)
    assert parse(ogg_opus([CapturedPacket(1, 0, stereo, 0.0)], TAGS)).channels == 2


def test_invalid_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError):
        ogg_opus([], TAGS)
    with pytest.raises(ValueError):
        ogg_opus([CapturedPacket(1, 0, b"", 0.0)], TAGS)  # no TOC: not Opus
    with pytest.raises(ValueError):
        opus_tags({"A=B": "x"})
    not_opus = CapturedPacket(2, 960, bytes([(3 << 3) | 3, 3]), 0.0)  # 180 ms: invalid
    good = CapturedPacket(1, 0, bytes([31 << 3, 1]), 0.0)
    assert parse(ogg_opus([good, not_opus], TAGS)).audio == [good.payload]
