"""A room as the media plane knows it: a forwarding group with at most one speaker."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from .rewriter import DownlinkStream

#: How long after the floor leaves a talker its packets are still forwarded (the *tail*), as
#: long as no new speaker's audio has started. A release travels on the WebSocket and can
#: overtake the talker's last packets: the page stops its sender and sends the release at the
#: same moment while the last frame is still in the browser's pacer, media can take a slower
#: path than signaling (a TURN relay), and a busy worker may read its control channel before
#: the datagrams queued in its socket. Dropping them clipped the end of the last word. The
#: mirror of the pre-roll (sfu/peer.py PREROLL_SECONDS) at the other end of a turn.
TAIL_SECONDS = 0.3

if TYPE_CHECKING:
    from .capture import TransmissionCapture
    from .peer import Peer
    from .replayer import ReplayPlayer
    from .transmit import Destination

#: What the fan-out needs per listener (sfu/transmit.py, ``TransmitQueue.fan_out``):
#: (listener, its plain header template, its leveled template or None, the level octet's
#: offset in it, its payload type, its outbound SRTP context, its destination).
Route = tuple["Peer", bytearray, "bytearray | None", int, int, Any, "Destination"]
#: RED listeners' routes (their payload type is their RED one), grouped by their Opus payload
#: type, which the blocks inside a RED payload must carry for them (sfu/red.py).
RedGroup = tuple[int, tuple[Route, ...]]


class Room:
    """Members of one forwarding group, its current speaker and its downlink stream.

    ``routes`` is a tuple rebuilt only when membership or connectivity changes, so the hot
    path iterates a ready-made sequence of what it needs per listener and looks nothing up.
    """

    __slots__ = ("room_id", "members", "speaker", "stream", "routes", "opus_routes",
                 "red_groups", "bursts",
                 "packets_forwarded", "watch", "heard_at", "watch_gen", "tail", "tail_until",
                 "replays", "capture", "capturing", "capture_until")

    def __init__(self, room_id: str, rng: random.Random | None = None) -> None:
        self.room_id = room_id
        self.members: dict[str, Peer] = {}
        self.speaker: Peer | None = None
        #: the room's channel, numbered once for every listener (sfu/rewriter.py)
        self.stream = DownlinkStream(rng=rng)
        #: every listener, under its Opus payload type: for a talker's plain Opus packets
        self.routes: tuple[Route, ...] = ()
        #: for a talker's RED packets: the listeners without RED (sent the primary block)
        #: and those with RED (sent the RED payload under their RED payload type)
        self.opus_routes: tuple[Route, ...] = ()
        self.red_groups: tuple[RedGroup, ...] = ()
        self.bursts = 0
        self.packets_forwarded = 0
        #: the speaker's uplink watch (sfu/silence.py): its state, the arrival of the
        #: speaker's last packet (or the watch's start), and a generation for stale checks
        self.watch = 0
        self.heard_at = 0.0
        self.watch_gen = 0
        #: the previous speaker while its tail is forwarded (TAIL_SECONDS), and until when
        self.tail: Peer | None = None
        self.tail_until = 0.0
        #: say-again replays playing here, by listener id (sfu/replayer.py): empty, and so
        #: false, unless a member is hearing one
        self.replays: dict[str, ReplayPlayer] = {}
        #: the transmission being kept (sfu/capture.py; None: recording and replay are off),
        #: whose talker it is (None: none open), and when it ends if its talker's floor is
        #: over (its tail): infinity while the talker holds the floor
        self.capture: TransmissionCapture | None = None
        self.capturing: Peer | None = None
        self.capture_until = math.inf

    def refresh_routes(self) -> None:
        """Recompute who gets the room's downlink: connected peers that accept audio."""
        stream = self.stream
        routes = []
        opus_routes = []
        red: dict[int, list[Route]] = {}
        for peer in self.members.values():
            route = peer.route()
            peer.listen(stream, route is not None)
            if route is not None:
                routes.append(route)
                if peer.red_pt < 0:
                    opus_routes.append(route)
                else:
                    red.setdefault(peer.opus_pt, []).append(route[:4] + (peer.red_pt,) + route[5:])
        self.routes = tuple(routes)
        self.opus_routes = tuple(opus_routes)
        self.red_groups = tuple((pt, tuple(group)) for pt, group in red.items())

    def on_burst(self, csrc: int) -> None:
        """A talk burst started: every listener's header names ``csrc`` as the talker."""
        for member in self.members.values():
            member.header.follow(csrc)

    def set_speaker(self, speaker: Peer | None, now: float) -> bool:
        """Make ``speaker`` the one whose audio is forwarded; False if it already was.

        The downlink starts a new talk burst (marker bit, timestamp jump by the wall-clock
        gap), so every browser's jitter buffer sees a clean start: at once when the same
        talker is granted again, else with the new speaker's first packet (another SSRC),
        so that the previous speaker's tail (TAIL_SECONDS) still continues its own burst.
        """
        previous = self.speaker
        if speaker is previous:
            return False
        self.speaker = speaker
        self.bursts += 1
        if previous is not None:
            self.tail, self.tail_until = previous, now + TAIL_SECONDS
        if speaker is not None and speaker is self.tail:
            self.tail = None  # granted again during its own tail: a new burst of its own
        if self.tail is None:
            self.stream.new_burst()
        return True

    def in_tail(self, peer: Peer, now: float) -> bool:
        """Whether ``peer``'s packet arriving at ``now`` belongs to its turn's tail."""
        if peer is not self.tail:
            return False
        if now <= self.tail_until:
            return True
        self.tail = None
        return False

    def stats(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "members": sorted(self.members),
            "connected": sum(1 for p in self.members.values() if p.is_connected),
            "speaker": self.speaker.peer_id if self.speaker else None,
            "bursts": self.bursts,
            "packets_forwarded": self.packets_forwarded,
        }
