"""A room's current transmission, kept as received: the packets recording and replay share.

A *transmission* is one talker's turn: from the first packet forwarded for it (the
pre-roll's oldest, or the first after the grant) to the end of its tail after the floor
moved on (sfu/room.py ``TAIL_SECONDS``: the previous speaker's last packets forwarded after
its release belong to the turn that ended). The media core (sfu/core.py) owns one
:class:`TransmissionCapture` per room, only when recording or replay is on, feeds it every
packet it forwards (Opus payload after SRTP unprotect, the talker's own RTP sequence number
and timestamp, the arrival time) and hands a finished :class:`Transmission` out as an event.

Sans-IO: no clock, no file, no socket; the caller passes every time in. Nothing is decoded.

Bounds: a transmission keeps at most ``max_seconds`` of RTP time (counted from its first
packet's timestamp, either way, so that a talker's timestamp jump cannot stretch it) and
``max_bytes`` of memory: each packet counts its payload plus :data:`PACKET_OVERHEAD` (its
object and its fields), so that a flood of tiny packets is bounded as well as big ones. The
packet that would cross a bound, and every later one of the
same transmission, is not kept: the transmission is *cut* (``truncated``), and the capture
counts cut transmissions and packets (:attr:`TransmissionCapture.cut_transmissions`,
:attr:`TransmissionCapture.cut_packets`). So memory per room is bounded whatever a talker
sends, and a recording's gaps (filled in sfu/ogg.py) can never exceed ``max_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .opus import OPUS_RATE, packet_samples

__all__ = ["DEFAULT_MAX_BYTES", "PACKET_OVERHEAD", "CapturedPacket", "Transmission",
           "TransmissionCapture"]

#: What one kept packet costs besides its payload, as the byte bound counts it: a
#: ``CapturedPacket`` with its ``bytes`` header, int and float objects is about 150 bytes in
#: CPython, and under 40 once pickled (sfu/pool/messages.py); 64 keeps a whole transmission
#: within one control-channel frame when ``max_bytes`` is :data:`DEFAULT_MAX_BYTES`.
PACKET_OVERHEAD = 64
#: A default byte bound: 3 minutes of a browser's 32 kbit/s Opus at 50 packets per second,
#: and with per-packet overhead well under the control channel's 1 MiB frame.
DEFAULT_MAX_BYTES = 768 << 10


@dataclass(frozen=True, slots=True)
class CapturedPacket:
    """One forwarded talker packet as it arrived: RTP sequence and timestamp (the talker's
    own numbering, not the downlink's), Opus payload, arrival (the core's monotonic time)."""

    sequence: int
    timestamp: int
    payload: bytes
    arrival: float


def _signed32(delta: int) -> int:
    """A 32-bit RTP timestamp difference as a signed number (RFC 3550 §5.1 wrap-around)."""
    delta &= 0xFFFFFFFF
    return delta - 0x1_0000_0000 if delta & 0x8000_0000 else delta


@dataclass(slots=True)
class Transmission:
    """One talker's turn in a room: its packets in arrival order.

    ``talker`` is the media peer id, ``started_at`` the wall-clock (Unix) time the first
    packet arrived; ``truncated`` when a bound cut it (later packets were not kept).
    """

    room_id: str
    talker: str
    started_at: float
    packets: list[CapturedPacket] = field(default_factory=list)
    truncated: bool = False

    @property
    def duration(self) -> float:
        """Seconds of audio, from the RTP timestamps (48 kHz): from the earliest packet's
        start to the end of the latest one (its own length read from its TOC byte)."""
        packets = self.packets
        if not packets:
            return 0.0
        base = packets[0].timestamp
        first = min(_signed32(p.timestamp - base) for p in packets)
        last = max(packets, key=lambda p: _signed32(p.timestamp - base))
        end = _signed32(last.timestamp - base) + packet_samples(last.payload)
        return (end - first) / OPUS_RATE

    @property
    def size(self) -> int:
        """Payload bytes kept (the bound ``max_bytes`` counts these plus
        :data:`PACKET_OVERHEAD` per packet)."""
        return sum(len(p.payload) for p in self.packets)


class TransmissionCapture:
    """The transmission in progress in one room, bounded by RTP seconds and payload bytes.

    ``start(talker, wall_time)``, then ``add(...)`` for each forwarded packet, then ``end()``
    which returns the finished :class:`Transmission` (None if no packet was kept) and leaves
    the capture ready for the next ``start``. ``add`` with no transmission open does nothing.
    """

    __slots__ = ("max_samples", "max_bytes", "room_id", "cut_transmissions", "cut_packets",
                 "_current", "_bytes", "_base")

    def __init__(self, max_seconds: float, max_bytes: int, *, room_id: str = "") -> None:
        if not max_seconds > 0 or max_bytes <= 0:
            raise ValueError("a capture needs positive bounds (seconds and bytes)")
        #: the bound on RTP time, in 48 kHz samples either side of the first packet
        self.max_samples = int(max_seconds * OPUS_RATE)
        self.max_bytes = max_bytes
        self.room_id = room_id
        #: transmissions a bound cut, and the packets they could not keep
        self.cut_transmissions = 0
        self.cut_packets = 0
        self._current: Transmission | None = None
        self._bytes = 0
        self._base = 0

    @property
    def active(self) -> bool:
        """Whether a transmission is open (between ``start`` and ``end``)."""
        return self._current is not None

    @property
    def talker(self) -> str | None:
        """The open transmission's talker, or None."""
        current = self._current
        return None if current is None else current.talker

    def start(self, talker: str, wall_time: float) -> None:
        """Open a transmission by ``talker``; RuntimeError if one is open (``end`` it first)."""
        if self._current is not None:
            raise RuntimeError("a transmission is open: end() it before start()")
        self._current = Transmission(self.room_id, talker, wall_time)
        self._bytes = 0

    def add(self, sequence: int, timestamp: int, payload: bytes, arrival: float) -> None:
        """Keep one forwarded packet of the open transmission (within the bounds)."""
        current = self._current
        if current is None:
            return
        if current.truncated:
            self.cut_packets += 1
            return
        size = self._bytes + len(payload) + PACKET_OVERHEAD
        if current.packets:  # within max_samples of the first timestamp, either way (mod 2^32)
            offset = (timestamp - self._base + self.max_samples) & 0xFFFFFFFF
            within = offset <= 2 * self.max_samples
        else:
            self._base = timestamp
            within = True
        if not within or size > self.max_bytes:
            current.truncated = True
            self.cut_transmissions += 1
            self.cut_packets += 1
            return
        self._bytes = size
        current.packets.append(CapturedPacket(sequence, timestamp, bytes(payload), arrival))

    def end(self) -> Transmission | None:
        """Close the open transmission: it, or None when none was open or nothing was kept."""
        current, self._current = self._current, None
        if current is None or not current.packets:
            return None
        return current
