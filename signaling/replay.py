"""Say-again, the signaling half: what members are told, and requests to hear one again.

The audio itself never reaches this process: the media worker that hosts a room keeps its
last transmissions and plays one to the member who asks (sfu/replay.py, sfu/replayer.py).
Signaling keeps only the room's list as the worker last sent it (id, talker, start, length),
names the talkers, checks requests, and turns the worker's answers into messages for that
member alone (docs/PROTOCOL.md, "Say again").

Sans-IO like the hub it serves: the hub (hub.py) calls in with validated messages and media
events, and gets :class:`~signaling.session.Send` actions back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .messages import ProtocolError, Replay, encode
from .rooms import Member, Room
from .session import Action, Client, MediaPlane, Send

__all__ = ["REPLAY_EVENTS", "SayAgain"]

#: The worker's event kinds this module handles (sfu/replay.py ``ReplayEvent``).
REPLAY_EVENTS = frozenset({"replay_list", "replay_started", "replay_ended"})


class SayAgain:
    """Each room's list of kept transmissions, and the members' replay requests.

    ``seconds`` is how long rooms keep audio (``walkie serve --replay``), None when nothing
    is kept: then ``joined`` says nothing and every request is refused
(``replay_unavailable``).
    """

    def __init__(self, seconds: float | None, media: MediaPlane,
                 client_of: Callable[[str], Client | None],
                 room_of: Callable[[str], Room | None]) -> None:
        self.seconds = seconds
        self._media = media
        self._client_of = client_of
        self._room_of = room_of
        #: room id -> its kept transmissions as the worker listed them (oldest first)
        self._lists: dict[str, tuple[Any, ...]] = {}
        #: room id -> member id -> display name, for talkers who may have left since
        self._names: dict[str, dict[str, str]] = {}

    @property
    def enabled(self) -> bool:
        return self.seconds is not None

    # -- what members are told --------------------------------------------------------------

    def joined_field(self, room: Room) -> dict[str, object] | None:
        """``joined.replay``: how long the room keeps audio and what it keeps now."""
        if self.seconds is None:
            return None
        return {"seconds": self.seconds, "transmissions": self._listing(room.id)}

    def talker(self, room_id: str, member: Member) -> None:
        """``member`` talks in the room now: its name outlives its membership in the list."""
        if self.seconds is not None:
            self._names.setdefault(room_id, {})[member.id] = member.name

    def forget(self, room_id: str) -> bool:
        """The room's audio is gone (its last member left, it moved, its worker died);
        True if members had been told of any transmission (they must be told again)."""
        self._names.pop(room_id, None)
        return bool(self._lists.pop(room_id, ()))

    def list_message(self, room_id: str) -> str:
        return encode({"type": "replay_list", "transmissions": self._listing(room_id)})

    # -- requests ---------------------------------------------------------------------------

    def request(self, client: Client, room: Room, message: Replay) -> list[Action]:
        """``replay`` {id}: ask the room's worker to play that transmission to ``client``."""
        self._check(client)
        assert client.peer_id is not None
        known = any(item.id == message.id for item in self._lists.get(room.id, ()))
        if not known:
            return [self._ended(client, message.id, "gone")]
        if room.floor.holder is not None:  # live audio wins: nothing to start
            return [self._ended(client, message.id, "live")]
        try:
            self._media.start_replay(room.id, client.peer_id, message.id)
        except KeyError:  # the media plane forgot the peer meanwhile (a reset is on its way)
            return [self._ended(client, message.id, "gone")]
        return []

    def stop(self, client: Client, room: Room) -> list[Action]:
        """``replay_stop``: end the client's replay (answered ``replay_ended`` ``stopped``
        if one played; nothing otherwise)."""
        self._check(client)
        assert client.peer_id is not None
        try:
            self._media.stop_replay(room.id, client.peer_id)
        except KeyError:
            pass
        return []

    def _check(self, client: Client) -> None:
        if self.seconds is None:
            raise ProtocolError("replay_unavailable",
                                "this server keeps no audio (walkie serve --replay)")
        if client.peer_id is None or not client.media_connected:
            raise ProtocolError("replay_unavailable", "your audio is not connected yet")

    # -- the media plane's answers ------------------------------------------------------------

    def media_event(self, event: Any) -> list[Action]:
        """A worker's ``replay_*`` event (sfu/replay.py ``ReplayEvent``)."""
        if self.seconds is None:
            return []
        if event.kind == "replay_list":
            room = self._room_of(event.room_id)
            if room is None:
                return []
            self._lists[event.room_id] = items = tuple(event.items)
            names = self._names.get(event.room_id)
            if names:  # only the names someone may still need
                talkers = {item.talker for item in items}
                for member_id in [m for m in names if m not in talkers and m not in room.members]:
                    del names[member_id]
            text = self.list_message(event.room_id)
            return [Send(client, text) for client in self._clients(room)]
        client = self._client_of(event.peer_id)
        if client is None or client.peer_id != event.peer_id or client.closed:
            return []
        if event.kind == "replay_started" and event.items:
            body = {"type": "replay_started", **self._entry(event.room_id, event.items[0])}
            return [Send(client, encode(body))]
        if event.kind == "replay_ended":
            return [self._ended(client, event.transmission_id, event.reason)]
        return []

    # -- helpers -----------------------------------------------------------------------------

    def _ended(self, client: Client, transmission_id: str, reason: str) -> Send:
        return Send(client, encode({"type": "replay_ended", "id": transmission_id,
                                    "reason": reason}))

    def _listing(self, room_id: str) -> list[dict[str, object]]:
        return [self._entry(room_id, item) for item in self._lists.get(room_id, ())]

    def _entry(self, room_id: str, item: Any) -> dict[str, object]:
        """One transmission as clients see it: never its audio, never the talker's media id
        beyond its member id (the same)."""
        return {
            "id": item.id,
            "talker": {"id": item.talker, "name": self._name(room_id, item.talker)},
            "started_at": int(item.started_at * 1000),
            "duration_ms": round(item.duration * 1000),
            "truncated": bool(item.truncated),
        }

    def _name(self, room_id: str, member_id: str) -> str:
        name = self._names.get(room_id, {}).get(member_id)
        if name is None:
            room = self._room_of(room_id)
            member = room.members.get(member_id) if room is not None else None
            name = member.name if member is not None else ""
        return name

    def _clients(self, room: Room) -> list[Client]:
        clients = []
        for member_id in room.members:
            client = self._client_of(member_id)
            if client is not None and not client.closed:
                clients.append(client)
        return clients
