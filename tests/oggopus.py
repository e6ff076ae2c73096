"""Reading an Ogg Opus file back, independently of sfu/ogg.py: pages, checksums, headers,
packets, and the audio (decoded with opuslib), for the recording tests.

The CRC here is the textbook bit-by-bit definition (RFC 3533 §6: polynomial 0x04c11db7,
initial value 0, no reflection, no final XOR), not the writer's table trick, so that a
writer bug cannot hide behind the same bug in the reader.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

HEADER = struct.Struct("<4sBBqIIIB")


def crc_reference(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


@dataclass
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    lacing: list[int]
    body: bytes
    packets: list[bytes] = field(default_factory=list)  # packets completed on this page


def read_pages(data: bytes) -> list[Page]:
    """Every page of ``data``, each checked (capture pattern, version, CRC); the packets
    reassembled from the lacing values. AssertionError on anything malformed."""
    pages: list[Page] = []
    offset = 0
    partial = b""
    while offset < len(data):
        capture, version, flags, granule, serial, sequence, crc, count = HEADER.unpack_from(
            data, offset)
        assert capture == b"OggS" and version == 0, f"bad page header at {offset}"
        lacing = list(data[offset + HEADER.size: offset + HEADER.size + count])
        body_at = offset + HEADER.size + count
        end = body_at + sum(lacing)
        raw = bytearray(data[offset:end])
        raw[22:26] = b"\0\0\0\0"
        assert crc_reference(bytes(raw)) == crc, f"CRC of page {sequence} is wrong"
        page = Page(flags, granule, serial, sequence, lacing, data[body_at:end])
        at = 0
        for value in lacing:
            partial += page.body[at: at + value]
            at += value
            if value < 255:
                page.packets.append(partial)
                partial = b""
        pages.append(page)
        offset = end
    assert partial == b"", "the last packet is unfinished"
    return pages


@dataclass
class OggOpus:
    pages: list[Page]
    channels: int
    pre_skip: int
    input_rate: int
    vendor: str
    tags: dict[str, str]
    audio: list[bytes]  # the audio packets, in order

    @property
    def final_granule(self) -> int:
        return self.pages[-1].granule


def parse(data: bytes) -> OggOpus:
    """The file's structure, checked against RFC 7845 §3 and §5."""
    pages = read_pages(data)
    assert pages[0].flags == 0x02 and pages[0].packets and len(pages[0].packets) == 1
    assert pages[-1].flags & 0x04 and all(not p.flags & 0x04 for p in pages[:-1])
    assert all(not p.flags & 0x02 for p in pages[1:])
    assert [p.sequence for p in pages] == list(range(len(pages)))
    assert len({p.serial for p in pages}) == 1
    head = pages[0].packets[0]
    magic, version, channels, pre_skip, rate, gain, family = struct.unpack("<8sBBHIhB", head)
    assert (magic, version, gain, family) == (b"OpusHead", 1, 0, 0)
    assert pages[1].packets and len(pages[1].packets) == 1 and pages[1].granule == 0
    tags_packet = pages[1].packets[0]
    assert tags_packet[:8] == b"OpusTags"
    (vendor_len,) = struct.unpack_from("<I", tags_packet, 8)
    vendor = tags_packet[12: 12 + vendor_len].decode()
    at = 12 + vendor_len
    (count,) = struct.unpack_from("<I", tags_packet, at)
    at += 4
    tags = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", tags_packet, at)
        key, _, value = tags_packet[at + 4: at + 4 + length].decode().partition("=")
        tags[key] = value
        at += 4 + length
    audio = [packet for page in pages[2:] for packet in page.packets]
    granules = [p.granule for p in pages[2:]]
    assert granules == sorted(granules), "granule positions go back"
    return OggOpus(pages, channels, pre_skip, rate, vendor, tags, audio)


def decode(data: bytes) -> tuple[OggOpus, list[int]]:
    """The file and its audio as 48 kHz samples (first channel), pre-skip dropped and cut
    at the last granule position, as a player does (RFC 7845 §4.2, §4.5)."""
    import opuslib

    info = parse(data)
    decoder = opuslib.Decoder(48000, info.channels)
    pcm = bytearray()
    for packet in info.audio:
        pcm += decoder.decode(packet, 5760)
    samples = list(struct.unpack(f"<{len(pcm) // 2}h", pcm))[:: info.channels]
    return info, samples[info.pre_skip: info.final_granule]


def frequency(samples: list[int], rate: int = 48000) -> float:
    """The frequency of a steady tone, from its zero crossings (after removing any offset)."""
    mean = sum(samples) / len(samples)
    signs = [s - mean >= 0 for s in samples]
    crossings = sum(1 for x, y in zip(signs, signs[1:]) if x != y)
    return crossings / 2 / (len(samples) / rate)


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
