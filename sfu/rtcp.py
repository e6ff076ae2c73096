"""RTCP (RFC 3550 §6) packets: parsing, building, NTP time and the round-trip time.

The SFU terminates RTCP instead of forwarding it (a browser's reports describe the stream it
exchanged with us, which is not the stream any other member sees, so forwarded reports would
mislead the far end's congestion and jitter logic). What our reports say is decided in
sfu/reports.py, from the uplink statistics of sfu/reception.py; a listener's receiver
reports about its downlink come back to us and give the round-trip time
(``round_trip_time``).

Only the packet types we act on are decoded (SR, RR, SDES, BYE); feedback (RTPFB/PSFB), XR,
APP and anything else is kept opaque as ``UnknownRtcp`` so the caller can count or inspect it.
Browsers negotiate reduced-size RTCP (RFC 5506), so a datagram need not start with SR/RR;
the parser accepts any sequence of well-formed packets.

Sans-IO: no sockets, no clock reads; times are passed in by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "build_bye",
    "build_receiver_report",
    "build_sdes_cname",
    "build_sender_report",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_rtcp",
    "round_trip_time",
]

SR, RR, SDES, BYE = 200, 201, 202, 203
SDES_CNAME = 1

_HDR = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, NTP (64), RTP timestamp, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # SSRC, fraction<<24 | lost, highest seq, jitter, LSR, DLSR

# Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800


class RtcpError(ValueError):
    """Malformed RTCP, or values that cannot be encoded in an RTCP packet."""


@dataclass(slots=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: int  # fixed point /256, lost fraction since the previous report
    packets_lost: int  # cumulative, signed 24-bit (duplicates can make it negative)
    highest_seq: int  # extended: cycles << 16 | highest sequence number
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR received, 0 = none
    dlsr: int  # delay since that SR, units of 1/65536 s


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time of sending
    rtp_timestamp: int  # the same instant on the stream's RTP clock
    packet_count: int
    octet_count: int  # payload octets
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class SourceDescription:
    chunks: list[tuple[int, list[tuple[int, bytes]]]]  # (ssrc, [(item type, value)])


@dataclass(slots=True)
class Bye:
    ssrcs: list[int]
    reason: str | None = None


@dataclass(slots=True)
class UnknownRtcp:
    """A packet type we do not interpret (RTPFB 205, PSFB 206, XR 207, APP 204, ...)."""

    packet_type: int
    count: int  # the 5-bit count/format field
    body: bytes  # everything after the 4-octet header, RTCP padding removed


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye, UnknownRtcp]


# --------------------------------------------------------------------------- parsing


def _blocks(body: bytes, start: int, count: int) -> list[ReportBlock]:
    out = []
    for k in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, start + 24 * k)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        out.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return out


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks: list[tuple[int, list[tuple[int, bytes]]]] = []
    n = len(body)
    i = 0
    for _ in range(count):
        if i + 4 > n:
            raise RtcpError("SDES chunk truncated")
        ssrc = _U32.unpack_from(body, i)[0]
        i += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if i >= n:
                raise RtcpError("SDES chunk has no terminating null item")
            kind = body[i]
            if kind == 0:
                i += 1
                break
            if i + 2 > n:
                raise RtcpError("SDES item truncated")
            end = i + 2 + body[i + 1]
            if end > n:
                raise RtcpError("SDES item overruns the packet")
            items.append((kind, body[i + 2 : end]))
            i = end
        i = (i + 3) & ~3  # chunks start on 32-bit boundaries (the body starts on one)
        chunks.append((ssrc, items))
    return SourceDescription(chunks)


def _parse_bye(body: bytes, count: int) -> Bye:
    if 4 * count > len(body):
        raise RtcpError("BYE shorter than its SSRC list")
    ssrcs = [_U32.unpack_from(body, 4 * k)[0] for k in range(count)]
    reason = None
    i = 4 * count
    if i < len(body):
        end = i + 1 + body[i]
        if end > len(body):
            raise RtcpError("BYE reason overruns the packet")
        reason = body[i + 1 : end].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24 + 24 * count:
            raise RtcpError("SR shorter than its report blocks")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 0)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _blocks(body, 24, count))
    if packet_type == RR:
        if len(body) < 4 + 24 * count:
            raise RtcpError("RR shorter than its report blocks")
        return ReceiverReport(_U32.unpack_from(body, 0)[0], _blocks(body, 4, count))
    if packet_type == SDES:
        return _parse_sdes(body, count)
    if packet_type == BYE:
        return _parse_bye(body, count)
    return UnknownRtcp(packet_type, count, body)


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Split a (compound or reduced-size) RTCP datagram into decoded packets.

    RtcpError if any packet has the wrong version, a length that runs past the datagram or
    leaves a fragment of a header, bad padding, or a body too short for its count.
    """
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise RtcpError("empty RTCP datagram")
    out: list[RtcpPacket] = []
    off = 0
    while off < n:
        if off + 4 > n:
            raise RtcpError("RTCP header truncated")
        b0, packet_type, length = _HDR.unpack_from(data, off)
        if b0 >> 6 != 2:
            raise RtcpError("RTCP version is not 2")
        end = off + 4 * (length + 1)
        if end > n:
            raise RtcpError("RTCP length field runs past the datagram")
        body_end = end
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > end - off - 4:
                raise RtcpError("bad RTCP padding count")
            body_end = end - pad
        out.append(_parse_one(packet_type, b0 & 0x1F, data[off + 4 : body_end]))
        off = end
    return out


# --------------------------------------------------------------------------- building


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    if not 0 <= count <= 31:
        raise RtcpError("an RTCP packet carries at most 31 reports/chunks/SSRCs")
    return _HDR.pack(0x80 | count, packet_type, body_len // 4)


def _pack_blocks(blocks: list[ReportBlock]) -> bytes:
    out = []
    for b in blocks:
        if not -0x800000 <= b.packets_lost <= 0x7FFFFF:
            raise RtcpError("packets_lost does not fit in 24 signed bits")
        if not 0 <= b.fraction_lost <= 255:
            raise RtcpError("fraction_lost must be 0..255")
        try:
            out.append(
                _BLOCK.pack(
                    b.ssrc,
                    (b.fraction_lost << 24) | (b.packets_lost & 0xFFFFFF),
                    b.highest_seq,
                    b.jitter,
                    b.lsr,
                    b.dlsr,
                )
            )
        except struct.error as exc:
            raise RtcpError(str(exc)) from exc
    return b"".join(out)


def build_sender_report(sr: SenderReport) -> bytes:
    try:
        info = _SENDER_INFO.pack(
            sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp, sr.packet_count, sr.octet_count
        )
    except struct.error as exc:
        raise RtcpError(str(exc)) from exc
    body = info + _pack_blocks(sr.reports)
    return _header(len(sr.reports), SR, len(body)) + body


def build_receiver_report(rr: ReceiverReport) -> bytes:
    try:
        body = _U32.pack(rr.ssrc) + _pack_blocks(rr.reports)
    except struct.error as exc:
        raise RtcpError(str(exc)) from exc
    return _header(len(rr.reports), RR, len(body)) + body


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk holding one CNAME item (required in every compound)."""
    value = cname.encode()
    if len(value) > 255:
        raise RtcpError("CNAME longer than 255 octets")
    try:
        items = bytes((SDES_CNAME, len(value))) + value
        # At least one null octet ends the item list, then pad to the 32-bit boundary.
        chunk = _U32.pack(ssrc) + items + b"\x00" * (4 - len(items) % 4)
    except struct.error as exc:
        raise RtcpError(str(exc)) from exc
    return _header(1, SDES, len(chunk)) + chunk


def build_bye(ssrcs: list[int] | tuple[int, ...], reason: str | None = None) -> bytes:
    try:
        body = b"".join(_U32.pack(s) for s in ssrcs)
    except struct.error as exc:
        raise RtcpError(str(exc)) from exc
    if reason is not None:
        text = reason.encode()
        if len(text) > 255:
            raise RtcpError("BYE reason longer than 255 octets")
        tail = bytes((len(text),)) + text
        body += tail + b"\x00" * (-len(tail) % 4)
    return _header(len(ssrcs), BYE, len(body)) + body


# --------------------------------------------------------------------------- time


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word)."""
    return round((unix_time + NTP_UNIX_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR format (units of 1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, now_unix: float) -> float | None:
    """RTT in seconds from a report block about one of our streams (RFC 3550 §6.4.1).

    ``now_unix`` is the wall clock the SR's NTP time came from, read when the RR arrived.
    None if the receiver has not seen an SR from us yet (LSR 0). A slightly negative result
    (the 1/65536 s rounding of DLSR on a fast link) is reported as 0.0.
    """
    if block.lsr == 0:
        return None
    rtt = (ntp_middle32(ntp_timestamp(now_unix)) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return 0.0
    return rtt / 65536.0
