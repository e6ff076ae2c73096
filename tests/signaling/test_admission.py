"""The join admission in front of the hub (signaling/admission.py), on a real registry."""

from __future__ import annotations

import pytest

from signaling.admission import JoinAdmission
from signaling.budgets import AddressBudgets, BudgetSettings
from signaling.messages import Join
from signaling.rooms import JoinError, RoomRegistry


def admission() -> tuple[JoinAdmission, RoomRegistry]:
    registry = RoomRegistry()
    return JoinAdmission(registry, AddressBudgets(BudgetSettings(), 64)), registry


async def test_a_password_for_an_open_room_is_refused_without_deriving_a_key() -> None:
    gate, registry = admission()
    registry.join("open", "Ann")

    def no_scrypt(room: str, password: str) -> bytes:
        raise AssertionError("no key derivation for a room that has no password")

    registry.password_key = no_scrypt  # type: ignore[method-assign]
    refusal, key = await gate.admit("192.0.2.1", Join(room="open", name="Ben", password="x"), 0.0)
    assert refusal is None and key is not None
    with pytest.raises(JoinError) as refused:
        registry.join("open", "Ben", key)
    assert refused.value.code == "room_not_protected"
    assert gate.passwords.admit("192.0.2.1", "open", 0.0) is None  # no check left running


async def test_a_password_for_a_protected_room_is_checked() -> None:
    gate, registry = admission()
    registry.join("locked", "Ann", registry.password_key("locked", "right"))
    refusal, key = await gate.admit("192.0.2.1", Join(room="locked", name="Ben", password="wrong"), 0.0)
    assert refusal is None
    with pytest.raises(JoinError) as refused:
        registry.join("locked", "Ben", key)
    assert refused.value.code == "bad_password"
