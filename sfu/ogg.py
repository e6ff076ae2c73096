"""Ogg Opus files from RTP payloads, without transcoding: RFC 7845 in RFC 3533 pages.

Pure: packets in, the bytes of a whole file out (a transmission is bounded, sfu/capture.py,
so it fits in memory). Nothing is decoded; a packet's length is read from its TOC byte
(sfu/opus.py).

The file, as RFC 7845 §3 lays it out:

* page 0 (beginning of stream): the ID header ``OpusHead`` (§5.1): version 1, the channel
  count of the first packet's TOC (stereo flag), **pre-skip** :data:`PRE_SKIP`, the input
  sample rate 48,000 Hz (what browsers capture at; informational), gain 0, mapping family 0;
* page 1: the comment header ``OpusTags`` (§5.2): vendor ``walkie`` and the caller's tags
  (the recorder gives ``ROOM``, ``TALKER`` and ``DATE``, the UTC start);
* audio pages: whole packets (none is split across pages), a page closed at 255 lacing
  values or one second of audio, the last one flagged end of stream. Each page's granule
  position is the number of 48 kHz samples of every packet completed up to it (§4).

Why pre-skip 312: it is libopus's encoder delay at 48 kHz (4 ms look-ahead and 2.5 ms of
resampling delay: what ``opusenc`` writes), and every browser encodes with libopus, so the
decoded audio lines up with what the talker said. RFC 7845 §4.2 recommends 3,840 (80 ms) for
a stream *cropped* from a longer one, to let the decoder converge; a transmission does begin
mid-way in the browser's encoder, but it begins with the pre-roll (sfu/peer.py), the
audio before the floor was granted, and cutting 80 ms of every turn would cut what the
pre-roll exists to keep: the first syllable.

Timeline across lost packets: the granule position must advance by exactly the samples of
the packets on the page (RFC 7845 §4: a muxer must not make it jump), so a gap in the RTP
timestamps (packets lost on the way, or a talker's DTX silence) is filled, as §4.1
("Repairing Gaps in Real-Time Streams") recommends, with packets that ask the decoder for
packet loss concealment: code 3 packets (RFC 6716 §3.2.5) whose frames are all zero bytes
long (§3.2.1: a lost frame), built on the TOC of the packet before the gap (same mode,
bandwidth, channels and frame size, as §4.1 advises) when the gap is a multiple of its
frame size, else on CELT frames of the largest size that divides the gap. A gap is rounded
down to 2.5 ms (the shortest Opus frame; RTP timestamps of real packets never need more).
So a recording lasts as long as the talk did, lost packets sound like a listener's
concealment, and no audio is ever decoded here. Packets are put in RTP sequence order
(duplicates dropped); a packet whose timestamp goes back is placed right after the one
before it, never rewinding the granule position; a packet with no valid TOC is left out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence

from .capture import CapturedPacket
from .opus import MAX_PACKET_SAMPLES, OPUS_RATE, packet_samples

__all__ = ["PRE_SKIP", "VENDOR", "ogg_crc", "ogg_opus", "opus_head", "opus_tags", "timeline"]

#: Samples a decoder drops from the start: libopus's encoder delay (see the module docstring).
PRE_SKIP = 312
VENDOR = "walkie"
#: An audio page is closed once it holds this much audio (seeking stays fine-grained).
PAGE_SAMPLES = OPUS_RATE
#: The shortest Opus frame, 2.5 ms: a gap is filled in whole multiples of it.
MIN_FRAME = 120
#: CELT-only fullband configs (RFC 6716 §3.1) by frame size: the fill for gaps that are no
#: multiple of the previous packet's frame.
_CELT_FB = {960: 31, 480: 30, 240: 29, 120: 28}

_PAGE_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seq, crc, n
_CONTINUED, _BOS, _EOS = 0x01, 0x02, 0x04

# -- CRC-32 of Ogg (RFC 3533 §6): polynomial 0x04c11db7, initial value 0, no reflection,
# no final XOR. zlib computes the reflected form of the same polynomial in C; reflecting
# every input byte, starting zlib's register at 0 and reflecting the result gives Ogg's
# (a CRC over bit-reversed input is the bit-reversed CRC). tests/sfu/test_ogg.py checks it
# against the textbook bit-by-bit definition.
_REFLECT = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def ogg_crc(data: bytes | bytearray) -> int:
    """Ogg's page checksum of ``data`` (the page with its CRC field zeroed)."""
    reflected = zlib.crc32(bytes(data).translate(_REFLECT), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def opus_head(channels: int, pre_skip: int = PRE_SKIP, input_rate: int = OPUS_RATE) -> bytes:
    """The ID header (RFC 7845 §5.1), channel mapping family 0 (mono or stereo)."""
    if channels not in (1, 2):
        raise ValueError("mapping family 0 carries 1 or 2 channels")
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, input_rate, 0, 0)


def opus_tags(tags: Mapping[str, str], vendor: str = VENDOR) -> bytes:
    """The comment header (RFC 7845 §5.2): ``KEY=value`` comments, UTF-8.

    A key is printable ASCII without ``=`` (ValueError otherwise); values are any text.
    """
    parts = [b"OpusTags", _counted(vendor.encode()), struct.pack("<I", len(tags))]
    for key, value in tags.items():
        if not key or not all(0x20 <= ord(c) <= 0x7D and c != "=" for c in key):
            raise ValueError(f"tag name {key!r}: printable ASCII without '=' only")
        parts.append(_counted(f"{key}={value}".encode()))
    return b"".join(parts)


def _counted(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def _signed32(delta: int) -> int:
    delta &= 0xFFFFFFFF
    return delta - 0x1_0000_0000 if delta & 0x8000_0000 else delta


def _in_sequence_order(packets: Iterable[CapturedPacket]) -> list[CapturedPacket]:
    """``packets`` (as received) by RTP sequence number, unwrapped, duplicates dropped."""
    keyed: dict[int, CapturedPacket] = {}
    extended = previous = None
    for packet in packets:
        if extended is None or previous is None:
            extended = packet.sequence
        else:
            step = (packet.sequence - previous) & 0xFFFF
            extended += step - 0x10000 if step & 0x8000 else step
        previous = packet.sequence
        keyed.setdefault(extended, packet)
    return [keyed[k] for k in sorted(keyed)]


def _concealment(reference: int, gap: int) -> list[tuple[bytes, int]]:
    """Packets asking for ``gap`` samples of loss concealment (``gap`` a multiple of 120),
    shaped after the TOC byte ``reference`` (see the module docstring)."""
    config = reference >> 3
    stereo = reference & 0x04
    frame = packet_samples(bytes([config << 3]))
    if gap % frame:
        frame = next(size for size in _CELT_FB if gap % size == 0)
        config = _CELT_FB[frame]
    toc = (config << 3) | stereo | 3  # code 3: a frame count follows
    per_packet = MAX_PACKET_SAMPLES // frame
    fills = []
    frames = gap // frame
    while frames:
        count = min(frames, per_packet)
        # Count byte: CBR, no padding, `count` frames; no frame data: every frame is lost.
        fills.append((bytes([toc, count]), count * frame))
        frames -= count
    return fills


def timeline(packets: Iterable[CapturedPacket]) -> list[tuple[bytes, int]]:
    """The Opus packets of the file in order, with their lengths in 48 kHz samples: the
    captured ones, and loss concealment where the RTP timestamps leave a gap."""
    ordered = _in_sequence_order(packets)
    out: list[tuple[bytes, int]] = []
    if not ordered:
        return out
    base = ordered[0].timestamp
    cursor = 0  # samples so far
    reference = None
    for packet in ordered:
        samples = packet_samples(packet.payload)
        if not samples:
            continue  # not an Opus packet: a decoder would refuse the file
        gap = _signed32(packet.timestamp - base) - cursor
        gap -= gap % MIN_FRAME
        if gap > 0:
            fills = _concealment(packet.payload[0] if reference is None else reference, gap)
            out.extend(fills)
            cursor += gap
        out.append((packet.payload, samples))
        cursor += samples
        reference = packet.payload[0]
    return out


def _page(flags: int, granule: int, serial: int, sequence: int,
          packets: Sequence[bytes]) -> bytes:
    """One page of whole packets (each under 65,025 bytes: an Opus packet is at most 1,275)."""
    lacing = bytearray()
    for packet in packets:
        full, rest = divmod(len(packet), 255)
        lacing += b"\xff" * full
        lacing.append(rest)
    if len(lacing) > 255:
        raise ValueError("more than 255 lacing values on one page")
    header = _PAGE_HEADER.pack(b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(page))
    return bytes(page)


def ogg_opus(packets: Iterable[CapturedPacket], tags: Mapping[str, str],
             serial: int = 0) -> bytes:
    """A whole Ogg Opus file of ``packets`` (a transmission's, in any order) with ``tags``.

    ValueError when no packet is an Opus packet (there would be no audio to write).
    """
    audio = timeline(packets)
    if not audio:
        raise ValueError("no Opus packet to write")
    serial &= 0xFFFFFFFF
    channels = 2 if audio[0][0][0] & 0x04 else 1
    pages = [_page(_BOS, 0, serial, 0, [opus_head(channels)]),
             _page(0, 0, serial, 1, [opus_tags(tags)])]
    granule = 0
    page: list[bytes] = []
    lacing = page_samples = 0
    for packet, samples in audio:
        need = len(packet) // 255 + 1
        if page and (lacing + need > 255 or page_samples >= PAGE_SAMPLES):
            pages.append(_page(0, granule, serial, len(pages), page))
            page, lacing, page_samples = [], 0, 0
        page.append(packet)
        lacing += need
        page_samples += samples
        granule += samples
    pages.append(_page(_EOS, granule, serial, len(pages), page))
    return b"".join(pages)
