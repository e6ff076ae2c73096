"""RTP (RFC 3550) parsing and per-listener header rewriting for the forwarder.

Two kinds of API live here, on purpose:

* ``parse_rtp`` / ``build_rtp`` / ``RtpPacket``: a complete, readable codec for tests, the
  bench and debugging. It allocates freely.
* ``read_uplink`` and ``DownlinkRewriter.write``: the per-packet hot path. ``read_uplink``
  returns a plain tuple of ints (no object per packet) and validates exactly what
  ``parse_rtp`` validates, so the two agree on which packets are malformed.
  ``DownlinkRewriter`` keeps a preassembled header per listener and patches a few fields with
  a precompiled ``struct.Struct`` per packet, so the fan-out to N listeners costs N small
  ``pack_into`` calls and N joins, nothing else.

Why one downlink stream per listener: the browser never renegotiates when the
talker changes; we make the talkers' packets look like one continuous stream (continuous
sequence numbers, timestamps advanced by the wall-clock gap, marker on each burst start) and
put the talker in the CSRC so ``getContributingSources()`` shows who is talking.

Sans-IO: no sockets, no asyncio, no clock reads (the caller passes arrival times).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

__all__ = [
    "AUDIO_LEVEL_URI",
    "MID_URI",
    "DownlinkRewriter",
    "RtpError",
    "RtpPacket",
    "build_rtp",
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
# What the rewriter patches per packet, at offset 1: M/PT, sequence, timestamp.
_PATCH = struct.Struct("!BHI")

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


def _extension_block(elements: list[tuple[int, bytes]]) -> bytes:
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
    ext = _extension_block(sorted(pkt.extensions.items())) if pkt.extensions else b""
    b0 = 0x80 | (0x20 if pkt.padding else 0) | (0x10 if ext else 0) | len(pkt.csrcs)
    b1 = (0x80 if pkt.marker else 0) | pkt.payload_type
    try:
        head = _FIXED.pack(b0, b1, pkt.sequence, pkt.timestamp, pkt.ssrc)
        csrcs = _join(_U32.pack(c) for c in pkt.csrcs)
    except struct.error as exc:
        raise RtpError(str(exc)) from exc
    pad = b"\x00" * (pkt.padding - 1) + bytes((pkt.padding,)) if pkt.padding else b""
    return head + csrcs + ext + bytes(pkt.payload) + pad


class DownlinkRewriter:
    """The single downlink stream of one listener.

    Every talker's packets are renumbered into this one stream (SSRC ``ssrc``): sequence
    numbers continue across talk bursts, timestamps jump by the wall-clock gap between bursts
    (so the browser's jitter buffer sees silence, not a time warp), the marker bit flags each
    burst start, the CSRC names the talker and the audio level rides along under the id this
    listener negotiated.

    Within a burst the talker's own numbering is kept by a fixed offset, so its losses and
    reordering reach the listener unchanged (NACK-free audio: the jitter buffer conceals).
    The next burst continues from the *highest* sequence number and timestamp sent so far,
    not the last one written, so a reordered tail of the previous burst cannot make the new
    burst reuse numbers. A packet older than its burst's first packet (reordered across the
    burst start) maps just below that first packet and may repeat a number of the previous
    burst; the receiver treats it as a duplicate.
    """

    __slots__ = (
        "ssrc",
        "payload_type",
        "clock_rate",
        "packets_sent",
        "octets_sent",
        "_plain",
        "_leveled",
        "_level_pos",
        "_burst_src",
        "_seq_off",
        "_ts_off",
        "_high_seq",
        "_high_ts",
        "_high_arrival",
        "_started",
        "_min_step",
    )

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        audio_level_id: int | None,
        mid_ext_id: int | None,
        mid: str | None,
        *,
        clock_rate: int = 48000,
        initial_seq: int | None = None,
        initial_timestamp: int | None = None,
    ) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError("ssrc must be a 32-bit unsigned integer")
        if not 0 <= payload_type <= 127:
            raise ValueError("payload_type must be 0..127")
        for ident in (audio_level_id, mid_ext_id):
            if ident is not None and not 0 <= ident <= 255:
                raise ValueError("extension ids must be 1..255 (0 or None = not negotiated)")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.packets_sent = 0
        self.octets_sent = 0
        # A jump of less than one 20 ms frame at a burst start would make the new burst's
        # first frame overlap the previous burst's last one in the receiver's timeline.
        self._min_step = clock_rate // 50
        self._high_seq = (random.getrandbits(16) if initial_seq is None else initial_seq) & 0xFFFF
        self._high_ts = (
            random.getrandbits(32) if initial_timestamp is None else initial_timestamp
        ) & 0xFFFFFFFF
        self._high_arrival = 0.0
        self._started = False
        self._burst_src = -1  # never equal to a real SSRC: the next write starts a burst
        self._seq_off = 0
        self._ts_off = 0

        tail: list[tuple[int, bytes]] = []
        if mid_ext_id and mid:
            mid_bytes = mid.encode()
            if len(mid_bytes) > 255:
                raise ValueError("MID longer than 255 octets")
            tail.append((mid_ext_id, mid_bytes))
        self._plain = self._template(tail)
        if audio_level_id:
            # The level element goes first so its value octet sits at a fixed offset.
            self._leveled: bytearray | None = self._template([(audio_level_id, b"\x00")] + tail)
            # 16 = fixed header + CSRC, 4 = extension header; then the element header octet(s).
            two_byte = _U16.unpack_from(self._leveled, 16)[0] != _ONE_BYTE_PROFILE
            self._level_pos = 16 + 4 + (2 if two_byte else 1)
        else:
            self._leveled = None
            self._level_pos = 0

    def _template(self, elements: list[tuple[int, bytes]]) -> bytearray:
        """A complete header (CC=1) with these extension elements; per-packet fields zero."""
        ext = _extension_block(elements) if elements else b""
        b0 = 0x81 | (0x10 if ext else 0)
        return bytearray(_FIXED.pack(b0, self.payload_type, 0, 0, self.ssrc) + bytes(4) + ext)

    def new_burst(self) -> None:
        """Make the next ``write`` start a burst (speaker changed, or granted again)."""
        self._burst_src = -1

    def _start_burst(self, src_ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        """Anchor the offsets so that this packet continues the downlink stream."""
        if self._started:
            out_seq = (self._high_seq + 1) & 0xFFFF
            step = round((arrival - self._high_arrival) * self.clock_rate)
            if step < self._min_step:
                step = self._min_step
            out_ts = (self._high_ts + step) & 0xFFFFFFFF
        else:
            out_seq = self._high_seq
            out_ts = self._high_ts
            self._started = True
        self._seq_off = out_seq - seq
        self._ts_off = out_ts - timestamp
        # Anchor the "highest" trackers on this packet so write() can only move them forward.
        self._high_seq = out_seq
        self._high_ts = out_ts
        self._high_arrival = arrival
        self._burst_src = src_ssrc
        _U32.pack_into(self._plain, 12, src_ssrc)
        if self._leveled is not None:
            _U32.pack_into(self._leveled, 12, src_ssrc)

    def write(
        self,
        src_ssrc: int,
        seq: int,
        timestamp: int,
        level: int,
        payload: bytes | bytearray | memoryview,
        arrival: float,
    ) -> bytes:
        """The complete plaintext RTP packet for this listener: :meth:`header` + payload.

        ``level`` is the raw RFC 6464 octet from ``read_uplink`` (-1 = none); ``arrival`` is
        the uplink packet's arrival time in seconds (any monotonic clock, used for gaps).
        """
        return _join((self.header(src_ssrc, seq, timestamp, level, len(payload), arrival), payload))

    def header(
        self,
        src_ssrc: int,
        seq: int,
        timestamp: int,
        level: int,
        payload_length: int,
        arrival: float,
    ) -> bytearray:
        """HOT PATH: this listener's RTP header for the talker packet described.

        Returns the rewriter's own header buffer, patched in place: valid until the next call,
        so use it at once (the router copies it straight into the SRTP buffer with the
        payload, which saves building a packet per listener). Arguments as in :meth:`write`.
        """
        if src_ssrc != self._burst_src:
            self._start_burst(src_ssrc, seq, timestamp, arrival)
            marker = 0x80
        else:
            marker = 0
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (timestamp + self._ts_off) & 0xFFFFFFFF
        if (out_seq - self._high_seq) & 0xFFFF < 0x8000:
            self._high_seq = out_seq
        if (out_ts - self._high_ts) & 0xFFFFFFFF < 0x80000000:
            self._high_ts = out_ts
            self._high_arrival = arrival
        hdr = self._leveled
        if level < 0 or hdr is None:
            hdr = self._plain
        else:
            hdr[self._level_pos] = level & 0xFF
        _PATCH.pack_into(hdr, 1, marker | self.payload_type, out_seq, out_ts)
        self.packets_sent += 1
        self.octets_sent += payload_length
        return hdr

    def rtp_timestamp_at(self, now: float) -> int | None:
        """The RTP timestamp of this stream at time ``now`` (same clock as ``arrival``).

        For RTCP sender reports: the timestamp that corresponds to the report's NTP time.
        None before the first packet (no SR may be sent then).
        """
        if not self._started:
            return None
        return (self._high_ts + round((now - self._high_arrival) * self.clock_rate)) & 0xFFFFFFFF
