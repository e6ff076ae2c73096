"""Which transmission each forwarded packet belongs to: a room's turns, tail included.

The media core (sfu/core.py) calls in at three moments, and only for rooms that keep
transmissions (``Room.capture`` set: recording or replay on; otherwise the hot path pays one
``is None`` check):

* ``_forward`` of a packet from a talker that is not the room's ``capturing`` one: that
  talker's transmission begins (:meth:`Transmissions.begin`), ending the one before;
* a speaker change (:meth:`Transmissions.speaker_changed`): the turn of the talker that
  lost the floor is not over yet while its tail (sfu/room.py ``TAIL_SECONDS``) may still
  bring its last packets; it ends when the tail does (a timer here), or earlier when the
  next speaker's audio starts (the first rule), or at once when there is no tail (the same
  talker granted again: a new turn of its own);
* a talker that leaves (:meth:`Transmissions.finish`).

A finished transmission leaves the core as a :class:`~sfu.core.PeerEvent` of kind
``transmission`` (its ``transmission`` field set), like every other event (``poll_event``).
Sans-IO: times are passed in.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from typing import TYPE_CHECKING, Any

from .capture import TransmissionCapture

if TYPE_CHECKING:
    from .capture import Transmission
    from .peer import Peer
    from .room import Room

__all__ = ["Transmissions"]


class Transmissions:
    """The open transmissions of one media core's rooms, and their end-of-tail timers."""

    __slots__ = ("max_seconds", "max_bytes", "wall_offset", "kept", "cut", "_events",
                 "_event", "_due", "_seq")

    def __init__(self, max_seconds: float, max_bytes: int, events: deque[Any],
                 event: Any, wall_offset: float) -> None:
        """``events``: the core's event queue; ``event(kind, peer_id, room_id,
        transmission=...)`` makes one (``PeerEvent``); ``wall_offset`` turns the core's
        monotonic time into Unix time (``Transmission.started_at``)."""
        TransmissionCapture(max_seconds, max_bytes)  # ValueError now for bad bounds
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.wall_offset = wall_offset
        #: transmissions handed out, and how many of them a bound cut
        self.kept = 0
        self.cut = 0
        self._events = events
        self._event = event
        self._due: list[tuple[float, int, Room]] = []
        self._seq = itertools.count()

    def capture_for(self, room_id: str) -> TransmissionCapture:
        """A new room's capture."""
        return TransmissionCapture(self.max_seconds, self.max_bytes, room_id=room_id)

    def begin(self, room: Room, talker: Peer, arrival: float) -> None:
        """``talker``'s packet arrived at ``arrival`` and is forwarded: its turn starts
        (the open one, another talker's tail or a previous turn, ends first)."""
        if room.capturing is not None:
            self.finish(room)
        assert room.capture is not None
        room.capture.start(talker.peer_id, arrival + self.wall_offset)
        room.capturing = talker

    def speaker_changed(self, room: Room) -> None:
        """The room's speaker changed (``Room.set_speaker`` ran): the open turn ends with
        its talker's tail, or now if it has none."""
        talker = room.capturing
        if talker is None:
            return
        if talker is room.tail:
            room.capture_until = room.tail_until
            heapq.heappush(self._due, (room.tail_until, next(self._seq), room))
        else:
            self.finish(room)

    def finish(self, room: Room) -> None:
        """End the room's open transmission and queue it as an event (if it kept packets)."""
        capture = room.capture
        room.capturing = None
        room.capture_until = math.inf
        if capture is None:
            return
        done: Transmission | None = capture.end()
        if done is None:
            return
        self.kept += 1
        self.cut += done.truncated
        self._events.append(self._event("transmission", done.talker, room.room_id,
                                        transmission=done))

    def expire(self, now: float) -> None:
        """End every turn whose tail is over at ``now``."""
        due = self._due
        while due and due[0][0] <= now:
            until, _, room = heapq.heappop(due)
            if room.capturing is not None and room.capture_until == until:
                self.finish(room)

    def poll_timeout(self) -> float | None:
        """When the next tail ends (None: no turn waits for its tail)."""
        due = self._due
        while due:
            until, _, room = due[0]
            if room.capturing is not None and room.capture_until == until:
                return until
            heapq.heappop(due)  # that turn ended earlier (next speaker, leave, re-grant)
        return None

    def stats(self) -> dict[str, object]:
        return {"transmissions_kept": self.kept, "transmissions_cut": self.cut}
