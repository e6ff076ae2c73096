"""The budgets and the password gate in front of the hub: what the server asks before a join.

:class:`JoinAdmission` ties the sans-IO rules (``budgets.py``, ``password_gate.py``) to the
room registry and to the one slow step a join may need, the password key derivation, which
runs in a worker thread, ``KDF_CONCURRENCY`` at a time. The server asks it for every join
(and every new connection and frame: ``budgets``), and carries out the refusals.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from .budgets import AddressBudgets, Refusal
from .messages import Join
from .password_gate import PasswordGate
from .rooms import RoomRegistry

__all__ = ["JoinAdmission", "KDF_CONCURRENCY"]

#: Password key derivations running at the same time (each in a worker thread).
KDF_CONCURRENCY = 2

#: The key given with a password join to a room that exists without a password: never
#: derived, only "not None", for the registry to refuse the join with ``room_not_protected``.
NOT_PROTECTED = b""


class JoinAdmission:
    """May this join go ahead, and with which password key?"""

    def __init__(self, registry: RoomRegistry, budgets: AddressBudgets,
                 passwords: PasswordGate | None = None) -> None:
        self.registry = registry
        self.budgets = budgets
        self.passwords = passwords or PasswordGate()
        # scrypt costs ~30 ms of CPU and 16 MiB: bound how many run at once, so that password
        # joins never starve the media plane of CPU and memory; the gate bounds the queue.
        self._kdf_slots = asyncio.Semaphore(KDF_CONCURRENCY)

    async def admit(self, ip: str, join: Join, now: float) -> tuple[Refusal | None, bytes | None]:
        """(the refusal to send, None), or (None, the password key: derived here, or None
        for a join without a password)."""
        room = self.registry.get(join.room)
        creates = room is None
        refusal = self.budgets.join(ip, creates, now, self.room_alive)
        if refusal is None and join.password and room is not None and room.password_key is None:
            # The registry refuses a password for a room that has none (room_not_protected)
            # whatever the key: no scrypt run, no password check counted, for that refusal.
            return None, NOT_PROTECTED
        if refusal is None and join.password:
            refusal = self.passwords.admit(ip, join.room, now)
        if refusal is not None:
            return refusal, None
        return None, (await self._password_key(ip, join) if join.password else None)

    def joined(self, ip: str, room_id: str, created: bool) -> None:
        """The join went through; ``created``: it made the room (counted for its address)."""
        if created:
            self.budgets.created(ip, self.registry.get(room_id))

    def prune(self, now: float) -> None:
        """Forget addresses and rooms with nothing left to remember."""
        self.budgets.prune(now, self.room_alive)
        self.passwords.prune(now)

    def room_alive(self, room: object) -> bool:
        """Is ``room`` (a Room given to the budgets) still open (not removed, not replaced)?"""
        return self.registry.get(getattr(room, "id", "")) is room

    async def _password_key(self, ip: str, join: Join) -> bytes:
        """Derive the joiner's key (admitted by the gate) off the event loop; tell the gate
        whether the password was wrong for the room as it is now."""
        assert join.password is not None
        wrong = False
        try:
            async with self._kdf_slots:
                key = await asyncio.to_thread(self.registry.password_key, join.room, join.password)
            room = self.registry.get(join.room)
            wrong = (room is not None and room.password_key is not None
                     and not hmac.compare_digest(room.password_key, key))
        finally:
            self.passwords.done(ip, join.room, wrong, time.monotonic())
        return key
