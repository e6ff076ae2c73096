"""sfu/demux.py: RFC 7983 first-byte ranges and the RFC 5761 RTP/RTCP split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfu.demux import Kind, classify

# Decrypted RTP headers Chromium sent (marker set, PT 111; then PT 111 without marker).
CHROME_FIRST = bytes.fromhex("90ef5b2c57c64402bf3b8429")
CHROME_LATER = bytes.fromhex("906f5b2d57c64782bf3b8429")


def test_first_byte_ranges() -> None:
    for first in range(256):
        kind = classify(bytes([first, 0]))
        if first <= 3:
            assert kind is Kind.STUN
        elif 20 <= first <= 63:
            assert kind is Kind.DTLS
        elif 128 <= first <= 191:
            assert kind is Kind.RTP
        else:
            assert kind is Kind.OTHER, first  # ZRTP, TURN channels, and the unassigned rest


def test_rtcp_is_told_from_rtp_by_the_second_octet() -> None:
    assert classify(CHROME_FIRST) is Kind.RTP  # 0xef: M=1, PT=111
    assert classify(CHROME_LATER) is Kind.RTP  # 0x6f
    assert classify(bytes.fromhex("80c80006")) is Kind.RTCP  # SR
    assert classify(bytes.fromhex("81c90007")) is Kind.RTCP  # RR
    assert classify(bytes((0x80, 192))) is Kind.RTCP
    assert classify(bytes((0x80, 223))) is Kind.RTCP
    assert classify(bytes((0x80, 191))) is Kind.RTP
    assert classify(bytes((0x80, 224))) is Kind.RTP
    assert classify(b"\x80") is Kind.RTP  # too short for either: the RTP parser refuses it


def test_empty_is_other() -> None:
    assert classify(b"") is Kind.OTHER


@given(st.binary(max_size=64))
def test_every_input_has_exactly_one_kind(data: bytes) -> None:
    assert classify(data) in Kind
    assert classify(bytearray(data)) is classify(data) is classify(memoryview(data))
