"""A room as the media plane knows it: a forwarding group with at most one speaker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .peer import Peer


class Room:
    """Members of one forwarding group and its current speaker.

    ``listeners`` is a tuple rebuilt only when membership or connectivity changes, so the hot
    path iterates a ready-made sequence of peers that can receive audio.
    """

    __slots__ = ("room_id", "members", "speaker", "listeners", "bursts", "packets_forwarded")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.members: dict[str, Peer] = {}
        self.speaker: Peer | None = None
        self.listeners: tuple[Peer, ...] = ()
        self.bursts = 0
        self.packets_forwarded = 0

    def refresh_listeners(self) -> None:
        """Recompute who gets the room's downlink: connected peers that accept audio."""
        self.listeners = tuple(
            p for p in self.members.values() if p.is_connected and p.receives_audio
        )

    def stats(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "members": sorted(self.members),
            "connected": sum(1 for p in self.members.values() if p.is_connected),
            "speaker": self.speaker.peer_id if self.speaker else None,
            "bursts": self.bursts,
            "packets_forwarded": self.packets_forwarded,
        }
