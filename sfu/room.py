"""A room as the media plane knows it: a forwarding group with at most one speaker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .peer import Peer

#: (listener, rewriter.header, srtp.protect_parts, link.send): what the fan-out calls.
Route = tuple["Peer", Callable[..., bytearray], Callable[..., bytes], Callable[[bytes], int]]


class Room:
    """Members of one forwarding group and its current speaker.

    ``routes`` is a tuple rebuilt only when membership or connectivity changes, so the hot
    path iterates a ready-made sequence: for each peer that can receive audio, the bound
    methods the fan-out calls (its rewriter's ``header``, its SRTP ``protect_parts``, its
    socket's ``send``), which saves three attribute lookups per listener per packet.
    """

    __slots__ = ("room_id", "members", "speaker", "routes", "bursts", "packets_forwarded")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.members: dict[str, Peer] = {}
        self.speaker: Peer | None = None
        self.routes: tuple[Route, ...] = ()
        self.bursts = 0
        self.packets_forwarded = 0

    def refresh_listeners(self) -> None:
        """Recompute who gets the room's downlink: connected peers that accept audio."""
        self.routes = tuple(
            (p, p.rewriter.header, p.srtp.protect_parts, p.link.send)  # type: ignore[union-attr]
            for p in self.members.values()
            if p.is_connected and p.receives_audio and p.link is not None
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
