"""Is each room's speaker still sending? The media plane's half of the end-of-media timer.

MCPTT's floor control server revokes the floor when the holder's RTP stops (3GPP TS 24.380,
timer T1, "end of RTP media"). The media plane is the one place that sees the RTP, and the
signaling side owns the floor; so this module only reports *edges* of the speaker's uplink,
as :class:`~sfu.core.PeerEvent` values the core queues for signaling:

* ``speaker_active``: the first RTP packet of the speaker after it became the speaker (or
  after it connected, whichever is later), or the first after a ``speaker_silent``;
* ``speaker_silent``: no RTP from the speaker for :data:`SILENCE_AFTER` seconds (counted
  from its last packet, or from the start of the watch if it sent none); ``silent_for``
  says how long, so that signaling knows when the silence began without sharing a clock.

Signaling decides what silence means (``signaling/floor.py``: revoke after a few seconds).
Why :data:`SILENCE_AFTER` is 1 s: Opus DTX (``usedtx=1``) sends one packet per 400 ms of
silence, so a talker who merely pauses is never reported; a frozen one is reported 1 s
after its last packet. Each speaker costs one heap entry per second while it talks and one
attribute store per packet (``Room.heard_at``, in the core's hot path).

A room is watched only while its speaker is connected (SRTP keys exist): before that no
packet can arrive, and signaling has its own, longer deadline for media that never comes.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import PeerEvent
    from .room import Room

__all__ = ["SILENCE_AFTER", "SpeakerWatch", "OFF", "WAITING", "SOUNDING", "SILENT"]

#: Seconds without RTP from the speaker after which it is reported silent.
SILENCE_AFTER = 1.0

# Room.watch states. OFF: no speaker, or it is not connected. WAITING: watching, nothing
# heard yet (a check is due). SOUNDING: packets arrive (a check is due). SILENT: reported
# silent (no check is due; the next packet reports it active).
OFF, WAITING, SOUNDING, SILENT = 0, 1, 2, 3


class SpeakerWatch:
    """The silence checks of every room of one media core, sans-IO (time passed in).

    Per-room state lives on the :class:`~sfu.room.Room` (``watch``, ``heard_at``,
    ``watch_gen``) so that the core's per-packet work is an attribute store and a compare;
    here is only the heap of due checks. An entry names the generation of the watch it was
    filed for: a restart (new speaker, reconnect) makes older entries stale.
    """

    __slots__ = ("silence_after", "_due", "_seq", "_event")

    def __init__(self, event: type[PeerEvent], silence_after: float = SILENCE_AFTER) -> None:
        self.silence_after = silence_after
        self._event = event
        self._due: list[tuple[float, int, Room, int]] = []
        self._seq = 0

    def follow(self, room: Room, now: float) -> None:
        """The room's speaker changed or connected: watch it afresh if it can send."""
        speaker = room.speaker
        if speaker is None or not speaker.is_connected:
            self.stop(room)
            return
        self._start(room, now)

    def stop(self, room: Room) -> None:
        """Watch nothing in ``room`` (no speaker, or it cannot send): pending checks go stale."""
        room.watch_gen += 1
        room.watch = OFF

    def heard(self, room: Room, now: float) -> PeerEvent:
        """A packet of the speaker arrived while the room was not SOUNDING (the core's
        hot path calls this only then, after storing ``heard_at``)."""
        was = room.watch
        if was == OFF:  # a packet proves it can send, whatever we were told: watch it now
            self._start(room, now)
            was = WAITING
        room.watch = SOUNDING
        if was == SILENT:
            self._file(room, now + self.silence_after)  # WAITING still has its check filed
        speaker = room.speaker
        assert speaker is not None
        return self._event("speaker_active", speaker.peer_id, room.room_id)

    def poll_timeout(self) -> float | None:
        """When :meth:`expire` has something to check (None: nothing is watched)."""
        return self._due[0][0] if self._due else None

    def expire(self, now: float) -> list[PeerEvent]:
        """Run the checks due at ``now``: report speakers silent for ``silence_after``."""
        events: list[PeerEvent] = []
        due = self._due
        while due and due[0][0] <= now:
            _, _, room, gen = heapq.heappop(due)
            if gen != room.watch_gen or room.watch not in (WAITING, SOUNDING):
                continue  # stale: another speaker, a restart, or already reported
            silent_at = room.heard_at + self.silence_after
            if now < silent_at:  # it spoke since. Not `now - heard_at < silence_after`: in
                self._file(room, silent_at)  # floating point that can hold at silent_at
                continue  # itself, and the check would be filed there again for ever
            quiet = now - room.heard_at
            room.watch = SILENT
            speaker = room.speaker
            assert speaker is not None
            events.append(self._event("speaker_silent", speaker.peer_id, room.room_id,
                                      silent_for=quiet))
        return events

    def _start(self, room: Room, now: float) -> None:
        room.watch_gen += 1
        room.watch = WAITING
        room.heard_at = now
        self._file(room, now + self.silence_after)

    def _file(self, room: Room, when: float) -> None:
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, room, room.watch_gen))
