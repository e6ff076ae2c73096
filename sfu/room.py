"""A room as the media plane knows it: a forwarding group with at most one speaker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .peer import Peer
    from .transmit import Destination

#: (listener, its rewriter's ``header``, its outbound SRTP context, its destination): what the
#: fan-out needs per listener (sfu/transmit.py, ``TransmitQueue.fan_out``).
Route = tuple["Peer", Callable[..., bytearray], Any, "Destination"]


class Room:
    """Members of one forwarding group and its current speaker.

    ``routes`` is a tuple rebuilt only when membership or connectivity changes, so the hot
    path iterates a ready-made sequence of what it needs per listener and looks nothing up.
    """

    __slots__ = ("room_id", "members", "speaker", "routes", "bursts", "packets_forwarded")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.members: dict[str, Peer] = {}
        self.speaker: Peer | None = None
        self.routes: tuple[Route, ...] = ()
        self.bursts = 0
        self.packets_forwarded = 0

    def refresh_routes(self) -> None:
        """Recompute who gets the room's downlink: connected peers that accept audio."""
        self.routes = tuple(
            route for route in (p.route() for p in self.members.values()) if route is not None
        )

    def set_speaker(self, speaker: Peer | None) -> bool:
        """Make ``speaker`` the one whose audio is forwarded; False if it already was.

        Every listener's downlink starts a new talk burst (marker bit, timestamp jump by the
        wall-clock gap), so the browser's jitter buffer sees a clean start.
        """
        if speaker is self.speaker:
            return False
        self.speaker = speaker
        self.bursts += 1
        for member in self.members.values():
            member.rewriter.new_burst()
        return True

    def stats(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "members": sorted(self.members),
            "connected": sum(1 for p in self.members.values() if p.is_connected),
            "speaker": self.speaker.peer_id if self.speaker else None,
            "bursts": self.bursts,
            "packets_forwarded": self.packets_forwarded,
        }
