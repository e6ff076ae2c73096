"""The signaling logic: clients, rooms, presence, the floor and the SDP exchange.

(About 500 lines: every transition of a session is here, in one readable place, including
a room arriving from or leaving for another node of a cluster (``resume``, ``hand_over``);
the vocabulary is in session.py and the limits' rules in budgets.py.)

The :class:`Hub` is the server without the sockets. The WebSocket layer (``server.py``)
feeds it validated messages, disconnects, media-plane events and clock ticks; the hub
answers with :class:`Send`, :class:`Close` and :class:`Negotiate` actions that the server
carries out. It is synchronous and never awaits, so every state change happens atomically
between two frames: no locks, and the order of messages each client sees is the order of the
hub's decisions.

Answering an offer takes the media plane a round trip to a worker process, so it is an
action: the server runs ``await media.negotiate(...)`` for a :class:`Negotiate` and feeds the
outcome back (:meth:`Hub.offer_answered` / :meth:`Hub.offer_failed`); meanwhile the client's
other messages go on. The hub does call the one-way parts of the media plane itself
(``remove_peer``, ``set_speaker``: they never block), being the one place that knows both
the floor holder and whether that holder's media is set up.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import floor as fl
from .budgets import MAX_BAD_OFFERS, offer_too_large
from .holding import HoldingMixin
from .messages import (
    ClientMessage,
    FloorRelease,
    FloorRequest,
    Join,
    Offer,
    Ping,
    ProtocolError,
    Replay,
    ReplayStop,
    Resume,
    encode,
)
from .metrics import NO_OBSERVER, Observer
from .replay import REPLAY_EVENTS, SayAgain
from .resume import ResumeKeeper
from .rooms import JoinError, Member, Room, RoomRegistry
from .session import Action, Client, Close, MediaPlane, Negotiate, PeerEventLike, Send
from .tokens import TokenCheck, admit_token

# The session vocabulary (session.py) is re-exported: the server and tests speak it with the hub.
__all__ = ["Action", "Client", "Close", "Hub", "MediaPlane", "Negotiate", "Send", "CLOSE_FATAL",
           "CLOSE_MEDIA"]

log = logging.getLogger("walkie.signaling")

#: Close code after a fatal protocol error (RFC 6455 1008: policy violation).
CLOSE_FATAL = 1008
#: Close code after the media plane lost the client (1011: unexpected condition).
CLOSE_MEDIA = 1011
#: Close code for an oversize frame (1009: message too big).
CLOSE_TOO_LARGE = 1009

#: Error codes that end the session when they answer a join.
FATAL_CODES = frozenset({"room_full", "bad_password", "bad_room", "bad_name", "too_large",
                         "too_many_rooms", "join_timeout", "room_not_protected",
                         "bad_token", "token_expired"})


class Hub(HoldingMixin):
    """All sessions of one signaling server, bound to one media plane.

    A member whose socket dies without a goodbye is held for ``resume_grace`` seconds
    (0: leaves at once) and may be resumed on a new socket: holding.py, resume.py."""

    def __init__(
        self,
        registry: RoomRegistry,
        media: MediaPlane,
        ice_servers: Callable[[str], list[dict[str, object]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        ice_transport_policy: str = "all",
        observer: Observer = NO_OBSERVER,
        tokens: TokenCheck | None = None,
        recording: bool = False,
        replay_seconds: float | None = None,
        resume_grace: float = 0.0,
    ) -> None:
        """``ice_servers(member_id)`` gives each joiner its STUN/TURN entries (fresh TURN
        credentials); ``ice_transport_policy`` ('all' or 'relay') is how browsers may reach
        the media plane, a deployment setting passed through to every ``joined``, as is
        ``recording`` (the server keeps every transmission: ``joined.recorded``);
        ``replay_seconds``: how long the media plane keeps each room's audio for say-again
        (None: it keeps none; signaling/replay.py)."""
        if ice_transport_policy not in ("all", "relay"):
            raise ValueError("ice_transport_policy must be 'all' or 'relay'")
        self.registry = registry
        self.media = media
        self.clock = clock
        self.observer = observer  # metrics (signaling/metrics.py): told as things happen
        self.tokens = tokens  # joins need a signed token (signaling/tokens.py) when set
        self.recording = recording
        self.resumes = ResumeKeeper(resume_grace)  # quick reconnect (holding.py)
        self._ice_servers = ice_servers or (lambda member_id: [])
        self._ice_transport_policy = ice_transport_policy
        self._serials = itertools.count(1)
        self._offers = itertools.count(1)
        self._by_member: dict[str, Client] = {}
        self._clients: set[Client] = set()
        # What the media plane was last told about each room's speaker.
        self._speaker: dict[str, str | None] = {}
        self.replay = SayAgain(replay_seconds, media, self._by_member.get, registry.get)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- entry points -------------------------------------------------------------------

    def connect(self, context: Any = None) -> Client:
        client = Client(next(self._serials), context=context)
        self._clients.add(client)
        return client

    def receive(
        self,
        client: Client,
        message: ClientMessage,
        password_key: bytes | None = None,
    ) -> list[Action]:
        """Handle one validated message. ``password_key`` accompanies a Join that carried a
        password (the server derives it off the event loop: see rooms.py)."""
        if client.closed:
            return []
        if isinstance(message, Ping):
            return [Send(client, encode({"type": "pong"}))]
        if isinstance(message, Join):
            return self._join(client, message, password_key)
        if isinstance(message, Resume):
            return self._resume(client, message)
        if client.member is None:
            return self.error(client, ProtocolError("not_joined", "join a room first"))
        if isinstance(message, Offer):
            return self._offer(client, client.member, message)
        if isinstance(message, FloorRequest):
            room = self._room_of(client.member)
            self.observer.floor_requested(client.member.id, self.clock())
            if client.member.listen_only:  # its token forbids talking: nothing changes
                return self._floor_effects(room, [fl.Denied(client.member.id, "listen_only",
                                                            room.floor.holder)])
            effects = room.floor.request(client.member.id, self.clock(), client.member.priority)
            return self._floor_effects(room, effects)
        if isinstance(message, FloorRelease):
            room = self._room_of(client.member)
            return self._floor_effects(room, room.floor.release(client.member.id, self.clock()))
        if isinstance(message, (Replay, ReplayStop)):
            return self._say_again(client, client.member, message)
        raise TypeError(f"unhandled message {message!r}")  # pragma: no cover

    def error(self, client: Client, exc: ProtocolError | JoinError) -> list[Action]:
        """Tell ``client`` what was wrong; close it when the error is fatal."""
        fatal = exc.code in FATAL_CODES
        self.observer.error(exc.code)
        actions: list[Action] = [Send(client, error_message(exc.code, exc.message, fatal))]
        if fatal:
            code = CLOSE_TOO_LARGE if exc.code == "too_large" else CLOSE_FATAL
            actions.extend(self._close(client, code, exc.code))
        return actions

    def server_error(self, client: Client) -> list[Action]:
        """The answer to a message whose handling raised: the session goes on."""
        self.observer.error("server_error")
        return [Send(client, error_message("server_error", "internal error; see server log", False))]

    def disconnect(self, client: Client, clean: bool = True) -> list[Action]:
        """The client's socket is gone: leave the room, tell the others, free the media.
        Gone without a goodbye (``clean`` False: no close frame, or the keepalive gave up)
        while resumes are on, its member is held for the grace instead (holding.py)."""
        if not clean and self.resumes.enabled and client.member is not None and not client.closed:
            return self._hold(client)
        actions = self._leave(client)
        client.closed = True
        self._clients.discard(client)
        return actions

    def offer_answered(self, negotiation: Negotiate, answer: str) -> list[Action]:
        """The media plane answered: send the answer, or drop a peer nobody wants now."""
        client = negotiation.client
        if not self._still_wanted(negotiation):
            # The member left (or the socket closed) while the worker answered.
            self._remove_peer(negotiation.peer_id)
            return []
        member = client.member
        assert member is not None
        client.offer_pending = None
        client.peer_id = negotiation.peer_id
        actions: list[Action] = [Send(client, encode({"type": "answer", "sdp": answer}))]
        # The member may hold the floor already (it pressed before media was up, or it
        # offered again after a media reset): it becomes the speaker now.
        self._sync_speaker(self._room_of(member))
        return actions

    def offer_failed(self, negotiation: Negotiate, reason: str | None,
                     unusable: bool = True) -> list[Action]:
        """The media plane refused the offer (``reason`` for the client: ``bad_offer``), or
        failed internally (``reason`` None: ``server_error``). The session goes on, unless
        this was the connection's MAX_BAD_OFFERS-th ``unusable`` offer; ``unusable`` False
        says the media plane itself could not serve it (a worker restarting): not counted."""
        client = negotiation.client
        if not self._still_wanted(negotiation):
            return []
        client.offer_pending = None
        if reason is None:
            return self.server_error(client)
        return self._bad_offer(client, reason or "unusable offer", counted=unusable)

    def _bad_offer(self, client: Client, reason: str, counted: bool = True) -> list[Action]:
        """``bad_offer``; fatal for the MAX_BAD_OFFERS-th unusable offer of a connection (the
        page never sends a second one: www/negotiation.js gives up on the first)."""
        if counted:
            client.bad_offers += 1
        if client.bad_offers < MAX_BAD_OFFERS:
            return self.error(client, ProtocolError("bad_offer", reason))
        message = f"{reason}; {MAX_BAD_OFFERS} unusable offers on this connection, closing"
        self.observer.error("bad_offer")
        actions: list[Action] = [Send(client, error_message("bad_offer", message, True))]
        actions.extend(self._close(client, CLOSE_FATAL, "bad_offer"))
        return actions

    def _still_wanted(self, negotiation: Negotiate) -> bool:
        client = negotiation.client
        return (
            not client.closed
            and client.member is not None
            and client.member.id == negotiation.peer_id
            and client.offer_pending == negotiation.offer
        )

    def media_event(self, event: PeerEventLike) -> list[Action]:
        """React to the media plane: ICE+DTLS up, the peer's worker restarted (``reset``:
        offer again, the session goes on), or the peer is lost (the session ends)."""
        if event.kind in REPLAY_EVENTS:
            return self.replay.media_event(event)
        client = self._by_member.get(event.peer_id)
        if client is None or client.peer_id != event.peer_id or (client.closed and not client.held):
            return []
        if client.held:  # its member's state follows; nothing is sent to it
            actions = self._media_event(client, event)
            return [a for a in actions if not (isinstance(a, Send | Close) and a.client is client)]
        return self._media_event(client, event)

    def _media_event(self, client: Client, event: PeerEventLike) -> list[Action]:
        self.observer.media_event(event.kind)
        if event.kind == "connected":
            client.media_connected = True
            return [Send(client, encode({"type": "media", "state": "connected"}))]
        if event.kind in ("speaker_active", "speaker_silent"):
            return self._speaker_media(client, event)
        if event.kind in ("reset", "closed"):
            # The media plane forgot the peer; membership, floor and queue stay. A holder
            # stops being the speaker until its new offer is accepted. ``closed``: the
            # client closed its peer connection itself (DTLS close_notify), as a page does
            # when it replaces it after a network change: it knows, and offers again.
            client.peer_id = None
            client.media_connected = False
            assert client.member is not None
            room = self._room_of(client.member)
            room.floor.media_lost(client.member.id, self.clock())
            self._sync_speaker(room)
            if event.kind == "closed":
                return []
            reason = event.reason or "media reset"
            actions: list[Action] = [
                Send(client, encode({"type": "media", "state": "reset", "reason": reason}))]
            if self.replay.forget(room.id):  # the worker and its kept audio are gone
                actions.extend(self._to_room(room, self.replay.list_message(room.id)))
            return actions
        if event.kind in ("consent_lost", "dtls_failed"):
            client.peer_id = None  # the router has already dropped it
            client.media_connected = False
            reason = event.reason or event.kind
            actions = [
                Send(client, encode({"type": "media", "state": "failed", "reason": reason}))
            ]
            actions.extend(self._close(client, CLOSE_MEDIA, f"media {event.kind}"))
            return actions
        return []

    def _speaker_media(self, client: Client, event: PeerEventLike) -> list[Action]:
        """The holder's audio reaches the media plane, or stopped (the end-of-media timer:
        the floor revokes on a later tick, or at once if the silence is already too long)."""
        member = client.member
        assert member is not None
        room = self._room_of(member)
        if event.kind == "speaker_active":
            room.floor.media_active(member.id)
            self.replay.talker(room.id, member)  # named in the list once its turn is kept
            return []
        room.floor.media_silent(member.id, self.clock(), event.silent_for)
        return self._floor_effects(room, room.floor.tick(self.clock()))

    def tick(self) -> list[Action]:
        """Revoke floors whose max talk time ran out, or whose holder's audio stopped (no
        media). Call it a few times a second."""
        now = self.clock()
        actions: list[Action] = self._expire_holds()
        for room in self.registry.rooms():
            if room.floor.holder is not None:
                effects = room.floor.tick(now)
                if effects:
                    actions.extend(self._floor_effects(room, effects))
        return actions

    # -- join / offer / leave -----------------------------------------------------------

    def _join(self, client: Client, msg: Join, password_key: bytes | None) -> list[Action]:
        if client.member is not None:
            return self.error(
                client, ProtocolError("already_joined", "this connection already joined a room")
            )
        if msg.password is not None and password_key is None:
            raise ValueError("a join with a password needs its password_key")
        try:
            grant = admit_token(self.tokens, msg)  # None: no tokens on this server
            member = self.registry.join(
                msg.room, grant.name if grant else msg.name, password_key,
                listen_only=grant is not None and grant.listen_only,
                priority=grant.priority if grant else 0)
        except (JoinError, ProtocolError) as exc:
            return self.error(client, exc)
        return self._welcome(client, member)

    def _welcome(self, client: Client, member: Member, announce: bool = True) -> list[Action]:
        """``member`` is in its room now: its ``joined``, and ``member_joined`` to the others
        (not for a member resumed on a new socket: for them it never left)."""
        client.member = member
        self._by_member[member.id] = client
        if announce:  # webhooks and metrics saw no leave either
            self.observer.joined(member)
        room = self._room_of(member)
        floor = room.floor
        joined = {
            "type": "joined",
            "room": room.id,
            "you": member.public(),
            "members": [m.public() for m in room.members.values()],
            "max_users": self.registry.max_users,
            "ice_servers": self._ice_servers(member.id),
            "ice_transport_policy": self._ice_transport_policy,
            "floor": self._floor_state(room),
            "max_talk_ms": floor.settings.max_talk_ms,
            "queue": floor.settings.queue,
            "password_protected": room.password_protected,
            "recorded": self.recording,
            "permissions": {"listen_only": member.listen_only, "priority": member.priority},
        }
        replay = self.replay.joined_field(room)
        if replay is not None:  # this room keeps audio for say-again: the page says so
            joined["replay"] = replay
        if self.resumes.enabled:  # a new secret each time: the one just used stops working
            joined["resume"] = {"secret": self.resumes.issue(member.id),
                                "grace_ms": round(self.resumes.grace * 1000)}
        if not announce:
            joined["resumed"] = True
        actions: list[Action] = [Send(client, encode(joined))]
        if not announce:
            return actions
        notice = encode({"type": "member_joined", "member": member.public()})
        actions.extend(self._to_room(room, notice, exclude=client))
        log.info("member %s joined room %s (%d members)", member.id, room.id, len(room.members))
        return actions

    # -- a room that changes node (cluster: signaling/cluster/handover.py) ----------------

    def resume(self, client: Client, room_id: str, member_id: str, name: str,
               password_key: bytes | None, reason: str, *, listen_only: bool = False,
               priority: int = 0) -> list[Action]:
        """A member whose room moved here from another node: admitted without a password
        check (nor token: its permissions come along), keeping its id; it gets a ``joined`` (the room as it is here: its state
        replaces the page's) and a ``media`` ``reset`` (``reason``) so that it offers again,
        to this node's media plane, on the same socket."""
        if client.member is not None or client.closed:
            return []
        try:
            member = self.registry.resume(room_id, member_id, name, password_key,
                                          listen_only=listen_only, priority=priority)
        except JoinError as exc:
            return self.error(client, exc)
        actions = self._welcome(client, member)
        actions.append(Send(client, encode({"type": "media", "state": "reset",
                                            "reason": reason})))
        return actions

    def hand_over(self, room_id: str,
                  reason: str) -> tuple[list[Action], list[tuple[Client, Member]]]:
        """The room leaves this node (a drain moved it): every member leaves it here
        without anyone being told (each resumes on the new node, whose ``joined`` says who
        is there), a floor holder first gets ``floor_revoked`` (``reason``). Returns those
        actions and each member with its client (no longer a member here)."""
        room = self.registry.get(room_id)
        if room is None:
            return [], []
        actions: list[Action] = []
        clients: list[tuple[Client, Member]] = []
        holder = room.floor.holder
        for member_id, member in list(room.members.items()):
            client = self._by_member.pop(member_id, None)
            self.registry.leave(member_id)
            self.observer.left(member_id)
            self.resumes.forget(member_id)
            if client is None or client.held:  # no socket to follow the room
                continue
            if member_id == holder:
                actions.append(Send(client, encode({"type": "floor_revoked",
                                                    "reason": reason})))
            client.member = None
            client.offer_pending = None
            client.media_connected = False
            peer_id, client.peer_id = client.peer_id, None
            if peer_id is not None:
                self._remove_peer(peer_id)
            clients.append((client, member))
        self.replay.forget(room_id)  # its kept audio does not follow it to the new node
        if self._speaker.pop(room_id, None) is not None:
            try:
                self.media.set_speaker(room_id, None)
            except Exception:  # noqa: BLE001 - a media-plane hiccup must not break signaling
                log.exception("set_speaker(%s, None) failed", room_id)
        log.info("room %s handed over (%d members)", room_id, len(clients))
        return actions, clients

    def _offer(self, client: Client, member: Member, msg: Offer) -> list[Action]:
        if client.offer_pending is not None:
            return self.error(
                client, ProtocolError("bad_message", "an offer is already being answered")
            )
        too_large = offer_too_large(msg.sdp)
        if too_large is not None:  # refused before the media plane parses it
            return self._bad_offer(client, too_large)
        if client.peer_id is not None:
            # A new offer replaces the media session (docs/PROTOCOL.md, "offer"): the old
            # peer goes first, so that the id is free for the new one.
            peer_id, client.peer_id = client.peer_id, None
            client.media_connected = False
            self._remove_peer(peer_id)
            room = self._room_of(member)
            room.floor.media_lost(member.id, self.clock())
            self._sync_speaker(room)
        client.offer_pending = next(self._offers)
        return [Negotiate(client, client.offer_pending, member.id, member.room_id, msg.sdp,
                          member.listen_only)]

    def _leave(self, client: Client) -> list[Action]:
        member = client.member
        if member is None:
            return []
        client.member = None
        client.held = False
        self._by_member.pop(member.id, None)
        self.resumes.forget(member.id)
        peer_id, client.peer_id = client.peer_id, None
        client.media_connected = False
        room = self._room_of(member)
        actions: list[Action] = []
        effects = room.floor.leave(member.id, self.clock())
        self.registry.leave(member.id)
        self.observer.left(member.id)
        if peer_id is not None:
            self._remove_peer(peer_id)
        if room.members:
            actions.extend(self._floor_effects(room, effects))
            notice = encode({"type": "member_left", "id": member.id})
            actions.extend(self._to_room(room, notice))
        else:
            self._speaker.pop(room.id, None)
            self.replay.forget(room.id)
        log.info("member %s left room %s", member.id, room.id)
        return actions

    def _close(self, client: Client, code: int, reason: str) -> list[Action]:
        """Leave at once (others must not wait for the TCP close), then close the socket."""
        actions = self._leave(client)
        actions.append(Close(client, code, reason))
        client.closed = True
        return actions

    def _say_again(self, client: Client, member: Member,
                   message: Replay | ReplayStop) -> list[Action]:
        """``replay`` / ``replay_stop`` (signaling/replay.py); a refusal changes nothing."""
        room = self._room_of(member)
        try:
            if isinstance(message, Replay):
                return self.replay.request(client, room, message)
            return self.replay.stop(client, room)
        except ProtocolError as exc:
            return self.error(client, exc)

    # -- floor --------------------------------------------------------------------------

    def _floor_effects(self, room: Room, effects: Iterable[fl.Effect]) -> list[Action]:
        actions: list[Action] = []
        now = self.clock()
        for effect in effects:
            self.observer.floor_effect(effect, now)
            if isinstance(effect, fl.FloorChanged):
                self._sync_speaker(room)
                text = encode({"type": "floor", **self._floor_state(room)})
                actions.extend(self._to_room(room, text))
                continue
            client = self._by_member.get(effect.member)
            if client is None or client.held:
                continue
            if isinstance(effect, fl.Granted):
                message: dict[str, object] = {"type": "floor_granted", "max_ms": effect.max_ms}
            elif isinstance(effect, fl.Denied):
                message = {
                    "type": "floor_denied",
                    "reason": effect.reason,
                    "holder": self._public(room, effect.holder),
                }
            elif isinstance(effect, fl.Queued):
                message = {"type": "floor_queued", "position": effect.position}
            elif isinstance(effect, fl.Revoked):
                message = {"type": "floor_revoked", "reason": effect.reason}
                if effect.by is not None:  # pre-empted: by whom
                    message["by"] = self._public(room, effect.by)
            else:
                message = {"type": "floor_released"}
            actions.append(Send(client, encode(message)))
        return actions

    def _sync_speaker(self, room: Room) -> None:
        """Tell the media plane who the speaker is, if that changed.

        The speaker is the floor holder once its media peer exists; until then nobody (the
        router only knows peers that sent an offer).
        """
        holder = room.floor.holder
        speaker = None
        if holder is not None:
            client = self._by_member.get(holder)
            if client is not None and client.peer_id is not None:
                speaker = client.peer_id
        if self._speaker.get(room.id) == speaker:
            return
        try:
            self.media.set_speaker(room.id, speaker)
        except Exception:  # noqa: BLE001 - a media-plane hiccup must not break signaling
            log.exception("set_speaker(%s, %s) failed", room.id, speaker)
            return
        self._speaker[room.id] = speaker

    def _remove_peer(self, peer_id: str) -> None:
        try:
            self.media.remove_peer(peer_id)
        except Exception:  # noqa: BLE001 - removal must finish whatever the media plane does
            log.exception("remove_peer(%s) failed", peer_id)

    def _floor_state(self, room: Room) -> dict[str, object]:
        return {
            "holder": self._public(room, room.floor.holder),
            "queue_length": len(room.floor.queue),
        }

    # -- helpers ------------------------------------------------------------------------

    def _room_of(self, member: Member) -> Room:
        room = self.registry.get(member.room_id)
        if room is None:  # pragma: no cover - a joined member's room exists by construction
            raise RuntimeError(f"room {member.room_id} of member {member.id} is gone")
        return room

    @staticmethod
    def _public(room: Room, member_id: str | None) -> dict[str, str] | None:
        if member_id is None:
            return None
        member = room.members.get(member_id)
        return member.public() if member is not None else {"id": member_id, "name": ""}

    def _to_room(self, room: Room, text: str, exclude: Client | None = None) -> list[Action]:
        actions: list[Action] = []
        for member_id in room.members:
            client = self._by_member.get(member_id)
            if client is not None and client is not exclude and not client.closed:
                actions.append(Send(client, text))
        return actions


def error_message(code: str, message: str, fatal: bool, retry_after: float | None = None) -> str:
    """An ``error``; ``retry_after`` (seconds) adds ``retry_ms`` (``try_later``)."""
    error: dict[str, object] = {"type": "error", "code": code, "message": message, "fatal": fatal}
    if retry_after is not None:
        error["retry_ms"] = max(1, math.ceil(retry_after * 1000))
    return encode(error)
