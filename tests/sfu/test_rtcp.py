"""Tests for sfu/rtcp.py and sfu/reception.py: RTCP codec, NTP time, RTT, reception stats.

Cross-checked against real Chromium RTCP and against aiortc's independent RTCP codec.
"""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.reception import ReceptionStats
from sfu.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_bye,
    build_receiver_report,
    build_sdes_cname,
    build_sender_report,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)

# Decrypted RTCP that Chromium 156 sent to an aiortc peer while both sent audio. Captured by
# hooking aiortc's RTCDtlsTransport._handle_rtcp_data after SRTCP unprotect, in a
# loopback-only namespace. A compound SR + SDES (CNAME), and a lone RR (reduced size).
CHROME_SR_SDES = bytes.fromhex(
    "80c80006bf3b8429eeb1c8544a686e7e57c7f8e200000074000017a1"
    "81ca0006bf3b842901104f2b573577765039454238515236797a0000"
)
CHROME_RR = bytes.fromhex(
    "81c90007bf3b84297a23de710000000000007dcc0000000dc8536aac000101ec"
)


# --------------------------------------------------------------------------- real bytes


def test_parse_chrome_sender_report_and_sdes() -> None:
    sr, sdes = parse_rtcp(CHROME_SR_SDES)
    assert sr == SenderReport(
        ssrc=0xBF3B8429,
        ntp_timestamp=0xEEB1C8544A686E7E,
        rtp_timestamp=0x57C7F8E2,
        packet_count=116,
        octet_count=6049,
        reports=[],
    )
    assert sdes == SourceDescription([(0xBF3B8429, [(1, b"O+W5wvP9EB8QR6yz")])])
    # Our builder produces the same bytes for the same content.
    assert build_sender_report(sr) + build_sdes_cname(0xBF3B8429, "O+W5wvP9EB8QR6yz") == (
        CHROME_SR_SDES
    )


def test_parse_chrome_receiver_report() -> None:
    (rr,) = parse_rtcp(CHROME_RR)
    assert rr == ReceiverReport(
        ssrc=0xBF3B8429,
        reports=[
            ReportBlock(
                ssrc=0x7A23DE71,
                fraction_lost=0,
                packets_lost=0,
                highest_seq=32204,
                jitter=13,
                lsr=0xC8536AAC,
                dlsr=0x000101EC,
            )
        ],
    )
    assert build_receiver_report(rr) == CHROME_RR


# --------------------------------------------------------------------------- build / parse


def test_sender_report_exact_bytes() -> None:
    block = ReportBlock(ssrc=0x01020304, fraction_lost=51, packets_lost=-3,
                        highest_seq=0x00010005, jitter=35, lsr=0xAABBCCDD, dlsr=0x8000)
    sr = SenderReport(ssrc=0xCAFEBABE, ntp_timestamp=0x0102030405060708,
                      rtp_timestamp=0xDEADBEEF, packet_count=7, octet_count=560, reports=[block])
    data = build_sender_report(sr)
    assert data == bytes.fromhex(
        "81c8000c" "cafebabe" "0102030405060708" "deadbeef" "00000007" "00000230"
        "01020304" "33fffffd" "00010005" "00000023" "aabbccdd" "00008000"
    )
    assert parse_rtcp(data) == [sr]


def test_sdes_cname_padding_always_has_a_null() -> None:
    for name in ("", "a", "ab", "abc", "abcd", "walkie", "x" * 255):
        data = build_sdes_cname(42, name)
        assert len(data) % 4 == 0
        chunk = data[8:]
        items_len = 2 + len(name.encode())
        assert chunk[items_len] == 0 and set(chunk[items_len:]) == {0}
        assert parse_rtcp(data) == [SourceDescription([(42, [(1, name.encode())])])]
    with pytest.raises(RtcpError):
        build_sdes_cname(1, "x" * 256)


def test_sdes_several_chunks_and_items() -> None:
    body = (
        # 16 octets: SSRC, CNAME "ab", NAME "Bob", null item, padding to 32 bits
        struct.pack("!I", 1) + bytes((1, 2)) + b"ab" + bytes((2, 3)) + b"Bob" + b"\x00" * 3
        + struct.pack("!I", 2) + b"\x00\x00\x00\x00"  # a chunk with no items
        + struct.pack("!I", 3) + bytes((1, 1)) + b"c" + b"\x00"
    )
    data = struct.pack("!BBH", 0x83, 202, len(body) // 4) + body
    assert parse_rtcp(data) == [
        SourceDescription([(1, [(1, b"ab"), (2, b"Bob")]), (2, []), (3, [(1, b"c")])])
    ]


def test_bye_with_and_without_reason() -> None:
    assert parse_rtcp(build_bye([1, 2, 3])) == [Bye([1, 2, 3], None)]
    assert parse_rtcp(build_bye([9], "gone fishing 🎣")) == [Bye([9], "gone fishing 🎣")]
    assert parse_rtcp(build_bye([])) == [Bye([], None)]
    data = build_bye([0x01020304], "bye")
    assert data == bytes.fromhex("81cb0002" "01020304" "03627965")
    with pytest.raises(RtcpError):
        build_bye([1], "x" * 256)
    with pytest.raises(RtcpError):
        build_bye(list(range(32)))


def test_feedback_and_other_types_are_kept_opaque() -> None:
    nack = bytes(RtcpRtpfbPacket(fmt=1, ssrc=5, media_ssrc=6, lost=[100, 102]))
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=5, media_ssrc=6))
    app = struct.pack("!BBH", 0x82, 204, 3) + struct.pack("!I", 5) + b"WLKE" + b"data"
    xr = struct.pack("!BBH", 0x80, 207, 2) + struct.pack("!I", 5) + bytes.fromhex("04000002")
    packets = parse_rtcp(nack + pli + app + xr)
    assert packets == [
        UnknownRtcp(205, 1, struct.pack("!IIHH", 5, 6, 100, 0b10)),
        UnknownRtcp(206, 1, struct.pack("!II", 5, 6)),
        UnknownRtcp(204, 2, struct.pack("!I", 5) + b"WLKEdata"),
        UnknownRtcp(207, 0, struct.pack("!I", 5) + bytes.fromhex("04000002")),
    ]


def test_compound_with_padding_in_the_last_packet() -> None:
    rr = build_receiver_report(ReceiverReport(7, []))
    sdes = build_sdes_cname(7, "abc")  # 12 octets
    padded = bytearray(sdes + b"\x00\x00\x00\x04")
    padded[0] |= 0x20
    struct.pack_into("!H", padded, 2, len(padded) // 4 - 1)
    assert parse_rtcp(rr + bytes(padded)) == [
        ReceiverReport(7, []),
        SourceDescription([(7, [(1, b"abc")])]),
    ]


def test_interop_with_aiortc() -> None:
    """aiortc reads what we build; we read what aiortc builds."""
    block = ReportBlock(ssrc=3, fraction_lost=12, packets_lost=-7, highest_seq=70000,
                        jitter=99, lsr=123456, dlsr=65536)
    sr = SenderReport(ssrc=1, ntp_timestamp=ntp_timestamp(1_700_000_000.5),
                      rtp_timestamp=4242, packet_count=10, octet_count=800, reports=[block])
    compound = (build_sender_report(sr) + build_receiver_report(ReceiverReport(2, [block]))
                + build_sdes_cname(1, "walkie") + build_bye([1, 2], "done"))
    theirs = RtcpPacket.parse(compound)
    info = RtcpReceiverInfo(ssrc=3, fraction_lost=12, packets_lost=-7,
                            highest_sequence=70000, jitter=99, lsr=123456, dlsr=65536)
    assert theirs == [
        RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(sr.ntp_timestamp, 4242, 10, 800),
                     reports=[info]),
        RtcpRrPacket(ssrc=2, reports=[info]),
        RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1, items=[(1, b"walkie")])]),
        RtcpByePacket(sources=[1, 2]),
    ]
    back = b"".join(bytes(p) for p in theirs)
    ours = parse_rtcp(back)
    assert ours[:3] == parse_rtcp(compound)[:3]
    assert ours[3] == Bye([1, 2], None)  # aiortc drops the reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("80c800"),  # header cut
        bytes.fromhex("40c90001" "00000001"),  # version 1
        bytes.fromhex("c0c90001" "00000001"),  # version 3
        bytes.fromhex("80c90001"),  # length runs past the datagram
        bytes.fromhex("80c90001" "00000001" "8000"),  # trailing fragment
        bytes.fromhex("81c80006") + bytes(24),  # SR: RC=1 without its block
        bytes.fromhex("85c8001f") + bytes(124),  # SR: RC=5, room for 4 1/6 blocks
        bytes.fromhex("82c90007" "00000001") + bytes(24),  # RR: RC=2, one block
        bytes.fromhex("81ca0002" "00000001" "01026162"),  # SDES: no null item
        bytes.fromhex("81ca0002" "00000001" "01096162"),  # SDES: item overruns
        bytes.fromhex("81ca0001" "00000001" "81ca0001" "01"),  # SDES item header cut
        bytes.fromhex("82ca0002" "00000001" "00000000"),  # SDES: SC=2, one chunk
        bytes.fromhex("82cb0001" "00000001"),  # BYE: SC=2, one SSRC
        bytes.fromhex("81cb0002" "00000001" "05616263"),  # BYE reason overruns
        bytes.fromhex("a0c90001" "00000000"),  # padding count 0
        bytes.fromhex("a0c90001" "00000009"),  # padding larger than the body
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(data)


def test_builders_reject_unencodable() -> None:
    ok = ReportBlock(1, 0, 0, 0, 0, 0, 0)
    for block in (
        ReportBlock(1, 256, 0, 0, 0, 0, 0),
        ReportBlock(1, 0, 0x800000, 0, 0, 0, 0),
        ReportBlock(1, 0, -0x800001, 0, 0, 0, 0),
        ReportBlock(1 << 32, 0, 0, 0, 0, 0, 0),
        ReportBlock(1, 0, 0, 0, 0, 0, -1),
    ):
        with pytest.raises(RtcpError):
            build_receiver_report(ReceiverReport(1, [block]))
    with pytest.raises(RtcpError):
        build_receiver_report(ReceiverReport(1, [ok] * 32))
    with pytest.raises(RtcpError):
        build_sender_report(SenderReport(1, 1 << 64, 0, 0, 0, []))
    with pytest.raises(RtcpError):
        build_sender_report(SenderReport(1, 0, 0, 1 << 32, 0, []))


# --------------------------------------------------------------------------- time and RTT


def test_ntp_timestamp() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) == (2_208_988_801 << 32) | 0x80000000
    assert ntp_middle32(ntp_timestamp(1.5)) == ((2_208_988_801 & 0xFFFF) << 16) | 0x8000
    # NTP era 1 starts 2036-02-07 06:28:16 UTC: the seconds field wraps to 0.
    assert ntp_timestamp(2_085_978_496.0) == 0
    assert ntp_timestamp(2_085_978_496.25) == 0x40000000


def test_round_trip_time() -> None:
    t = 1_700_000_000.0
    our_sr_ntp = ntp_timestamp(t)  # we send an SR at t
    # The listener gets it 10 ms later and reports 250 ms after that; we read it at t + 0.27.
    block = ReportBlock(1, 0, 0, 0, 0, ntp_middle32(our_sr_ntp), round(0.25 * 65536))
    rtt = round_trip_time(block, t + 0.27)
    assert rtt is not None and abs(rtt - 0.02) <= 2 / 65536
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), t) is None
    # A DLSR rounded up past "now" on a fast link is not a negative RTT.
    block.dlsr = round(0.2701 * 65536)
    assert round_trip_time(block, t + 0.27) == 0.0


def test_round_trip_time_across_the_lsr_wrap() -> None:
    # middle32 wraps every 65536 s; the subtraction is modulo 2^32.
    base = 1_700_000_000
    t = base - (base + 2_208_988_800) % 65536 + 65535.5  # NTP seconds = 65535 mod 65536
    assert ntp_middle32(ntp_timestamp(t)) == 0xFFFF8000
    block = ReportBlock(1, 0, 0, 0, 0, ntp_middle32(ntp_timestamp(t)), 65536)  # DLSR 1 s
    rtt = round_trip_time(block, t + 1.5)
    assert rtt is not None and abs(rtt - 0.5) <= 2 / 65536


# --------------------------------------------------------------------------- statistics


def _feed(stats: ReceptionStats, seqs: list[int], start_arrival: float = 0.0) -> None:
    for k, seq in enumerate(seqs):
        stats.update(seq, (seq * 960) & 0xFFFFFFFF, start_arrival + 0.02 * k)


def test_loss_fraction_and_cumulative_by_hand() -> None:
    s = ReceptionStats(0x1234)
    assert s.report_block(0.0) == ReportBlock(0x1234, 0, 0, 0, 0, 0, 0)
    # 100..109 with 103 and 106 lost: expected 10, received 8.
    _feed(s, [100, 101, 102, 104, 105, 107, 108, 109])
    b = s.report_block(1.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (109, 2, (2 << 8) // 10)
    assert s.cumulative_lost() == 2
    # 110..119 with 113 lost and 115 duplicated: interval expected 10, received 10.
    _feed(s, [110, 111, 112, 114, 115, 115, 116, 117, 118, 119])
    b = s.report_block(2.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (119, 2, 0)
    # Duplicates outnumber losses: cumulative loss goes negative (signed 24-bit on the wire).
    _feed(s, [120, 120, 120, 121, 121, 121, 121, 121])
    b = s.report_block(3.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (121, -4, 0)
    assert parse_rtcp(build_receiver_report(ReceiverReport(1, [b]))) == [ReceiverReport(1, [b])]
    assert s.packets_received == 26
    # A later interval with heavy loss: 122 then 131, so 8 of the 10 expected are lost.
    _feed(s, [122, 131])
    b = s.report_block(4.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (131, 4, (8 << 8) // 10)


def test_sequence_wrap_counts_cycles() -> None:
    s = ReceptionStats(1)
    _feed(s, [65533, 65534, 0, 65535, 1, 2])  # 65535 arrives late, after the wrap
    b = s.report_block(1.0)
    assert b.highest_seq == 65536 + 2
    assert (b.packets_lost, b.fraction_lost) == (0, 0)
    _feed(s, list(range(3, 65536)) + [0, 1], 2.0)  # a second full cycle
    assert s.report_block(3.0).highest_seq == 2 * 65536 + 1


def test_stray_jump_is_ignored_and_two_in_a_row_resync() -> None:
    s = ReceptionStats(1)
    _feed(s, [10, 11, 5000, 12])  # one stray far away: not counted
    b = s.report_block(1.0)
    assert (b.highest_seq, b.packets_lost) == (12, 0)
    _feed(s, [30000, 30001, 30002])  # the sender restarted its numbering
    b = s.report_block(2.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (30002, 0, 0)
    assert s.packets_received == 7


def test_jitter_by_hand() -> None:
    s = ReceptionStats(1)
    # transit = arrival*48000 - ts: 48000, 48000, 48048, 48000, 48480 -> D = 0, 48, 48, 480
    # J: 0 -> 0 + (0-0)/16 = 0 -> 0 + 48/16 = 3 -> 3 + 45/16 = 5.8125
    #    -> 5.8125 + (480 - 5.8125)/16 = 35.44921875
    for ts, arrival in ((0, 1.000), (960, 1.020), (1920, 1.041), (2880, 1.060), (3840, 1.090)):
        s.update(ts // 960, ts, arrival)
    assert s.report_block(2.0).jitter == 35
    assert abs(s.jitter_seconds() - 35.44921875 / 48000) < 1e-9


def test_jitter_zero_for_perfect_pacing_across_timestamp_wrap() -> None:
    s = ReceptionStats(1, clock_rate=48000)
    ts0 = 0xFFFFFFFF - 5 * 960
    for k in range(12):
        s.update(k, (ts0 + 960 * k) & 0xFFFFFFFF, 100.0 + 0.02 * k)
    assert s.report_block(101.0).jitter == 0
    assert s.jitter_seconds() < 1e-9


def test_lsr_and_dlsr() -> None:
    s = ReceptionStats(1)
    _feed(s, [1, 2, 3])
    ntp = ntp_timestamp(1_700_000_000.25)
    s.on_sender_report(ntp, 50.0)
    b = s.report_block(50.75)
    assert b.lsr == ntp_middle32(ntp) and b.dlsr == 49152
    # The talker's RTT from our report, as the talker would compute it (on its own clock).
    rtt = round_trip_time(b, 1_700_000_000.25 + 0.75 + 0.03)
    assert rtt is not None and abs(rtt - 0.03) <= 2 / 65536


# --------------------------------------------------------------------------- hypothesis

u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    packets_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_seq=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
sender_reports = st.builds(
    SenderReport,
    ssrc=u32,
    ntp_timestamp=st.integers(0, (1 << 64) - 1),
    rtp_timestamp=u32,
    packet_count=u32,
    octet_count=u32,
    reports=st.lists(blocks, max_size=31),
)
receiver_reports = st.builds(ReceiverReport, ssrc=u32, reports=st.lists(blocks, max_size=31))
text255 = st.text(max_size=60).filter(lambda t: len(t.encode()) <= 255)


@st.composite
def compounds(draw: st.DrawFn) -> tuple[bytes, list]:
    """Several built packets in one datagram, and what they should parse to."""
    data, expected = b"", []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["sr", "rr", "sdes", "bye"]))
        if kind == "sr":
            p = draw(sender_reports)
            data += build_sender_report(p)
        elif kind == "rr":
            p = draw(receiver_reports)
            data += build_receiver_report(p)
        elif kind == "sdes":
            ssrc, name = draw(u32), draw(text255)
            p = SourceDescription([(ssrc, [(1, name.encode())])])
            data += build_sdes_cname(ssrc, name)
        else:
            p = Bye(draw(st.lists(u32, max_size=31)), draw(st.none() | text255))
            data += build_bye(p.ssrcs, p.reason)
        expected.append(p)
    return data, expected


@given(sender_reports)
@settings(max_examples=200, deadline=None)
def test_sender_report_round_trip(sr: SenderReport) -> None:
    assert parse_rtcp(build_sender_report(sr)) == [sr]


@given(compounds())
@settings(max_examples=200, deadline=None)
def test_compound_round_trip(case: tuple[bytes, list]) -> None:
    data, expected = case
    assert parse_rtcp(data) == expected
    assert len(RtcpPacket.parse(data)) == len(expected)  # aiortc splits it the same way


@st.composite
def mutated_compounds(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(compounds())[0])
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@given(st.one_of(st.binary(max_size=200), mutated_compounds(),
                 st.builds(lambda b, rest: bytes((b,)) + rest, st.integers(0x80, 0xBF),
                           st.binary(max_size=100))))
@settings(max_examples=800, deadline=None)
def test_arbitrary_bytes_raise_only_rtcp_error(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpError:
        return
    assert packets


@given(st.integers(0, 0xFFFF), st.lists(st.booleans(), min_size=1, max_size=400))
@settings(max_examples=200, deadline=None)
def test_in_order_stream_with_random_loss(start: int, kept: list[bool]) -> None:
    """Any in-order stream (wrapping or not): highest = last seq, lost = gaps."""
    seqs = [start + k for k, keep in enumerate(kept) if keep]
    if not seqs:
        return
    s = ReceptionStats(1)
    for seq in seqs:
        s.update(seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF, 0.02 * (seq - start))
    b = s.report_block(100.0)
    extended = seqs[-1] - seqs[0] + (seqs[0] & 0xFFFF)
    assert b.highest_seq == extended
    lost = (seqs[-1] - seqs[0] + 1) - len(seqs)
    assert b.packets_lost == lost
    assert b.fraction_lost == min(255, (lost << 8) // (seqs[-1] - seqs[0] + 1))
    assert b.jitter == 0  # perfectly paced
