"""A room as the media plane knows it: a forwarding group with at most one speaker."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .rewriter import DownlinkStream

if TYPE_CHECKING:
    from .peer import Peer
    from .transmit import Destination

#: What the fan-out needs per listener (sfu/transmit.py, ``TransmitQueue.fan_out``):
#: (listener, its plain header template, its leveled template or None, the level octet's
#: offset in it, its payload type, its outbound SRTP context, its destination).
Route = tuple["Peer", bytearray, "bytearray | None", int, int, Any, "Destination"]


class Room:
    """Members of one forwarding group, its current speaker and its downlink stream.

    ``routes`` is a tuple rebuilt only when membership or connectivity changes, so the hot
    path iterates a ready-made sequence of what it needs per listener and looks nothing up.
    """

    __slots__ = ("room_id", "members", "speaker", "stream", "routes", "bursts",
                 "packets_forwarded", "watch", "heard_at", "watch_gen")

    def __init__(self, room_id: str, rng: random.Random | None = None) -> None:
        self.room_id = room_id
        self.members: dict[str, Peer] = {}
        self.speaker: Peer | None = None
        #: the room's channel, numbered once for every listener (sfu/rewriter.py)
        self.stream = DownlinkStream(rng=rng)
        self.routes: tuple[Route, ...] = ()
        self.bursts = 0
        self.packets_forwarded = 0
        #: the speaker's uplink watch (sfu/silence.py): its state, the arrival of the
        #: speaker's last packet (or the watch's start), and a generation for stale checks
        self.watch = 0
        self.heard_at = 0.0
        self.watch_gen = 0

    def refresh_routes(self) -> None:
        """Recompute who gets the room's downlink: connected peers that accept audio."""
        stream = self.stream
        routes = []
        for peer in self.members.values():
            route = peer.route()
            peer.listen(stream, route is not None)
            if route is not None:
                routes.append(route)
        self.routes = tuple(routes)

    def on_burst(self, csrc: int) -> None:
        """A talk burst started: every listener's header names ``csrc`` as the talker."""
        for member in self.members.values():
            member.header.follow(csrc)

    def set_speaker(self, speaker: Peer | None) -> bool:
        """Make ``speaker`` the one whose audio is forwarded; False if it already was.

        The downlink starts a new talk burst (marker bit, timestamp jump by the wall-clock
        gap), so every browser's jitter buffer sees a clean start.
        """
        if speaker is self.speaker:
            return False
        self.speaker = speaker
        self.bursts += 1
        self.stream.new_burst()
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
