"""Floor control for one room: who may talk, who waits, and for how long.

Modelled on MCPTT floor control (3GPP TS 24.380): request, granted, deny (busy), queued
(with position), release, revoke (max talk time, no media, pre-emption) and idle.

Pre-emptive priority (MCPTT's pre-emptive floor request): every request carries the
member's priority (0-255, 0 for everyone unless a signed join token says otherwise). A
request of a higher priority than the holder's takes the floor at once: the holder gets
``Revoked(reason="preempted", by=requester)`` and is *not* queued again (it was talking and
would otherwise be granted the floor back the moment the pre-emptor lets go, talking over
whatever was said meanwhile; it may press again). A requester that was waiting in the queue
leaves it. Requests of equal or lower priority behave exactly as without priorities (queued
first come, first served, or denied busy); the queue is not ordered by priority, so a
member's position only ever moves up.

The end-of-media timer (MCPTT's T1): a holder whose audio stops reaching the media plane is
revoked (reason ``no_media``), so that a frozen tab or a dead network cannot keep the floor.
The media plane reports the holder's uplink edges (``media_active``, ``media_silent``: see
``sfu/silence.py``); the floor revokes ``no_media_timeout`` seconds after the holder's last
packet. A holder from whom nothing was heard yet (it pressed before its media connected, or
its media is being set up again after a reset or a new offer) gets ``media_wait`` seconds
instead, counted from the grant or from the loss (``media_lost``).

This module is pure: no I/O, no clock. Time is passed in (seconds, from any monotonic
clock) so the state machine can be tested exhaustively and the server decides how often to
call :meth:`Floor.tick`. Every operation returns a list of *effects*: what the caller must
tell whom. Effects addressed to a member (``Granted``, ``Denied``, ``Queued``, ``Revoked``,
``Released``) go to that member only; ``FloorChanged`` goes to the whole room and is also
the cue to tell the media plane who the speaker is now.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = [
    "Denied",
    "Effect",
    "Floor",
    "FloorChanged",
    "FloorSettings",
    "Granted",
    "Queued",
    "Released",
    "Revoked",
]


@dataclass(frozen=True, slots=True)
class FloorSettings:
    """Per-room floor policy.

    ``max_talk_time`` is in seconds; ``None`` (or 0) means a holder is never revoked, which
    is only sensible for tiny private rooms. ``queue`` off means a request while the floor is
    taken is denied ("busy") instead of queued, as on a classic walkie-talkie.
    """

    max_talk_time: float | None = 60.0
    queue: bool = True
    #: seconds without the holder's audio before ``no_media`` (None or 0: never). Off by
    #: default here: only a caller that feeds media_* events may turn it on (the server does).
    no_media_timeout: float | None = None
    #: seconds a holder may take to get its first audio through (media setup, TURN)
    media_wait: float = 10.0

    @property
    def max_talk_ms(self) -> int | None:
        """The limit as announced to clients (``None`` = unlimited)."""
        if not self.max_talk_time:
            return None
        return int(round(self.max_talk_time * 1000))


@dataclass(frozen=True, slots=True)
class Granted:
    """``member`` now holds the floor; it may talk for ``max_ms`` (None = no limit)."""

    member: str
    max_ms: int | None


@dataclass(frozen=True, slots=True)
class Denied:
    """``member``'s request was refused: ``busy`` (``holder`` talks and queueing is off), or
    ``listen_only`` (the hub's refusal for a member whose token forbids talking)."""

    member: str
    reason: str
    holder: str | None


@dataclass(frozen=True, slots=True)
class Queued:
    """``member`` waits at ``position`` (1 = next). Re-sent when the position changes."""

    member: str
    position: int


@dataclass(frozen=True, slots=True)
class Revoked:
    """``member`` lost the floor against its will (``reason``: ``max_talk_time``,
    ``no_media``: its audio stopped reaching the media plane, or ``preempted``: ``by``, of
    a higher priority, took it)."""

    member: str
    reason: str
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Released:
    """Acknowledges ``member``'s release (it no longer holds or waits for the floor)."""

    member: str


@dataclass(frozen=True, slots=True)
class FloorChanged:
    """The room's floor state after a change: holder (None = idle) and queue length."""

    holder: str | None
    queue_length: int


Effect = Granted | Denied | Queued | Revoked | Released | FloorChanged


class Floor:
    """The floor of one room.

    Invariants: at most one holder; the holder is never in the queue; a member is in the
    queue at most once; the queue is empty whenever the floor is idle (a release or revoke
    always hands the floor to the head of the queue).
    """

    __slots__ = ("settings", "_holder", "_granted_at", "_queue", "_media_due", "_priority")

    def __init__(self, settings: FloorSettings | None = None) -> None:
        self.settings = settings or FloorSettings()
        self._holder: str | None = None
        self._granted_at = 0.0
        self._queue: deque[str] = deque()
        # When the holder is revoked for no media unless its audio is heard (None: it is).
        self._media_due: float | None = None
        # The priority each request came with, for the holder and every queued member.
        self._priority: dict[str, int] = {}

    # -- queries ------------------------------------------------------------------------

    @property
    def holder(self) -> str | None:
        return self._holder

    @property
    def queue(self) -> tuple[str, ...]:
        return tuple(self._queue)

    def position(self, member: str) -> int | None:
        """1-based queue position of ``member``, or None if it is not waiting."""
        try:
            return self._queue.index(member) + 1
        except ValueError:
            return None

    def deadline(self) -> float | None:
        """When the current holder's talk time runs out (None: idle or unlimited)."""
        if self._holder is None or not self.settings.max_talk_time:
            return None
        return self._granted_at + self.settings.max_talk_time

    def media_deadline(self) -> float | None:
        """When the holder is revoked for ``no_media`` unless its audio is heard first."""
        if self._holder is None or not self.settings.no_media_timeout:
            return None
        return self._media_due

    # -- operations ---------------------------------------------------------------------

    def request(self, member: str, now: float, priority: int = 0) -> list[Effect]:
        """``member`` asks to talk, with its ``priority`` (higher pre-empts a lower holder).

        A repeated request is answered again (same grant with the time left, or the same
        queue position) without changing anything: clients may retry after a lost reply.
        """
        if self._holder == member:
            return [Granted(member, self._remaining_ms(now))]
        if self._holder is None:
            return self._grant(member, now, priority)
        if priority > self._priority[self._holder]:
            return self._preempt(member, now, priority)
        position = self.position(member)
        if position is not None:
            return [Queued(member, position)]
        if not self.settings.queue:
            return [Denied(member, "busy", self._holder)]
        self._queue.append(member)
        self._priority[member] = priority
        return [Queued(member, len(self._queue)), self._changed()]

    def holder_priority(self) -> int | None:
        """The priority the holder's request came with (None: idle)."""
        return None if self._holder is None else self._priority[self._holder]

    def release(self, member: str, now: float) -> list[Effect]:
        """``member`` lets go: the holder ends its talk, a queued member stops waiting.

        Always acknowledged with ``Released`` (also when the member had nothing to
        release) so a client can treat the acknowledgement as "my state is idle now".
        """
        effects: list[Effect] = [Released(member)]
        effects.extend(self._drop(member, now))
        return effects

    def leave(self, member: str, now: float) -> list[Effect]:
        """``member`` left the room (or lost its media): drop it from the floor at once."""
        return self._drop(member, now)

    def tick(self, now: float) -> list[Effect]:
        """Revoke the floor from a holder whose talk time ran out, or whose audio stopped."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            return self._revoke("max_talk_time", now)
        media_due = self.media_deadline()
        if media_due is not None and now >= media_due:
            return self._revoke("no_media", now)
        return []

    # -- the holder's media (the end-of-media timer) ------------------------------------

    def media_active(self, member: str) -> None:
        """``member``'s audio reaches the media plane: as holder, it is not revoked for
        no media while this lasts."""
        if member == self._holder:
            self._media_due = None

    def media_silent(self, member: str, now: float, silent_for: float) -> None:
        """No audio from ``member`` for ``silent_for`` seconds: as holder, it is revoked
        ``no_media_timeout`` after its last packet (never counted from before its grant)."""
        if member == self._holder and self.settings.no_media_timeout:
            since = max(now - silent_for, self._granted_at)
            self._media_due = since + self.settings.no_media_timeout

    def media_lost(self, member: str, now: float) -> None:
        """``member``'s media session is gone and being set up again (a media reset, a new
        offer): as holder, it gets ``media_wait`` from now to be heard again."""
        if member == self._holder:
            self._media_due = now + self.settings.media_wait

    # -- internals ----------------------------------------------------------------------

    def _preempt(self, member: str, now: float, priority: int) -> list[Effect]:
        """``member`` outranks the holder: the holder is revoked (not queued again), the
        requester leaves the queue if it waited there and holds the floor at once."""
        holder = self._holder
        assert holder is not None
        del self._priority[holder]
        effects: list[Effect] = [Revoked(holder, "preempted", by=member)]
        position = self.position(member)
        if position is not None:
            del self._queue[position - 1]
            effects.extend(Queued(m, i) for i, m in enumerate(self._queue, start=1)
                           if i >= position)
        effects.extend(self._grant(member, now, priority))
        return effects

    def _revoke(self, reason: str, now: float) -> list[Effect]:
        holder = self._holder
        assert holder is not None
        self._holder = None
        del self._priority[holder]
        effects: list[Effect] = [Revoked(holder, reason)]
        effects.extend(self._next(now))
        return effects

    def _drop(self, member: str, now: float) -> list[Effect]:
        if self._holder == member:
            self._holder = None
            del self._priority[member]
            return self._next(now)
        position = self.position(member)
        if position is None:
            return []
        del self._queue[position - 1]
        del self._priority[member]
        effects: list[Effect] = [
            Queued(m, i) for i, m in enumerate(self._queue, start=1) if i >= position
        ]
        effects.append(self._changed())
        return effects

    def _next(self, now: float) -> list[Effect]:
        """Hand the (just freed) floor to the head of the queue, or go idle."""
        if not self._queue:
            return [self._changed()]
        member = self._queue.popleft()
        effects = self._grant(member, now, self._priority[member])
        # Everyone still waiting moved up by one.
        effects[1:1] = [Queued(m, i) for i, m in enumerate(self._queue, start=1)]
        return effects

    def _grant(self, member: str, now: float, priority: int) -> list[Effect]:
        self._holder = member
        self._priority[member] = priority
        self._granted_at = now
        self._media_due = now + self.settings.media_wait
        return [Granted(member, self.settings.max_talk_ms), self._changed()]

    def _remaining_ms(self, now: float) -> int | None:
        deadline = self.deadline()
        if deadline is None:
            return None
        return max(0, int((deadline - now) * 1000))

    def _changed(self) -> FloorChanged:
        return FloorChanged(self._holder, len(self._queue))
