"""RFC 2198 redundant audio (RED) payloads of Opus: check, split, build, re-tag.

Why RED: on a lossy mobile uplink or downlink a lost 20 ms frame is a click or a gap. A RED
sender (Chromium does it when the answer puts ``red/48000/2`` first) repeats the previous
frame inside each packet, so one lost packet is recovered from the next. The SFU never
decodes audio: it forwards RED payloads as they are to listeners that negotiated RED and
only the *primary* block (the newest frame, always the last block) to those that did not.

The payload (RFC 2198 §3)::

    redundant block header, 4 octets each:  F=1 | block PT (7) | timestamp offset (14)
                                            | block length (10)
    primary block header, 1 octet:          F=0 | block PT (7)
    the redundant blocks' data, in header order, then the primary block's data

A redundant block's timestamp is the packet's minus its offset, so the SFU's renumbering
(a fixed offset per burst, sfu/rewriter.py) keeps every block's timing right.

What we accept, because we hand the primary block to Opus decoders as a plain Opus packet:
every block's PT is the talker's Opus PT (the offer's ``a=fmtp:<red> <opus>/<opus>`` says so),
at most :data:`MAX_REDUNDANT` redundant blocks, block lengths inside the payload, and a
non-empty primary. Anything else raises :class:`RedError` and the core drops the packet.

Sans-IO and allocation-light: :func:`red_layout` is the only function on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MAX_REDUNDANT",
    "RedError",
    "build_red",
    "red_layout",
    "retag_red",
    "split_red",
]

#: Redundant blocks per packet we forward. Chromium sends one (the previous frame); RFC 2198
#: allows more, and a few more cost nothing, but a packet of 200 one-byte blocks is no audio.
MAX_REDUNDANT = 4
#: 14-bit timestamp offsets and 10-bit block lengths (RFC 2198 §3).
MAX_TS_OFFSET = 0x3FFF
MAX_BLOCK_LENGTH = 0x3FF


class RedError(ValueError):
    """A RED payload we will not forward; ``str()`` says why (for counters and tests)."""


def red_layout(payload: bytes | bytearray | memoryview, opus_pt: int) -> tuple[int, int]:
    """HOT PATH (RED packets only): ``(redundant, primary_start)`` of a RED payload.

    ``redundant`` is the number of redundant blocks (0..MAX_REDUNDANT), so the block headers
    are at offsets ``0, 4, ..., 4 * redundant``; ``payload[primary_start:]`` is the primary
    block, a plain Opus packet. Raises :class:`RedError` if the payload is malformed or
    carries anything but Opus under ``opus_pt``.
    """
    n = len(payload)
    i = 0
    redundant = 0
    data = 0
    while True:
        if i >= n:
            raise RedError("RED block headers run past the end of the payload")
        b = payload[i]
        if b & 0x7F != opus_pt:
            raise RedError(f"RED block of payload type {b & 0x7F}, not Opus ({opus_pt})")
        if not b & 0x80:
            break
        if redundant == MAX_REDUNDANT:
            raise RedError(f"more than {MAX_REDUNDANT} redundant RED blocks")
        if i + 4 > n:
            raise RedError("RED block header truncated")
        data += ((payload[i + 2] & 0x03) << 8) | payload[i + 3]
        redundant += 1
        i += 4
    start = i + 1 + data
    if start >= n:
        raise RedError("RED block lengths run past the end of the payload (or no primary)")
    return redundant, start


def split_red(
    payload: bytes | bytearray | memoryview, opus_pt: int
) -> list[tuple[int, bytes]]:
    """Every block of a RED payload as ``(timestamp offset, data)``, oldest first; the last
    is the primary (offset 0). For receivers (the bench, tests); :class:`RedError` as above."""
    redundant, start = red_layout(payload, opus_pt)
    blocks = []
    pos = 4 * redundant + 1
    for k in range(redundant):
        h = 4 * k
        offset = (payload[h + 1] << 6) | (payload[h + 2] >> 2)
        length = ((payload[h + 2] & 0x03) << 8) | payload[h + 3]
        blocks.append((offset, bytes(payload[pos : pos + length])))
        pos += length
    blocks.append((0, bytes(payload[start:])))
    return blocks


def build_red(
    opus_pt: int, primary: bytes, redundant: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """A RED payload: ``redundant`` as ``(timestamp offset, data)`` oldest first, then
    ``primary``. ValueError for what RFC 2198 cannot express (offset, length, PT)."""
    if not 0 <= opus_pt <= 127:
        raise ValueError("payload type must be 0..127")
    if not primary:
        raise ValueError("the primary block must not be empty")
    headers = bytearray()
    for offset, data in redundant:
        if not 0 <= offset <= MAX_TS_OFFSET:
            raise ValueError(f"timestamp offset {offset} does not fit 14 bits")
        if len(data) > MAX_BLOCK_LENGTH:
            raise ValueError(f"a {len(data)}-byte block does not fit RED's 10-bit length")
        headers += bytes((0x80 | opus_pt, (offset >> 6) & 0xFF,
                          ((offset & 0x3F) << 2) | (len(data) >> 8), len(data) & 0xFF))
    headers.append(opus_pt)
    return bytes(headers) + b"".join(data for _, data in redundant) + primary


def retag_red(payload: bytes, redundant: int, opus_pt: int) -> bytes:
    """``payload`` (already checked by :func:`red_layout`) with every block's PT set to
    ``opus_pt``: for listeners whose Opus PT differs from the talker's."""
    out = bytearray(payload)
    for k in range(redundant):
        out[4 * k] = 0x80 | opus_pt
    out[4 * redundant] = opus_pt
    return bytes(out)
