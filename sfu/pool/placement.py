"""Which media worker serves which room, and which peers each worker has (no I/O).

A room is placed WHOLE on one worker: its fan-out then stays inside one process, with no
cross-process hop per packet. A new room goes to the least-loaded candidate worker, where
load is the number of peers placed on it (pending offers included, so a burst of joins
spreads at once instead of following reports that lag by a second). Peers are what costs
a worker: each adds a listener to every packet of its room and its own STUN, DTLS and RTCP.

Every peer is booked under the request id of the offer that opened it (its *incarnation*):
an event the worker sent about an earlier peer of the same id, for example one removed
just before a re-offer, names another incarnation and is recognised as stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Booking", "Placement"]


@dataclass(slots=True)
class Booking:
    """One peer as the parent knows it: its room, its worker and its incarnation."""

    room_id: str
    slot: int
    opened_by: int
    accepted: bool = False  # the worker answered: the peer exists there


@dataclass(slots=True)
class _RoomPlace:
    slot: int
    members: set[str] = field(default_factory=set)


class Placement:
    """Rooms and peers per worker slot (``0 .. slots-1``)."""

    def __init__(self, slots: int) -> None:
        self.peers: dict[str, Booking] = {}
        self._rooms: dict[str, _RoomPlace] = {}
        self._load = [0] * slots
        self._room_count = [0] * slots

    def slot_of_room(self, room_id: str) -> int | None:
        place = self._rooms.get(room_id)
        return None if place is None else place.slot

    def members(self, room_id: str) -> frozenset[str]:
        place = self._rooms.get(room_id)
        return frozenset() if place is None else frozenset(place.members)

    def load(self, slot: int) -> int:
        """Peers placed on ``slot``, pending offers included."""
        return self._load[slot]

    def room_count(self, slot: int) -> int:
        return self._room_count[slot]

    def choose(self, room_id: str, candidates: Iterable[int]) -> int | None:
        """The slot for ``room_id``: where it already lives, else the least-loaded candidate
        (fewest peers, then fewest rooms, then the lowest index). None: no candidate."""
        placed = self.slot_of_room(room_id)
        if placed is not None:
            return placed
        return min(candidates, key=lambda s: (self._load[s], self._room_count[s], s),
                   default=None)

    def book(self, peer_id: str, room_id: str, slot: int, opened_by: int) -> Booking:
        """Place a peer (its room must live on ``slot`` already, or not at all)."""
        if peer_id in self.peers:
            raise ValueError(f"peer {peer_id!r} already exists")
        place = self._rooms.get(room_id)
        if place is None:
            place = self._rooms[room_id] = _RoomPlace(slot)
            self._room_count[slot] += 1
        elif place.slot != slot:
            raise ValueError(f"room {room_id!r} lives on worker {place.slot}, not {slot}")
        place.members.add(peer_id)
        booking = self.peers[peer_id] = Booking(room_id, slot, opened_by)
        self._load[slot] += 1
        return booking

    def forget(self, peer_id: str) -> Booking | None:
        """Unplace a peer (None if unknown); its room goes with its last member."""
        booking = self.peers.pop(peer_id, None)
        if booking is None:
            return None
        self._load[booking.slot] -= 1
        place = self._rooms[booking.room_id]
        place.members.discard(peer_id)
        if not place.members:
            del self._rooms[booking.room_id]
            self._room_count[booking.slot] -= 1
        return booking

    def is_current(self, peer_id: str, slot: int, opened_by: int) -> bool:
        """Is this (worker, incarnation) the peer the parent has booked now?"""
        booking = self.peers.get(peer_id)
        return booking is not None and booking.slot == slot and booking.opened_by == opened_by
