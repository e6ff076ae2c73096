"""The hub's half of the quick reconnect: hold a member whose socket died, resume it on a
new socket, or let it leave when its grace runs out (docs/PROTOCOL.md, "resume").

A mixin of :class:`signaling.hub.Hub`, kept apart so that the session logic of hub.py stays
readable: everything here works on the hub's own state (``_by_member``, the registry, the
floor) through the same paths as a join or a leave, and ``ResumeKeeper`` (resume.py) keeps
the secrets and deadlines.

What a held member keeps, and why:

* its membership, name, permissions and queue place: nobody else sees it leave;
* its media peer: if only the WebSocket died (a proxy or a flaky path), its audio goes on;
* the floor, *if* its media is connected: the end-of-media timer (floor.py, ``no_media``)
  revokes it 3 s after its last packet exactly as for a member whose socket lives, so a
  talker that vanished still loses the floor within issue 9's 5 s. A holder without
  connected media loses the floor at once, as a disconnect did before: nothing else
  would free it before ``media_wait`` (10 s).

A held member's client is still the one in ``_by_member`` (marked ``held``): floor effects
and media events reach the member's state as usual, and what would be sent to it is not.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .messages import ProtocolError, Resume, encode
from .session import Action, Client, Close, Send

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["HoldingMixin", "CLOSE_RESUMED"]

log = logging.getLogger("walkie.signaling")

#: Close code for a member's old socket when a new one resumed it (1000: normal closure).
CLOSE_RESUMED = 1000


class HoldingMixin:
    """Hold / resume / expire, for :class:`~signaling.hub.Hub`."""

    def _hold(self: Hub, client: Client) -> list[Action]:
        """``client``'s socket died without a goodbye: keep its member for the grace."""
        member = client.member
        assert member is not None
        now = self.clock()
        client.closed = True
        client.held = True
        self._clients.discard(client)
        deadline = self.resumes.hold(member.id, now)
        room = self._room_of(member)
        actions: list[Action] = []
        if room.floor.holder == member.id and not client.media_connected:
            actions.extend(self._floor_effects(room, room.floor.release(member.id, now)))
        log.info("member %s of room %s lost its socket: held for %g s", member.id, room.id,
                 deadline - now)
        return actions

    def _resume(self: Hub, client: Client, msg: Resume) -> list[Action]:
        """A new socket presents a member's id and resume secret: it takes the member over
        (from a held client, or from a socket the server has not yet seen die)."""
        if client.member is not None:
            return self.error(client, ProtocolError(
                "already_joined", "this connection already joined a room"))
        old = self._by_member.get(msg.member_id)
        member = old.member if old is not None else None
        if (old is None or member is None or member.room_id != msg.room
                or not self.resumes.enabled or not self.resumes.matches(member.id, msg.secret)):
            return self.error(client, ProtocolError(
                "resume_failed", "cannot resume: no such member in this room, a wrong or "
                "used secret, or its grace period ran out; join again"))
        actions: list[Action] = []
        if not old.held:  # the old socket still looks alive here: it is replaced
            actions.append(Close(old, CLOSE_RESUMED, "resumed on another connection"))
            old.closed = True
            self._clients.discard(old)
        self.resumes.release(member.id)
        client.member = member
        client.peer_id, client.media_connected = self._take_media(old)
        client.bad_offers = old.bad_offers
        old.member, old.peer_id, old.held, old.media_connected = None, None, False, False
        actions.extend(self._welcome(client, member, announce=False))
        actions.extend(self._resumed_state(client))
        log.info("member %s resumed in room %s", member.id, member.room_id)
        return actions

    @staticmethod
    def _take_media(old: Client) -> tuple[str | None, bool]:
        """The media session the resumed client inherits (none while one was being
        answered: the page offers again after ``media`` ``reset``)."""
        if old.offer_pending is not None:
            old.offer_pending = None
            return None, False
        return old.peer_id, old.media_connected

    def _resumed_state(self: Hub, client: Client) -> list[Action]:
        """After the resumed ``joined``: the member's own floor state (a grant, a queue
        place) and its media (``connected`` if its peer lived on, else ``reset``: offer)."""
        member = client.member
        assert member is not None
        room = self._room_of(member)
        floor = room.floor
        actions: list[Action] = []
        position = floor.position(member.id)
        if floor.holder == member.id:
            deadline = floor.deadline()
            left = None if deadline is None else max(0, int((deadline - self.clock()) * 1000))
            actions.append(Send(client, encode({"type": "floor_granted", "max_ms": left})))
        elif position is not None:
            actions.append(Send(client, encode({"type": "floor_queued", "position": position})))
        if client.peer_id is not None and client.media_connected:
            actions.append(Send(client, encode({"type": "media", "state": "connected"})))
        else:
            if client.peer_id is not None:  # a peer that never connected: start afresh
                peer_id, client.peer_id = client.peer_id, None
                self._remove_peer(peer_id)
                floor.media_lost(member.id, self.clock())
                self._sync_speaker(room)
            actions.append(Send(client, encode({"type": "media", "state": "reset",
                                                "reason": "resumed"})))
        return actions

    def _expire_holds(self: Hub) -> list[Action]:
        """Members whose grace ran out leave now, as a disconnect did before."""
        actions: list[Action] = []
        for member_id in self.resumes.expired(self.clock()):
            client = self._by_member.get(member_id)
            self.resumes.forget(member_id)
            if client is not None and client.held:
                client.held = False
                log.info("member %s was not resumed in time", member_id)
                actions.extend(self._leave(client))
        return actions
