"""RTP (RFC 3550) parsing and building, and the one parse on the forwarder's hot path.

Two kinds of API live here, on purpose:

* ``parse_rtp`` / ``build_rtp`` / ``RtpPacket``: a complete, readable codec for tests, the
  bench and debugging. It allocates freely.
* ``read_uplink``: the per-packet hot path. It returns a plain tuple of ints (no object per
  packet) and validates exactly what ``parse_rtp`` validates, so the two agree on which
  packets are malformed.

Header extensions follow RFC 8285 (one- and two-byte forms). Rewriting headers for each
listener is sfu/rewriter.py's job. Sans-IO: no sockets, no clock reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "AUDIO_LEVEL_URI",
    "MID_URI",
    "RtpError",
    "RtpPacket",
    "build_rtp",
    "extension_block",
    "parse_rtp",
    "read_uplink",
]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 9143 / RFC 8843


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet (or an RTP packet we cannot build)."""


# Fixed header: V/P/X/CC, M/PT, sequence, timestamp, SSRC.
_FIXED = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_EXT_HDR = struct.Struct("!HH")

_ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 §4.2
_TWO_BYTE_PROFILE = 0x1000  # RFC 8285 §4.3: 0x100 then 4 "appbits"
_TWO_BYTE_MASK = 0xFFF0

_join = b"".join


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet, every field decoded. Readable, not fast: not for the hot path."""

    payload_type: int = 0
    sequence: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrcs: list[int] = field(default_factory=list)
    # RFC 8285 header-extension elements by local id. Empty = no extension block.
    extensions: dict[int, bytes] = field(default_factory=dict)
    payload: bytes = b""
    # Number of RTP padding octets at the end (0 = P bit clear), including the count octet.
    padding: int = 0


def _walk_extensions(
    data: bytes | bytearray | memoryview, start: int, end: int, profile: int, want: int
) -> int:
    """Validate an RFC 8285 extension block; return the first data byte of element ``want``.

    Returns -1 when ``want`` is absent, empty, or 0. The whole block is always walked so that
    ``read_uplink`` rejects exactly the packets ``parse_rtp`` rejects; with the two or three
    elements a browser sends this is a handful of iterations.
    """
    level = -1
    i = start
    if profile == _ONE_BYTE_PROFILE:
        while i < end:
            b = data[i]
            ident = b >> 4
            if ident == 0:  # padding octet (RFC 8285 §4.2: id 0 is padding)
                i += 1
                continue
            if ident == 15:  # reserved: stop processing the block here (RFC 8285 §4.2)
                break
            nxt = i + 2 + (b & 0x0F)
            if nxt > end:
                raise RtpError("one-byte header extension element overruns the block")
            if ident == want:
                level = data[i + 1]
                want = -3  # first occurrence wins, as in parse_rtp
            i = nxt
    elif profile & _TWO_BYTE_MASK == _TWO_BYTE_PROFILE:
        while i < end:
            ident = data[i]
            if ident == 0:  # padding octet
                i += 1
                continue
            if i + 2 > end:
                raise RtpError("two-byte header extension element header truncated")
            length = data[i + 1]
            nxt = i + 2 + length
            if nxt > end:
                raise RtpError("two-byte header extension element overruns the block")
            if ident == want:
                level = data[i + 2] if length else -1
                want = -3
            i = nxt
    # Any other profile: an RFC 3550 extension we do not interpret; it is skipped whole.
    return level


def read_uplink(
    data: bytes | bytearray | memoryview, audio_level_id: int
) -> tuple[int, int, int, int, int, int]:
    """HOT PATH: the few facts the router needs from one decrypted uplink RTP packet.

    Returns ``(ssrc, seq, timestamp, level, payload_start, payload_end)``. ``level`` is the raw
    RFC 6464 octet (V bit | -dBov) of extension element ``audio_level_id``, or -1 if absent or
    not negotiated (``audio_level_id`` 0). ``payload_end`` excludes RTP padding, so
    ``data[payload_start:payload_end]`` is the Opus frame. Raises RtpError on malformed input,
    agreeing with ``parse_rtp``.
    """
    n = len(data)
    if n < 12:
        raise RtpError("shorter than the RTP fixed header")
    b0, _b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    if b0 & 0xC0 != 0x80:
        raise RtpError("RTP version is not 2")
    start = 12 + ((b0 & 0x0F) << 2)
    end = n
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0:
            raise RtpError("RTP padding count is zero")
        end = n - pad
    if start > end:
        raise RtpError("CSRC list or padding overruns the packet")
    level = -1
    if b0 & 0x10:
        if start + 4 > end:
            raise RtpError("header extension header truncated")
        profile, words = _EXT_HDR.unpack_from(data, start)
        ext_start = start + 4
        start = ext_start + (words << 2)
        if start > end:
            raise RtpError("header extension overruns the packet")
        level = _walk_extensions(data, ext_start, start, profile, audio_level_id or -2)
    return ssrc, seq, ts, level, start, end


def _parse_elements(data: bytes, start: int, end: int, profile: int) -> dict[int, bytes]:
    """All RFC 8285 elements of an extension block (first occurrence of an id wins)."""
    out: dict[int, bytes] = {}
    i = start
    if profile == _ONE_BYTE_PROFILE:
        while i < end:
            b = data[i]
            ident = b >> 4
            if ident == 0:
                i += 1
                continue
            if ident == 15:
                break
            nxt = i + 2 + (b & 0x0F)
            if nxt > end:
                raise RtpError("one-byte header extension element overruns the block")
            out.setdefault(ident, data[i + 1 : nxt])
            i = nxt
    elif profile & _TWO_BYTE_MASK == _TWO_BYTE_PROFILE:
        while i < end:
            ident = data[i]
            if ident == 0:
                i += 1
                continue
            if i + 2 > end:
                raise RtpError("two-byte header extension element header truncated")
            nxt = i + 2 + data[i + 1]
            if nxt > end:
                raise RtpError("two-byte header extension element overruns the block")
            out.setdefault(ident, data[i + 2 : nxt])
            i = nxt
    return out


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Decode every field of an RTP packet. RtpError on anything malformed."""
    data = bytes(data)
    n = len(data)
    if n < 12:
        raise RtpError("shorter than the RTP fixed header")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    if b0 & 0xC0 != 0x80:
        raise RtpError("RTP version is not 2")
    cc = b0 & 0x0F
    start = 12 + 4 * cc
    end = n
    padding = 0
    if b0 & 0x20:
        padding = data[n - 1]
        if padding == 0:
            raise RtpError("RTP padding count is zero")
        end = n - padding
    if start > end:
        raise RtpError("CSRC list or padding overruns the packet")
    csrcs = [_U32.unpack_from(data, 12 + 4 * k)[0] for k in range(cc)]
    extensions: dict[int, bytes] = {}
    if b0 & 0x10:
        if start + 4 > end:
            raise RtpError("header extension header truncated")
        profile, words = _EXT_HDR.unpack_from(data, start)
        ext_start = start + 4
        start = ext_start + 4 * words
        if start > end:
            raise RtpError("header extension overruns the packet")
        extensions = _parse_elements(data, ext_start, start, profile)
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=bool(b1 & 0x80),
        csrcs=csrcs,
        extensions=extensions,
        payload=data[start:end],
        padding=padding,
    )


def extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """Serialise RFC 8285 elements (in order) into a padded extension block with its header.

    One-byte form when every id is 1..14 and every value 1..16 octets (what every browser
    accepts without negotiating extmap-allow-mixed), else the two-byte form.
    """
    if all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements):
        profile = _ONE_BYTE_PROFILE
        body = _join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in elements)
    else:
        for i, v in elements:
            if not 1 <= i <= 255 or len(v) > 255:
                raise RtpError(f"extension element {i} cannot be encoded")
        profile = _TWO_BYTE_PROFILE
        body = _join(bytes((i, len(v))) + v for i, v in elements)
    body += b"\x00" * (-len(body) % 4)
    return _EXT_HDR.pack(profile, len(body) // 4) + body


def build_rtp(pkt: RtpPacket) -> bytes:
    """Encode ``pkt`` (the inverse of ``parse_rtp`` for packets it produced)."""
    if len(pkt.csrcs) > 15:
        raise RtpError("more than 15 CSRCs")
    if not 0 <= pkt.padding <= 255:
        raise RtpError("padding must be 0..255 octets")
    if not 0 <= pkt.payload_type <= 127:
        raise RtpError("payload type must be 0..127")
    ext = extension_block(sorted(pkt.extensions.items())) if pkt.extensions else b""
    b0 = 0x80 | (0x20 if pkt.padding else 0) | (0x10 if ext else 0) | len(pkt.csrcs)
    b1 = (0x80 if pkt.marker else 0) | pkt.payload_type
    try:
        head = _FIXED.pack(b0, b1, pkt.sequence, pkt.timestamp, pkt.ssrc)
        csrcs = _join(_U32.pack(c) for c in pkt.csrcs)
    except struct.error as exc:
        raise RtpError(str(exc)) from exc
    pad = b"\x00" * (pkt.padding - 1) + bytes((pkt.padding,)) if pkt.padding else b""
    return head + csrcs + ext + bytes(pkt.payload) + pad
