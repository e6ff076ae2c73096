"""Rooms, their members and their passwords. Pure bookkeeping: no I/O, no clock.

A room exists while someone is in it: the first joiner creates it (and may set its
password), the last one to leave removes it. There is no persistent state, which is what
makes the embedded server need no configuration.

Passwords are never stored: a room keeps an scrypt key derived from the password with a
per-room salt. The salt is ``HMAC(server secret, room id)`` rather than stored random
bytes so that the server can derive a joiner's key *before* touching the room (in a worker
thread: scrypt costs ~30 ms, which must not stall the event loop that also forwards media)
and then join synchronously with no race against the room being removed and re-created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from .floor import Floor, FloorSettings
from .names import unique_name

__all__ = ["JoinError", "Member", "Room", "RoomRegistry"]

# scrypt cost: N=2^14, r=8 -> 16 MiB and ~30 ms per derivation on the reference VM.
_SCRYPT_N = 1 << 14
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_BYTES = 32


class JoinError(ValueError):
    """A join that the room refuses; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Member:
    id: str
    name: str
    room_id: str
    # Permissions from a signed join token (signaling/tokens.py); without tokens, none.
    listen_only: bool = False
    priority: int = 0

    def public(self) -> dict[str, str]:
        """The member as other clients see it."""
        return {"id": self.id, "name": self.name}


@dataclass(slots=True)
class Room:
    id: str
    floor: Floor
    password_key: bytes | None = None
    members: dict[str, Member] = field(default_factory=dict)  # insertion order = join order

    @property
    def password_protected(self) -> bool:
        return self.password_key is not None


class RoomRegistry:
    """All rooms of one server."""

    def __init__(
        self,
        max_users: int = 15,
        floor_settings: FloorSettings | None = None,
        max_rooms: int = 10_000,
        secret: bytes | None = None,
    ) -> None:
        """``secret`` salts the password keys (see the module docstring): the nodes of a
        cluster share one, so that any of them can check a room's password; None: a
        random one, fine for a single server."""
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.max_users = max_users
        self.max_rooms = max_rooms
        self.floor_settings = floor_settings or FloorSettings()
        self._secret = secret or secrets.token_bytes(32)
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, Member] = {}

    # -- queries ------------------------------------------------------------------------

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def member(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def __len__(self) -> int:
        return len(self._rooms)

    @property
    def member_count(self) -> int:
        return len(self._members)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    # -- passwords ----------------------------------------------------------------------

    def password_key(self, room_id: str, password: str) -> bytes:
        """Derive the key that stands for ``password`` in ``room_id``.

        Thread-safe (reads only the immutable server secret) and slow on purpose: call it
        off the event loop.
        """
        salt = hmac.new(self._secret, room_id.encode(), hashlib.sha256).digest()
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=_SCRYPT_N,
            r=_SCRYPT_R,
            p=_SCRYPT_P,
            maxmem=64 * 1024 * 1024,
            dklen=_KEY_BYTES,
        )

    # -- operations ---------------------------------------------------------------------

    def join(self, room_id: str, name: str, password_key: bytes | None = None, *,
             listen_only: bool = False, priority: int = 0) -> Member:
        """Add a member called ``name`` to ``room_id`` (creating the room if needed).

        ``password_key`` is :meth:`password_key` of the password the joiner gave, or None.
        The first joiner's key becomes the room's password; later joiners must match it.
        A password given to a room that exists without one is refused
        (``room_not_protected``): the joiner believes the room is private, and whoever
        created it first (maybe someone who guessed the name) can hear everything in it.

        The member gets ``name``, or ``name (2)``... if another member of the room already
        has that name (``names.unique_name``): ``member.name`` is the name it was given.
        """
        room = self._rooms.get(room_id)
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                raise JoinError("room_full", "the server has reached its limit of rooms")
            room = Room(room_id, Floor(self.floor_settings), password_key)
        elif room.password_key is not None:
            if password_key is None:
                raise JoinError("bad_password", "this room needs a password")
            if not hmac.compare_digest(room.password_key, password_key):
                raise JoinError("bad_password", "wrong password for this room")
        elif password_key is not None:
            raise JoinError(
                "room_not_protected",
                "this room exists without a password: anyone who knows its name can join",
            )
        if len(room.members) >= self.max_users:
            raise JoinError("room_full", f"room is full ({self.max_users} members)")
        name = unique_name(name, (other.name for other in room.members.values()))
        member = Member(self._new_id(), name, room_id, listen_only, priority)
        self._rooms[room_id] = room
        room.members[member.id] = member
        self._members[member.id] = member
        return member

    def resume(self, room_id: str, member_id: str, name: str, password_key: bytes | None, *,
               listen_only: bool = False, priority: int = 0) -> Member:
        """Re-admit a member whose room moved here from another node of a cluster (a drain,
        or its node failed): no password check (it passed one when it joined), the same id
        unless a member here already has it, its name (made unique as on a join) and the
        permissions its join token gave it.

        ``password_key`` is the one the room's cluster record keeps: it protects the room if
        this creates it, so that later joins are checked against the same password."""
        room = self._rooms.get(room_id)
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                raise JoinError("room_full", "the server has reached its limit of rooms")
            room = Room(room_id, Floor(self.floor_settings), password_key)
        if len(room.members) >= self.max_users:
            raise JoinError("room_full", f"room is full ({self.max_users} members)")
        name = unique_name(name, (other.name for other in room.members.values()))
        if member_id in self._members:
            member_id = self._new_id()
        member = Member(member_id, name, room_id, listen_only, priority)
        self._rooms[room_id] = room
        room.members[member.id] = member
        self._members[member.id] = member
        return member

    def leave(self, member_id: str) -> Room | None:
        """Remove a member; returns its room (already unregistered if now empty).

        Floor bookkeeping is the caller's job (it needs the clock and must relay effects).
        """
        member = self._members.pop(member_id, None)
        if member is None:
            return None
        room = self._rooms[member.room_id]
        del room.members[member_id]
        if not room.members:
            del self._rooms[room.id]
        return room

    def _new_id(self) -> str:
        # 48 random bits, URL-safe: short enough to read in logs, never guessable in a
        # way that matters (ids are public to the room anyway), unique by construction.
        while True:
            member_id = secrets.token_urlsafe(6)
            if member_id not in self._members:
                return member_id
