"""The room's channel as one RTP stream per listener: shared numbering, per-listener headers.

Why one downlink stream per listener: the browser never renegotiates when the talker
changes. We make the talkers' packets look like one continuous stream (continuous sequence
numbers, timestamps advanced by the wall-clock gap between bursts, the marker bit on each
burst start) and put the talker in the CSRC, so ``getContributingSources()`` shows who talks.

Two parts, so that the per-packet work is done once per packet where it can be:

* :class:`DownlinkStream`, one per room: the renumbering. For every forwarded talker packet
  it gives the marker, sequence number and timestamp of the room's stream, once.
* :class:`ListenerHeader`, one per listener: a preassembled RTP header with that listener's
  SSRC, payload type and header-extension ids (RFC 8285; MID per RFC 9143), patched per
  packet with one ``pack_into`` and, when the talker sent one, the audio-level octet
  (RFC 6464).

Every listener of a room thus carries the room's timestamps and sequence numbers under its
own SSRC and SRTP keys, less one thing: a talker never gets its own packets back, so each
listener's sequence numbers are the room's minus the packets it talked itself (the fan-out
subtracts the peer's ``seq_skip``) and stay gapless. A listener's stream starts wherever the
room's stream is when it starts listening (RFC 3550 asks for unpredictable initial values:
the room's stream starts random), and a listener cut off for a while (its address lost)
sees the packets it missed as lost, which they are.

Sans-IO: no sockets, no clock reads (the caller passes arrival times).
"""

from __future__ import annotations

import random
import struct

from .rtp import extension_block

__all__ = ["MAX_HEADER_BYTES", "DownlinkStream", "ListenerHeader"]

#: The longest listener header we build: fixed header, one CSRC, audio level and a MID of up
#: to 32 octets in RFC 8285 form. The transmit arena's slots are sized with it.
MAX_HEADER_BYTES = 64

_FIXED = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
#: What a listener header patches per packet, at offset 1: M/PT, sequence, timestamp.
PATCH = struct.Struct("!BHI")
_ONE_BYTE_PROFILE = 0xBEDE


class DownlinkStream:
    """The renumbering of one room's channel.

    Within a burst the talker's own numbering is kept by a fixed offset, so its losses and
    reordering reach the listeners unchanged (NACK-free audio: the jitter buffer conceals).
    The next burst continues from the *highest* sequence number and timestamp sent so far,
    not the last one written, so a reordered tail of the previous burst cannot make the new
    burst reuse numbers. A packet older than its burst's first packet (reordered across the
    burst start) maps just below that first packet and may repeat a number of the previous
    burst; the receiver treats it as a duplicate.
    """

    __slots__ = (
        "clock_rate",
        "packets",
        "octets",
        "csrc",
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
        *,
        clock_rate: int = 48000,
        initial_seq: int | None = None,
        initial_timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.clock_rate = clock_rate
        #: talker packets (and their payload octets) the room's stream carried
        self.packets = 0
        self.octets = 0
        #: the talker of the current burst (what every listener's CSRC says), -1 before any
        self.csrc = -1
        # A jump of less than one 20 ms frame at a burst start would make the new burst's
        # first frame overlap the previous burst's last one in the receiver's timeline.
        self._min_step = clock_rate // 50
        self._high_seq = (rng.getrandbits(16) if initial_seq is None else initial_seq) & 0xFFFF
        self._high_ts = (
            rng.getrandbits(32) if initial_timestamp is None else initial_timestamp
        ) & 0xFFFFFFFF
        self._high_arrival = 0.0
        self._started = False
        self._burst_src = -1  # never equal to a real SSRC: the next packet starts a burst
        self._seq_off = 0
        self._ts_off = 0

    def new_burst(self) -> None:
        """Make the next packet start a burst (speaker changed, or granted again)."""
        self._burst_src = -1

    def next(self, src_ssrc: int, seq: int, timestamp: int, arrival: float, octets: int
             ) -> tuple[int, int, int]:
        """HOT PATH, once per forwarded packet: ``(marker, seq, timestamp)`` in the room's
        stream for the talker packet described; ``marker`` is 0x80 on a burst start, else 0.

        ``arrival`` is the packet's arrival time in seconds (any monotonic clock, used for
        the gap between bursts); ``octets`` its payload length, for the sender reports.
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
        self.packets += 1
        self.octets += octets
        return marker, out_seq, out_ts

    def _start_burst(self, src_ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        """Anchor the offsets so that this packet continues the stream."""
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
        # Anchor the "highest" trackers on this packet so next() can only move them forward.
        self._high_seq = out_seq
        self._high_ts = out_ts
        self._high_arrival = arrival
        self._burst_src = src_ssrc
        self.csrc = src_ssrc

    def rtp_timestamp_at(self, now: float) -> int | None:
        """The stream's RTP timestamp at time ``now`` (same clock as ``arrival``).

        For RTCP sender reports: the timestamp that corresponds to the report's NTP time.
        None before the first packet.
        """
        if not self._started:
            return None
        return (self._high_ts + round((now - self._high_arrival) * self.clock_rate)) & 0xFFFFFFFF

    # -- say-again (sfu/replayer.py): packets to one listener outside the room's talk --------

    def replay_anchor(self, now: float) -> int:
        """The timestamp a replay starting at ``now`` begins with, after everything sent.

        As a new burst would: the stream's highest timestamp advanced by the time since (at
        least one frame). The next live packet starts a burst of its own (marker, timestamps
        after the replay's: see :meth:`replayed`), whoever talks.
        """
        self._burst_src = -1
        if not self._started:
            self._started = True  # the next burst continues after the replay's numbers
            return self._high_ts
        step = round((now - self._high_arrival) * self.clock_rate)
        return (self._high_ts + max(step, self._min_step)) & 0xFFFFFFFF

    @property
    def next_seq(self) -> int:
        """The room's next sequence number: a replay packet to one listener is numbered
        with it, and that listener's ``seq_skip`` then steps one back, so the listener's
        numbers stay gapless while the room's are not consumed."""
        return (self._high_seq + 1) & 0xFFFF

    def replayed(self, timestamp: int, sent: float) -> None:
        """A replay packet stamped ``timestamp`` went out at ``sent``: later bursts start
        after it, so that no listener's timestamps ever go back."""
        if (timestamp - self._high_ts) & 0xFFFFFFFF < 0x80000000:
            self._high_ts = timestamp
            self._high_arrival = sent


class ListenerHeader:
    """One listener's RTP header: its SSRC, payload type and extension ids, preassembled.

    ``plain`` has no audio-level element (for packets that carry none), ``leveled`` has one
    whose value octet sits at ``level_pos`` (None when the listener did not negotiate the
    extension). Both carry one CSRC (the talker) and, if negotiated, the MID element.
    """

    __slots__ = ("ssrc", "payload_type", "plain", "leveled", "level_pos", "replay", "_csrc")

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        audio_level_id: int | None,
        mid_ext_id: int | None,
        mid: str | None,
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
        self._csrc = -1
        tail: list[tuple[int, bytes]] = []
        if mid_ext_id and mid:
            mid_bytes = mid.encode()
            if len(mid_bytes) > 255:
                raise ValueError("MID longer than 255 octets")
            tail.append((mid_ext_id, mid_bytes))
        self.plain = self._template(tail)
        self.leveled: bytearray | None = None
        self.level_pos = 0
        if audio_level_id:
            # The level element goes first so its value octet sits at a fixed offset.
            self.leveled = self._template([(audio_level_id, b"\x00")] + tail)
            # 16 = fixed header + CSRC, 4 = extension header; then the element header octet(s).
            two_byte = _U16.unpack_from(self.leveled, 16)[0] != _ONE_BYTE_PROFILE
            self.level_pos = 16 + 4 + (2 if two_byte else 1)
        if len(self.leveled or self.plain) > MAX_HEADER_BYTES:
            raise ValueError(f"MID {mid!r} is too long for an RTP header extension here")
        #: the header of say-again packets (sfu/replayer.py): no CSRC and no audio level, so
        #: that a replay never looks like someone talking live (the page knows it from
        #: signaling); the MID only
        self.replay = self._template(tail, csrc=False)

    def _template(self, elements: list[tuple[int, bytes]], csrc: bool = True) -> bytearray:
        """A complete header (CC=1, or 0 without ``csrc``) with these extension elements;
        per-packet fields zero."""
        ext = extension_block(elements) if elements else b""
        b0 = (0x81 if csrc else 0x80) | (0x10 if ext else 0)
        head = _FIXED.pack(b0, self.payload_type, 0, 0, self.ssrc)
        return bytearray(head + (bytes(4) if csrc else b"") + ext)

    def follow(self, csrc: int) -> None:
        """Name ``csrc`` (the burst's talker) in every header from now on."""
        if csrc != self._csrc:
            self._csrc = csrc
            _U32.pack_into(self.plain, 12, csrc)
            if self.leveled is not None:
                _U32.pack_into(self.leveled, 12, csrc)

    def header(self, marker: int, seq: int, timestamp: int, level: int) -> bytearray:
        """This listener's header for one packet of the stream (``level`` -1: none).

        Returns the template itself, patched in place: valid until the next call. The
        fan-out (sfu/transmit.py) inlines this for speed; this is the readable form.
        """
        head = self.leveled
        if level < 0 or head is None:
            head = self.plain
        else:
            head[self.level_pos] = level & 0xFF
        PATCH.pack_into(head, 1, marker | self.payload_type, seq, timestamp)
        return head
