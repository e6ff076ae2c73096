"""Tests for sfu/rtp.py: the RTP codec, the hot-path reader and the per-listener rewriter.

Cross-checked against real Chromium packets and against aiortc's independent RTP codec.
"""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from aiortc.rtp import pack_header_extensions, unpack_header_extensions
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.rtp import (
    AUDIO_LEVEL_URI,
    MID_URI,
    DownlinkRewriter,
    RtpError,
    RtpPacket,
    build_rtp,
    parse_rtp,
    read_uplink,
)

# Decrypted RTP that Chromium 156 sent to an aiortc peer (fake microphone; the answer mapped
# ssrc-audio-level to id 1 and sdes:mid to id 4). Captured by hooking aiortc's
# RTCDtlsTransport._handle_rtp_data after SRTP unprotect, in a loopback-only namespace.
# The first packet of the stream: marker set, MID "0" (id 4) and level 0xff (V=1, -127 dBov).
CHROME_FIRST = bytes.fromhex(
    "90ef5b2c57c64402bf3b8429bede0001403010ff780be4c136ecc58d8c49469904c5aaed92e7634a"
    "3a1898ee62cb60ff6c1b2900"
)
# Later in the same stream: Chrome stops sending the MID once it is acknowledged; level only.
CHROME_LATER = bytes.fromhex(
    "906f5cba57cc1882bf3b8429bede000110b00000f89ab6467e51e35fa997639f204138841475a314"
    "93b634f156f3f73725309bd41eeacb381bb4b59dd57aa99520aa538c1e11ed54876073aab692d79b"
    "70a3558e084fbc5156fa6ce5a578b6"
)

LISTENER = 0x11223344
ALICE = 0xA11CE000
BOB = 0x0B0B0B0B


def _ext_map(audio_level_id: int | None, mid_ext_id: int | None) -> HeaderExtensionsMap:
    """aiortc's extension map for one listener, to parse our output independently."""
    params = RTCRtpParameters()
    if audio_level_id:
        params.headerExtensions.append(
            RTCRtpHeaderExtensionParameters(id=audio_level_id, uri=AUDIO_LEVEL_URI)
        )
    if mid_ext_id:
        params.headerExtensions.append(RTCRtpHeaderExtensionParameters(id=mid_ext_id, uri=MID_URI))
    m = HeaderExtensionsMap()
    m.configure(params)
    return m


# --------------------------------------------------------------------------- parse / build


def test_parse_real_chrome_packets() -> None:
    first = parse_rtp(CHROME_FIRST)
    assert first.marker and first.payload_type == 111
    assert (first.sequence, first.timestamp, first.ssrc) == (0x5B2C, 0x57C64402, 0xBF3B8429)
    assert first.csrcs == [] and first.padding == 0
    assert first.extensions == {4: b"0", 1: b"\xff"}
    assert first.payload == CHROME_FIRST[20:]
    later = parse_rtp(CHROME_LATER)
    assert not later.marker and later.extensions == {1: b"\xb0"}


def test_read_uplink_real_chrome_packets() -> None:
    assert read_uplink(CHROME_FIRST, 1) == (0xBF3B8429, 0x5B2C, 0x57C64402, 0xFF, 20, 52)
    assert read_uplink(CHROME_LATER, 1) == (0xBF3B8429, 0x5CBA, 0x57CC1882, 0xB0, 20, 95)
    # Not negotiated, or negotiated under another id: no level.
    assert read_uplink(CHROME_LATER, 0)[3] == -1
    assert read_uplink(CHROME_LATER, 2)[3] == -1
    # The MID element is there but is not the level.
    assert read_uplink(CHROME_FIRST, 4)[3] == ord("0")


def test_build_exact_bytes() -> None:
    pkt = RtpPacket(
        payload_type=111,
        sequence=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0xCAFEBABE,
        marker=True,
        csrcs=[7],
        extensions={1: b"\x85", 3: b"ab"},
        payload=b"opus",
        padding=3,
    )
    expected = (
        bytes((0xB1, 0xEF))  # V=2 P=1 X=1 CC=1, M=1 PT=111
        + bytes.fromhex("1234deadbeefcafebabe00000007")
        + bytes.fromhex("bede0002")  # one-byte form, 2 words
        + bytes((0x10, 0x85, 0x31)) + b"ab" + b"\x00\x00\x00"
        + b"opus"
        + b"\x00\x00\x03"
    )
    assert build_rtp(pkt) == expected
    assert parse_rtp(expected) == pkt


def test_two_byte_form_when_needed() -> None:
    long_value = bytes(range(17))
    for ext in ({15: b"x"}, {1: long_value}, {2: b""}):
        data = build_rtp(RtpPacket(payload_type=96, extensions=ext, payload=b"p"))
        assert data[12:14] == b"\x10\x00"
        assert parse_rtp(data).extensions == ext
        profile, words = struct.unpack_from("!HH", data, 12)
        assert unpack_header_extensions(profile, data[16 : 16 + 4 * words]) == list(ext.items())


def test_extension_padding_and_id15_terminator() -> None:
    # one-byte block: padding octet, element 2 (2 bytes), id 0 with a length (padding, as
    # libwebrtc does), element 5, then id 15 which ends processing (RFC 8285 §4.2): what
    # follows it would be malformed if it were read.
    block = bytes((0x00, 0x21, 0xAA, 0xBB, 0x03, 0x50, 0x7F, 0xF0, 0x10, 0x99, 0x00, 0x00))
    data = bytes.fromhex("906f00010000000100000002bede0003") + block + b"pay"
    pkt = parse_rtp(data)
    assert pkt.extensions == {2: b"\xaa\xbb", 5: b"\x7f"}
    assert pkt.payload == b"pay"
    assert read_uplink(data, 5)[3] == 0x7F
    assert read_uplink(data, 1)[3] == -1  # after the terminator: not seen
    # two-byte block: padding, id 1 len 0, id 9 len 2; unknown profile ignored entirely.
    two = bytes((0x00, 0x01, 0x00, 0x09, 0x02, 0x44, 0x55, 0x00))
    data2 = bytes.fromhex("906f00010000000100000002100f0002") + two + b"pay"
    assert parse_rtp(data2).extensions == {1: b"", 9: b"\x44\x55"}
    assert read_uplink(data2, 1)[3] == -1  # empty element: no level byte
    assert read_uplink(data2, 9)[3] == 0x44
    data3 = bytes.fromhex("906f00010000000100000002abcd0001ffffffff") + b"pay"
    assert parse_rtp(data3).extensions == {}
    assert read_uplink(data3, 15) == (2, 1, 1, -1, 20, 23)


def test_first_occurrence_of_an_id_wins() -> None:
    data = bytes.fromhex("906f00010000000100000002bede0001") + bytes((0x10, 1, 0x10, 2)) + b"p"
    assert parse_rtp(data).extensions == {1: b"\x01"}
    assert read_uplink(data, 1)[3] == 1


def test_padding_is_excluded_from_payload() -> None:
    data = build_rtp(RtpPacket(payload_type=111, payload=b"frame", padding=4))
    assert read_uplink(data, 1)[4:] == (12, 17)
    assert parse_rtp(data).payload == b"frame"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes.fromhex("406f000100000001000000020000"),  # version 1
        bytes.fromhex("c06f00010000000100000002"),  # version 3
        bytes.fromhex("816f00010000000100000002"),  # CC=1, no CSRC
        bytes.fromhex("906f00010000000100000002bede"),  # extension header cut
        bytes.fromhex("906f00010000000100000002bede0002" "10ff0000"),  # block overruns
        bytes.fromhex("906f00010000000100000002bede0001" "1fff0000"),  # element overruns
        bytes.fromhex("906f000100000001000000021000000101050000"),  # two-byte overruns
        bytes.fromhex("906f000100000001000000021000000100000001"),  # two-byte hdr cut
        bytes.fromhex("a06f0001000000010000000200"),  # padding count 0
        bytes.fromhex("a06f00010000000100000002aabb04"),  # padding eats the header
        bytes.fromhex("b06f00010000000100000002bede000110ff000004"),  # padding eats the ext
    ],
)
def test_malformed_packets_rejected_by_both_readers(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)
    with pytest.raises(RtpError):
        read_uplink(data, 1)


def test_build_rejects_unencodable() -> None:
    for pkt in (
        RtpPacket(csrcs=list(range(16))),
        RtpPacket(payload_type=128),
        RtpPacket(sequence=1 << 16),
        RtpPacket(padding=256),
        RtpPacket(extensions={256: b"x"}),
        RtpPacket(extensions={1: bytes(256)}),
    ):
        with pytest.raises(RtpError):
            build_rtp(pkt)


def test_interop_with_aiortc_codec() -> None:
    """Our bytes parse in aiortc, and aiortc's bytes parse in ours, identically."""
    m = _ext_map(3, 9)
    theirs = AiortcRtpPacket(payload_type=111, marker=1, sequence_number=65535,
                             timestamp=4294967295, ssrc=123, payload=b"hello")
    theirs.csrc = [1, 2]
    theirs.extensions.audio_level = (True, 42)
    theirs.extensions.mid = "audio"
    theirs.padding_size = 5
    data = theirs.serialize(m)
    ours = parse_rtp(data)
    assert (ours.payload_type, ours.marker, ours.sequence, ours.timestamp, ours.ssrc) == (
        111, True, 65535, 4294967295, 123)
    assert ours.csrcs == [1, 2] and ours.payload == b"hello" and ours.padding == 5
    assert ours.extensions == {3: bytes((0x80 | 42,)), 9: b"audio"}
    assert read_uplink(data, 3)[3] == 0x80 | 42
    back = AiortcRtpPacket.parse(build_rtp(ours), m)
    assert back.extensions.audio_level == (True, 42) and back.extensions.mid == "audio"
    assert back.csrc == [1, 2] and back.payload == b"hello"


# --------------------------------------------------------------------------- hypothesis

ext_ids = st.integers(1, 255)
ext_values = st.binary(min_size=0, max_size=40)
valid_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extensions=st.dictionaries(
        st.one_of(st.integers(1, 14), ext_ids),
        st.one_of(st.binary(min_size=1, max_size=16), ext_values),
        max_size=6,
    ),
    payload=st.binary(max_size=200),
    padding=st.integers(0, 255),
)


@given(valid_packets, st.integers(0, 255))
@settings(max_examples=300, deadline=None)
def test_build_parse_round_trip(pkt: RtpPacket, want: int) -> None:
    data = build_rtp(pkt)
    assert parse_rtp(data) == pkt
    ssrc, seq, ts, level, start, end = read_uplink(data, want)
    assert (ssrc, seq, ts) == (pkt.ssrc, pkt.sequence, pkt.timestamp)
    assert data[start:end] == pkt.payload
    value = pkt.extensions.get(want, b"") if want else b""
    assert level == (value[0] if value else -1)
    # aiortc's independent RFC 8285 reader sees the same elements.
    if pkt.extensions:
        off = 12 + 4 * len(pkt.csrcs)
        profile, words = struct.unpack_from("!HH", data, off)
        elements = unpack_header_extensions(profile, data[off + 4 : off + 4 + 4 * words])
        assert dict(elements) == pkt.extensions


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    """A valid packet, then truncated and/or with a few octets overwritten: near misses."""
    data = bytearray(build_rtp(draw(valid_packets)))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


rtp_like_bytes = st.one_of(
    st.binary(max_size=120),
    st.builds(lambda b0, rest: bytes((b0,)) + rest, st.integers(0x80, 0xBF), st.binary(max_size=80)),
    mutated_packets(),
)


@given(rtp_like_bytes, st.integers(0, 255))
@settings(max_examples=1500, deadline=None)
def test_arbitrary_bytes_raise_only_rtp_error_and_readers_agree(data: bytes, want: int) -> None:
    try:
        pkt = parse_rtp(data)
    except RtpError:
        pkt = None
    try:
        fast = read_uplink(data, want)
    except RtpError:
        fast = None
    assert (pkt is None) == (fast is None)
    if pkt is not None and fast is not None:
        assert fast[:3] == (pkt.ssrc, pkt.sequence, pkt.timestamp)
        assert data[fast[4] : fast[5]] == pkt.payload
        value = pkt.extensions.get(want, b"") if want else b""
        assert fast[3] == (value[0] if value else -1)


@given(
    st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=5),
    st.binary(max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_aiortc_one_byte_extensions_parse(elements: list[tuple[int, bytes]], payload: bytes) -> None:
    profile, value = pack_header_extensions(elements)
    head = bytes.fromhex("906f000100000001000000ff") if elements else bytes.fromhex(
        "806f000100000001000000ff")
    data = head + (struct.pack("!HH", profile, len(value) // 4) + value if elements else b"") + payload
    first: dict[int, bytes] = {}
    for i, v in elements:
        first.setdefault(i, v)
    assert parse_rtp(data).extensions == first


# --------------------------------------------------------------------------- rewriter


def _rewriter(
    audio_level_id: int | None = 1,
    mid_ext_id: int | None = 4,
    mid: str | None = "0",
    *,
    initial_seq: int = 1000,
    initial_timestamp: int = 500_000,
) -> DownlinkRewriter:
    return DownlinkRewriter(
        LISTENER, 111, audio_level_id, mid_ext_id, mid,
        initial_seq=initial_seq, initial_timestamp=initial_timestamp,
    )


class Talker:
    """A source stream: 20 ms Opus frames with its own random numbering."""

    def __init__(self, ssrc: int, seq: int, ts: int) -> None:
        self.ssrc, self.seq, self.ts = ssrc, seq, ts

    def next(self, skip: int = 0) -> tuple[int, int, int]:
        self.seq = (self.seq + 1 + skip) & 0xFFFF
        self.ts = (self.ts + 960 * (1 + skip)) & 0xFFFFFFFF
        return self.ssrc, self.seq, self.ts


def _send(rw: DownlinkRewriter, src: int, seq: int, ts: int, arrival: float,
          level: int = 0x85, payload: bytes = b"opus-frame") -> RtpPacket:
    return parse_rtp(rw.write(src, seq, ts, level, payload, arrival))


def test_first_packet_header() -> None:
    rw = _rewriter()
    assert rw.rtp_timestamp_at(5.0) is None
    out = _send(rw, ALICE, 40000, 123456, 10.0, payload=b"\x01\x02\x03")
    assert out.ssrc == LISTENER and out.payload_type == 111 and out.marker
    assert (out.sequence, out.timestamp) == (1000, 500_000)
    assert out.csrcs == [ALICE]
    assert out.extensions == {1: b"\x85", 4: b"0"}
    assert out.payload == b"\x01\x02\x03" and out.padding == 0
    assert (rw.packets_sent, rw.octets_sent) == (1, 3)


def test_talker_changes_keep_the_stream_continuous() -> None:
    rw = _rewriter()
    a, b = Talker(ALICE, 30000, 7_000_000), Talker(BOB, 100, 42)
    t = 100.0
    outs = []
    for _ in range(5):  # Alice talks
        outs.append((_send(rw, *a.next(), t), t))
        t += 0.02
    t += 1.2345  # silence, then Bob
    for _ in range(4):
        outs.append((_send(rw, *b.next(), t), t))
        t += 0.02
    t += 0.5  # then Alice again
    for _ in range(3):
        outs.append((_send(rw, *a.next(), t), t))
        t += 0.02
    seqs = [p.sequence for p, _ in outs]
    assert seqs == [(1000 + k) & 0xFFFF for k in range(12)]
    assert [p.marker for p, _ in outs] == [True, False, False, False, False,
                                         True, False, False, False, True, False, False]
    assert [p.csrcs for p, _ in outs] == [[ALICE]] * 5 + [[BOB]] * 4 + [[ALICE]] * 3
    ts = [p.timestamp for p, _ in outs]
    # Within a burst: the talker's 20 ms spacing.
    for i in (1, 2, 3, 4, 6, 7, 8, 10, 11):
        assert ts[i] - ts[i - 1] == 960
    # At a switch: the wall-clock gap since the previous packet, in 48 kHz units.
    for i in (5, 9):
        gap = outs[i][1] - outs[i - 1][1]
        assert abs((ts[i] - ts[i - 1]) - gap * 48000) <= 1
    assert all(p.payload == b"opus-frame" for p, _ in outs)
    assert rw.packets_sent == 12 and rw.octets_sent == 12 * len(b"opus-frame")


def test_gaps_and_reordering_within_a_burst_are_preserved() -> None:
    rw = _rewriter()
    base_seq, base_ts = 500, 96000
    order = [0, 1, 3, 2, 4, 7, 8]  # 5 and 6 lost, 2 and 3 swapped
    outs = [_send(rw, ALICE, base_seq + k, base_ts + 960 * k, 1.0 + 0.02 * n)
            for n, k in enumerate(order)]
    assert [o.sequence - 1000 for o in outs] == order
    assert [(o.timestamp - 500_000) // 960 for o in outs] == order
    assert [o.marker for o in outs] == [True] + [False] * 6


def test_next_burst_continues_after_the_highest_not_the_last() -> None:
    rw = _rewriter()
    _send(rw, ALICE, 10, 9600, 1.00)
    _send(rw, ALICE, 12, 9600 + 1920, 1.02)  # out 1002
    _send(rw, ALICE, 11, 9600 + 960, 1.03)  # late: out 1001
    first_b = _send(rw, BOB, 7, 70, 2.02)
    assert first_b.sequence == 1003
    # The gap is measured from the packet that carried the highest timestamp (arrived 1.02).
    assert first_b.timestamp == 500_000 + 1920 + 48000


def test_min_one_frame_between_bursts() -> None:
    rw = _rewriter()
    last = _send(rw, ALICE, 1, 1, 5.0)
    nxt = _send(rw, BOB, 1, 1, 5.001)  # Bob's first packet 1 ms after Alice's last
    assert nxt.timestamp - last.timestamp == 960
    same_instant = _send(rw, ALICE, 2, 961, 5.001)
    assert same_instant.timestamp - nxt.timestamp == 960


def test_new_burst_for_the_same_talker_after_silence() -> None:
    rw = _rewriter()
    a = Talker(ALICE, 65530, 4294967295 - 3000)
    t = 0.0
    for _ in range(3):
        last = _send(rw, *a.next(), t)
        t += 0.02
    # Without new_burst, silence in the talker's own stream (DTX) keeps its timestamps.
    t += 0.4
    dtx = _send(rw, *a.next(skip=0), t)
    assert not dtx.marker and dtx.timestamp == (last.timestamp + 960) & 0xFFFFFFFF
    # Released, then granted again 3 s later: the talker's numbering did not jump, ours does.
    rw.new_burst()
    t += 3.0
    again = _send(rw, *a.next(), t)
    assert again.marker
    assert again.sequence == (dtx.sequence + 1) & 0xFFFF
    assert again.timestamp == (dtx.timestamp + 3 * 48000) & 0xFFFFFFFF
    follow = _send(rw, *a.next(), t + 0.02)
    assert not follow.marker and follow.timestamp == (again.timestamp + 960) & 0xFFFFFFFF


def test_sequence_and_timestamp_wrap() -> None:
    rw = _rewriter(initial_seq=65534, initial_timestamp=0xFFFFFFFF - 959)
    a = Talker(ALICE, 65533, 0xFFFFFFFF - 1000)  # the source wraps too, at other moments
    outs = [_send(rw, *a.next(), 0.02 * k) for k in range(6)]
    assert [o.sequence for o in outs] == [65534, 65535, 0, 1, 2, 3]
    assert [o.timestamp for o in outs] == [
        (0xFFFFFFFF - 959 + 960 * k) & 0xFFFFFFFF for k in range(6)]
    assert outs[1].timestamp == 0  # wrapped past 2^32
    b = _send(rw, BOB, 9, 9, 0.02 * 5 + 1.0)
    assert b.sequence == 4 and b.timestamp == (outs[-1].timestamp + 48000) & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("level_id", "mid_id", "mid"),
    [(1, 4, "0"), (5, 3, "audio"), (14, 1, "a-mid-of-16bytes"), (1, None, None),
     (None, 2, "1"), (20, 4, "0"), (3, 200, "x"), (2, 9, "a-mid-longer-than-16-bytes")],
)
def test_extensions_use_each_listeners_ids(level_id: int | None, mid_id: int | None,
                                           mid: str | None) -> None:
    rw = _rewriter(level_id, mid_id, mid)
    m = _ext_map(level_id, mid_id)
    for level in (0x85, 0x00, 0xFF, -1, 0x7F):
        data = rw.write(ALICE, 1, 1, level, b"frame", 1.0)
        pkt = parse_rtp(data)
        expected: dict[int, bytes] = {}
        if level_id and level >= 0:
            expected[level_id] = bytes((level,))
        if mid_id and mid:
            expected[mid_id] = mid.encode()
        assert pkt.extensions == expected
        assert pkt.payload == b"frame" and pkt.csrcs == [ALICE]
        # Level first, then MID, in the form the ids allow.
        if expected:
            one_byte = all(i <= 14 and 1 <= len(v) <= 16 for i, v in expected.items())
            assert data[16:18] == (b"\xbe\xde" if one_byte else b"\x10\x00")
            first_id, first_value = next(iter(expected.items()))
            head = (first_id << 4 | (len(first_value) - 1),) if one_byte else (
                first_id, len(first_value))
            assert data[20 : 20 + len(head)] == bytes(head)
        else:
            assert data[0] == 0x81 and len(data) == 16 + 5
        # aiortc, configured with this listener's ids, reads the same.
        theirs = AiortcRtpPacket.parse(data, m)
        want_level = (bool(level & 0x80), level & 0x7F) if (level_id and level >= 0) else None
        assert theirs.extensions.audio_level == want_level
        assert theirs.extensions.mid == (mid if mid_id else None)
        assert theirs.csrc == [ALICE]


def test_level_element_written_only_when_negotiated() -> None:
    rw = _rewriter(None, None, None)
    pkt = parse_rtp(rw.write(ALICE, 1, 1, 0x90, b"x", 0.0))
    assert pkt.extensions == {}
    rw0 = _rewriter(0, 0, "0")  # 0 means not negotiated as well
    assert parse_rtp(rw0.write(ALICE, 1, 1, 0x90, b"x", 0.0)).extensions == {}


def test_payload_accepts_memoryview_and_is_copied() -> None:
    rw = _rewriter()
    src = bytearray(CHROME_LATER)
    ssrc, seq, ts, level, start, end = read_uplink(src, 1)
    out = rw.write(ssrc, seq, ts, level, memoryview(src)[start:end], 3.0)
    assert isinstance(out, bytes)
    src[start:end] = bytes(end - start)  # the caller reuses its buffer
    pkt = parse_rtp(out)
    assert pkt.payload == CHROME_LATER[20:] and pkt.extensions[1] == b"\xb0"
    assert pkt.csrcs == [0xBF3B8429]


def test_rtp_timestamp_at_follows_the_wall_clock() -> None:
    rw = _rewriter()
    _send(rw, ALICE, 1, 100, 10.0)
    _send(rw, ALICE, 2, 1060, 10.02)
    assert rw.rtp_timestamp_at(10.02) == 500_000 + 960
    assert rw.rtp_timestamp_at(11.02) == 500_000 + 960 + 48000
    assert rw.rtp_timestamp_at(10.52) == 500_000 + 960 + 24000


def test_random_initial_values() -> None:
    rws = [DownlinkRewriter(1, 111, 1, 4, "0") for _ in range(8)]
    firsts = [(parse_rtp(rw.write(ALICE, 1, 1, -1, b"x", 0.0))) for rw in rws]
    assert len({(p.sequence, p.timestamp) for p in firsts}) > 1
    assert all(p.marker for p in firsts)


def test_constructor_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        DownlinkRewriter(1 << 32, 111, 1, 4, "0")
    with pytest.raises(ValueError):
        DownlinkRewriter(1, 128, 1, 4, "0")
    with pytest.raises(ValueError):
        DownlinkRewriter(1, 111, 256, 4, "0")
    with pytest.raises(ValueError):
        DownlinkRewriter(1, 111, 1, 4, "m" * 256)


# One step of a random session: a talker's packet (source index, skip/reorder) or new_burst.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("pkt"), st.integers(0, 2), st.integers(-2, 3), st.floats(0.0, 2.0)),
        st.tuples(st.just("burst"), st.just(0), st.just(0), st.just(0.0)),
    ),
    min_size=1,
    max_size=60,
)


@given(steps, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.randoms())
@settings(max_examples=200, deadline=None)
def test_rewriter_properties(plan: list, init_seq: int, init_ts: int, rnd: random.Random) -> None:
    """Whatever the talkers do: markers exactly on burst starts, burst starts continue from
    the highest number sent, in-burst differences equal the talker's, payload untouched."""
    rw = _rewriter(initial_seq=init_seq, initial_timestamp=init_ts)
    sources = [[ssrc, rnd.getrandbits(16), rnd.getrandbits(32)] for ssrc in (ALICE, BOB, 77)]
    now = 0.0
    current = None  # the source of the open burst
    anchor = None  # (src seq, src ts, out seq, out ts) of the burst's first packet
    high_seq = high_ts = None
    high_arrival = 0.0
    pending_burst = True
    for kind, who, delta, dt in plan:
        if kind == "burst":
            rw.new_burst()
            pending_burst = True
            continue
        now += dt
        src = sources[who]
        src[1] = (src[1] + delta) & 0xFFFF
        src[2] = (src[2] + 960 * delta) & 0xFFFFFFFF
        payload = rnd.randbytes(rnd.randrange(1, 40))
        pkt = _send(rw, src[0], src[1], src[2], now, level=-1, payload=payload)
        assert pkt.payload == payload and pkt.csrcs == [src[0]]
        starts = pending_burst or current != src[0]
        assert pkt.marker == starts
        if starts:
            if high_seq is None:
                assert (pkt.sequence, pkt.timestamp) == (init_seq, init_ts)
            else:
                assert pkt.sequence == (high_seq + 1) & 0xFFFF
                step = (pkt.timestamp - high_ts) & 0xFFFFFFFF
                assert step == max(960, round((now - high_arrival) * 48000))
            anchor = (src[1], src[2], pkt.sequence, pkt.timestamp)
            current, pending_burst = src[0], False
            high_seq, high_ts, high_arrival = pkt.sequence, pkt.timestamp, now
        else:
            assert anchor is not None
            assert (pkt.sequence - anchor[2]) & 0xFFFF == (src[1] - anchor[0]) & 0xFFFF
            assert (pkt.timestamp - anchor[3]) & 0xFFFFFFFF == (src[2] - anchor[1]) & 0xFFFFFFFF
            if (pkt.sequence - high_seq) & 0xFFFF < 0x8000:
                high_seq = pkt.sequence
            if (pkt.timestamp - high_ts) & 0xFFFFFFFF < 0x80000000:
                high_ts, high_arrival = pkt.timestamp, now
