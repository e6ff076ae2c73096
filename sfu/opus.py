"""What an Opus packet says about itself without being decoded: its length in samples.

The TOC byte of every Opus packet (RFC 6716 §3.1) names the frame duration (its config,
the top five bits) and how many frames the packet holds (the bottom two bits, code 0-3; code
3 has a frame count byte). That is all the media plane needs to know how much time a packet
covers: recordings (sfu/ogg.py) and captured transmissions (sfu/capture.py) use it, and no
audio is ever decoded in the server.
"""

from __future__ import annotations

__all__ = ["MAX_PACKET_SAMPLES", "OPUS_RATE", "SILENCE_FRAME", "packet_samples"]

#: Opus always runs its clock at 48 kHz in RTP (RFC 7587 §4.1) and in Ogg (RFC 7845 §4).
OPUS_RATE = 48000
#: No Opus packet may cover more than 120 ms (RFC 6716 §3.2.5).
MAX_PACKET_SAMPLES = 120 * 48

# Frame length in 48 kHz samples for each of the 32 configs (RFC 6716 §3.1, Table 2):
# SILK-only 10/20/40/60 ms (0-11), hybrid 10/20 ms (12-15), CELT-only 2.5/5/10/20 ms (16-31).
_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3 + [480, 960] * 2 + [120, 240, 480, 960] * 4
)

#: A 20 ms CELT-only mono packet (config 31, code 0) with no frame data: RFC 6716 §3.2.1
#: makes a frame of 0 or 1 byte a DTX/lost frame, so a decoder conceals it (packet loss
#: concealment) for 20 ms. Used to keep a recording's timeline across lost packets.
SILENCE_FRAME = bytes([31 << 3])


def packet_samples(payload: bytes | bytearray | memoryview) -> int:
    """How many 48 kHz samples ``payload`` covers; 0 when it is not a valid Opus packet."""
    if not payload:
        return 0
    toc = payload[0]
    frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code < 3:
        count = 2
    else:
        if len(payload) < 2:
            return 0
        count = payload[1] & 0x3F
    samples = frame * count
    return samples if 0 < samples <= MAX_PACKET_SAMPLES else 0
