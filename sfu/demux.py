"""Which protocol a datagram on the shared port belongs to (RFC 7983, RFC 5761 §4).

WebRTC multiplexes STUN, DTLS and SRTP/SRTCP on one UDP 5-tuple; the first byte tells them
apart (RFC 7983 §7): 0-3 STUN, 20-63 DTLS, 128-191 RTP or RTCP. With rtcp-mux the second byte
separates RTCP (packet types 192-223) from RTP (M bit + payload type), which cannot collide
with dynamic RTP payload types (RFC 5761 §4). Every other first byte (4-19: ZRTP, 64-79:
TURN channels, 80-127, 192-255) is something we never accept on this port.

This module is the one place that knows these ranges; the media core asks it once per
datagram.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Kind", "classify"]


class Kind(IntEnum):
    """The protocol of one datagram, by its first bytes."""

    OTHER = 0
    STUN = 1
    DTLS = 2
    RTP = 3
    RTCP = 4


_BY_FIRST_BYTE: tuple[Kind, ...] = tuple(
    Kind.STUN if b <= 3 else
    Kind.DTLS if 20 <= b <= 63 else
    Kind.RTP if 128 <= b <= 191 else
    Kind.OTHER
    for b in range(256)
)


def classify(data: bytes | bytearray | memoryview) -> Kind:
    """The protocol of ``data``; ``Kind.OTHER`` for an empty or unknown datagram."""
    if not data:
        return Kind.OTHER
    kind = _BY_FIRST_BYTE[data[0]]
    if kind is Kind.RTP and len(data) > 1 and 192 <= data[1] <= 223:
        return Kind.RTCP
    return kind
