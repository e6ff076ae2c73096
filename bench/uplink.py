"""A synthetic talker's RTP stream, and the send log listeners match received packets against.

How a listener knows which talker packet it received, without decrypting it: SRTP encrypts
only the payload, and the SFU carries the RFC 6464 audio-level octet through unchanged (it
only moves it to the listener's extension id). So the talker writes the low 7 bits of its own
sequence number as the level value (V bit set: "voice"), and keeps a ring of 128 send times
and full sequence numbers indexed by those 7 bits. A listener reads CSRC (= talker SSRC) and
the level octet from the clear header and finds the send time and the talker's sequence
number in two list reads. The ring covers 128 x 20 ms = 2.56 s, far more than any latency
or pre-roll delay we accept (pre-roll holds at most ~300 ms).

The cost is that the level values are synthetic (0..127 -dBov, cycling): the bench never
looks at them as levels. Sans-IO: the caller injects the clock and sends the returned bytes.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

__all__ = ["FRAME_NS", "RING", "TalkLog", "UplinkError", "UplinkStream"]

#: A talker sends one 20 ms Opus frame per packet.
FRAME_NS = 20_000_000
#: Ring size of a TalkLog: the level octet carries 7 bits of the sequence number.
RING = 128
_MASK = RING - 1
_HEADER = struct.Struct("!BBHI")  # b0 patched once; M/PT, seq, timestamp patched per packet
_PATCH = struct.Struct("!BHI")


class UplinkError(ValueError):
    """Bad stream parameters."""


class TalkLog:
    """The send times (ns) and full sequence numbers of a talker's last 128 packets."""

    __slots__ = ("burst_first", "frames", "grant_seq", "name", "send_ns", "seqs", "ssrc")

    def __init__(self, ssrc: int, frames: Sequence[bytes], name: str = "") -> None:
        self.ssrc = ssrc
        self.send_ns: list[int] = [0] * RING
        self.seqs: list[int] = [-1] * RING
        #: the Opus loop: packet with full sequence number s carries frames[s % len(frames)]
        self.frames = frames
        self.name = name
        #: first sequence number sent after the current grant arrived; packets below it were
        #: sent while the floor request travelled (pre-roll, held by the server on purpose)
        self.grant_seq = 0
        #: first sequence number of the current talk burst
        self.burst_first = 0


class UplinkStream:
    """One talker's uplink: Opus frames from a pre-encoded loop, RTP with the audio-level and
    MID extensions (one-byte form, ids as negotiated), SRTP-protected by ``protect``.

    ``seq`` is a full (unwrapped) counter; the wire carries its low 16 bits.
    """

    __slots__ = (
        "_burst_start",
        "_clock",
        "_frames",
        "_header",
        "_level_pos",
        "_nframes",
        "_protect",
        "_pt",
        "first_seq",
        "log",
        "packets_sent",
        "seq",
        "timestamp",  # RTP timestamp at tick 0
    )

    def __init__(
        self,
        ssrc: int,
        frames: Sequence[bytes],
        protect: Callable[[bytes], bytes],
        clock: Callable[[], int],
        *,
        payload_type: int = 111,
        audio_level_id: int = 1,
        mid_ext_id: int | None = 4,
        mid: str = "0",
        initial_seq: int | None = None,
        initial_timestamp: int | None = None,
    ) -> None:
        if not frames:
            raise UplinkError("no Opus frames to send")
        if not 1 <= audio_level_id <= 14 or (mid_ext_id is not None and not 1 <= mid_ext_id <= 14):
            raise UplinkError("extension ids must be 1..14 (one-byte header form)")
        if not 0 <= payload_type <= 127:
            raise UplinkError("payload type must be 0..127")
        mid_bytes = mid.encode()
        if mid_ext_id is not None and not 1 <= len(mid_bytes) <= 16:
            raise UplinkError("MID must be 1..16 octets")
        self.log = TalkLog(ssrc, frames)
        self._frames = frames
        self._nframes = len(frames)
        self._protect = protect
        self._clock = clock
        self._pt = payload_type
        self.seq = random.getrandbits(15) if initial_seq is None else initial_seq
        self.first_seq = self.seq
        self.timestamp = random.getrandbits(32) if initial_timestamp is None else initial_timestamp
        self.packets_sent = 0
        self._burst_start = True
        body = bytes(((audio_level_id << 4), 0x80))
        if mid_ext_id is not None:
            body += bytes(((mid_ext_id << 4) | (len(mid_bytes) - 1),)) + mid_bytes
        body += b"\x00" * (-len(body) % 4)
        ext = struct.pack("!HH", 0xBEDE, len(body) // 4) + body
        header = bytearray(_HEADER.pack(0x90, payload_type, 0, 0) + struct.pack("!I", ssrc) + ext)
        self._header = header
        self._level_pos = 12 + 4 + 1

    def rekey(self, protect: Callable[[bytes], bytes]) -> None:
        """Protect from now on with a new SRTP session (a new media session after a re-offer).
        The sequence numbers and the send log go on: listeners match packets as before."""
        self._protect = protect

    def start_burst(self) -> None:
        """The next packet opens a talk burst (marker bit), as a browser's first packet after
        the track is switched in."""
        self._burst_start = True
        self.log.burst_first = self.seq

    def next_packet(self, tick: int, samples: int = 960) -> bytes:
        """HOT PATH (per talker per 20 ms): the next SRTP packet, to be sent at once.

        ``tick`` counts 20 ms frames on the bench's shared clock: the RTP timestamp follows
        the capture clock, so it also advances while the talker is silent, as in a browser.

        The send time is read from ``clock`` (ns) after SRTP protection, so that the
        latency a listener measures is the forwarding path, not our own encryption.
        """
        seq = self.seq
        self.seq = seq + 1
        idx = seq & _MASK
        header = self._header
        header[self._level_pos] = 0x80 | idx
        marker = 0x80 if self._burst_start else 0
        self._burst_start = False
        _PATCH.pack_into(
            header, 1, marker | self._pt, seq & 0xFFFF, (self.timestamp + tick * samples) & 0xFFFFFFFF
        )
        packet = self._protect(bytes(header) + self._frames[seq % self._nframes])
        log = self.log
        log.seqs[idx] = seq
        log.send_ns[idx] = self._clock()
        self.packets_sent += 1
        return packet
