"""Tests for sfu/rtp.py: the RTP codec and the hot-path reader.

Cross-checked against real Chromium packets and against aiortc's independent RTP codec.
"""

from __future__ import annotations

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
