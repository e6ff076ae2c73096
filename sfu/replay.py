"""Say-again: a room's last transmissions, kept in the media worker that hosts the room.

``walkie serve --replay SECONDS`` (off by default) keeps each room's finished transmissions
(sfu/capture.py: the Opus packets as received, never decoded) so that a member who missed
one can hear it again, played to that member only (sfu/replayer.py). This module is the
keeping: what is kept, for how long, and what the signaling side is told about it.

Bounds, per room (:class:`ReplayLimits`):

* age: a transmission is kept ``seconds`` after it *ended* (its last packet arrived); the
  page says "this room keeps the last N seconds of audio";
* bytes: the payload of every kept transmission together is at most ``max_bytes``; the
  oldest go first to make room, and one alone over the bound keeps only its beginning
  (``truncated``: the capture that feeds this store is bounded by the same numbers, so
  that only happens when recording shares it with larger bounds);
* count: at most :data:`REPLAY_KEEP` transmissions, the number the page lists.

Nothing here outlives the room: when its last member leaves the worker, the store goes with
it (sfu/core.py), and a worker that dies keeps nothing. Sans-IO: time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .capture import CapturedPacket, Transmission

__all__ = ["REPLAY_KEEP", "ReplayEvent", "ReplayItem", "ReplayLimits", "ReplayStore"]

#: Transmissions a room keeps (and lists) at most: "the last few".
REPLAY_KEEP = 10
#: Default bound on the payload bytes one room keeps: about four minutes of 32 kbit/s Opus.
DEFAULT_REPLAY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ReplayLimits:
    """How much of each room's audio a worker keeps (``walkie serve --replay``)."""

    seconds: float
    max_bytes: int = DEFAULT_REPLAY_BYTES

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not self.seconds <= 3600:
            raise ValueError("replay seconds must be more than 0 and at most 3600")
        if self.max_bytes < 1024:
            raise ValueError("a room's replay bound must be at least 1024 bytes")


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """What signaling may know of one kept transmission: never its audio.

    ``talker`` is the talker's media peer id (= its member id), ``started_at`` Unix time,
    ``duration`` seconds of audio; ``truncated`` when a bound cut its end off.
    """

    id: str
    talker: str
    started_at: float
    duration: float
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """Something the signaling side must know about say-again.

    ``kind`` is ``replay_list`` (the room's kept transmissions changed: ``items``, oldest
    first; ``peer_id`` empty), ``replay_started`` (a replay to ``peer_id`` began; ``items``
    holds the one transmission) or ``replay_ended`` (``reason``: ``done``, ``live`` when
    someone started talking, ``gone`` when the transmission is no longer kept or the
    listener cannot receive, ``stopped`` when asked).
    """

    kind: str
    room_id: str
    peer_id: str = ""
    transmission_id: str = ""
    reason: str = ""
    items: tuple[ReplayItem, ...] = ()


@dataclass(slots=True)
class _Kept:
    id: str
    transmission: Transmission
    ended: float  # the core's monotonic time of its last packet
    size: int
    item: ReplayItem


class ReplayStore:
    """One room's kept transmissions, oldest first, within :class:`ReplayLimits`."""

    __slots__ = ("limits", "_kept", "_bytes")

    def __init__(self, limits: ReplayLimits) -> None:
        self.limits = limits
        self._kept: deque[_Kept] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def size(self) -> int:
        """Payload bytes kept now."""
        return self._bytes

    def keep(self, transmission_id: str, transmission: Transmission, now: float) -> bool:
        """Keep a finished transmission, dropping the oldest as the bounds require (one
        alone over the byte bound keeps its beginning). False when it has no packet."""
        if not transmission.packets:
            return False
        if transmission.size > self.limits.max_bytes:
            transmission = _beginning(transmission, self.limits.max_bytes)
        packets = transmission.packets
        size = transmission.size
        item = ReplayItem(transmission_id, transmission.talker, transmission.started_at,
                          transmission.duration, transmission.truncated)
        ended = max(packet.arrival for packet in packets)
        self._kept.append(_Kept(transmission_id, transmission, ended, size, item))
        self._bytes += size
        while len(self._kept) > REPLAY_KEEP or self._bytes > self.limits.max_bytes:
            self._pop()
        self.expire(now)
        return True

    def get(self, transmission_id: str) -> Transmission | None:
        """The kept transmission of that id, or None (never kept, or dropped since)."""
        for kept in self._kept:
            if kept.id == transmission_id:
                return kept.transmission
        return None

    def item(self, transmission_id: str) -> ReplayItem | None:
        for kept in self._kept:
            if kept.id == transmission_id:
                return kept.item
        return None

    def items(self) -> tuple[ReplayItem, ...]:
        """What signaling lists, oldest first."""
        return tuple(kept.item for kept in self._kept)

    def expire(self, now: float) -> bool:
        """Drop what ended more than ``seconds`` ago; True if anything went."""
        seconds = self.limits.seconds
        dropped = False
        while self._kept and self._kept[0].ended + seconds <= now:  # as next_expiry says
            self._pop()
            dropped = True
        return dropped

    def next_expiry(self) -> float | None:
        """When the oldest kept transmission must go (None: nothing kept)."""
        return self._kept[0].ended + self.limits.seconds if self._kept else None

    def _pop(self) -> None:
        kept = self._kept.popleft()
        self._bytes -= kept.size


def _beginning(transmission: Transmission, max_bytes: int) -> Transmission:
    """The packets of ``transmission`` that fit ``max_bytes``, marked ``truncated``."""
    packets: list[CapturedPacket] = []
    size = 0
    for packet in transmission.packets:
        size += len(packet.payload)
        if size > max_bytes:
            break
        packets.append(packet)
    return Transmission(transmission.room_id, transmission.talker, transmission.started_at,
                        packets, truncated=True)
