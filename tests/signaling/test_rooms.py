"""Rooms: creation by the first joiner, capacity, passwords, removal when empty."""

from __future__ import annotations

import pytest

from signaling.floor import FloorSettings
from signaling.rooms import JoinError, RoomRegistry


def join_error(registry: RoomRegistry, room: str, key: bytes | None = None) -> str:
    with pytest.raises(JoinError) as info:
        registry.join(room, "x", key)
    assert info.value.message
    return info.value.code


def test_first_joiner_creates_the_room_and_members_keep_join_order() -> None:
    reg = RoomRegistry()
    a = reg.join("r", "Ann")
    b = reg.join("r", "Bob")
    room = reg.get("r")
    assert room is not None
    assert list(room.members) == [a.id, b.id]
    assert [m.name for m in room.members.values()] == ["Ann", "Bob"]
    assert reg.member(a.id) is a
    assert len(reg) == 1 and reg.member_count == 2
    assert a.public() == {"id": a.id, "name": "Ann"}


def test_member_ids_are_unique_and_short() -> None:
    reg = RoomRegistry(max_users=500)
    ids = {reg.join("r", "n").id for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 8 for i in ids)


def test_room_full_leaves_the_others_unaffected() -> None:
    reg = RoomRegistry(max_users=3)
    members = [reg.join("r", f"m{i}") for i in range(3)]
    assert join_error(reg, "r") == "room_full"
    room = reg.get("r")
    assert room is not None and list(room.members) == [m.id for m in members]
    # Another room is not affected by this one being full.
    reg.join("other", "z")
    # A place frees up when someone leaves.
    reg.leave(members[0].id)
    reg.join("r", "late")


def test_server_room_limit() -> None:
    reg = RoomRegistry(max_rooms=2)
    reg.join("a", "n")
    reg.join("b", "n")
    assert join_error(reg, "c") == "room_full"
    reg.join("a", "n2")  # existing rooms still take members


def test_password_is_set_by_the_first_joiner() -> None:
    reg = RoomRegistry()
    key = reg.password_key("secret-room", "hunter2")
    reg.join("secret-room", "owner", key)
    room = reg.get("secret-room")
    assert room is not None and room.password_protected
    # Same password: in. Wrong or missing password: bad_password.
    reg.join("secret-room", "friend", reg.password_key("secret-room", "hunter2"))
    assert join_error(reg, "secret-room", reg.password_key("secret-room", "hunter3")) == "bad_password"
    assert join_error(reg, "secret-room", None) == "bad_password"
    assert len(room.members) == 2


def test_password_is_never_stored_in_clear_and_is_salted_per_room_and_server() -> None:
    reg = RoomRegistry()
    key = reg.password_key("r1", "pw")
    assert b"pw" not in key and len(key) == 32
    assert reg.password_key("r1", "pw") == key           # deterministic: no race on join
    assert reg.password_key("r2", "pw") != key           # salted per room
    assert RoomRegistry().password_key("r1", "pw") != key  # and per server instance
    reg.join("r1", "n", key)
    room = reg.get("r1")
    assert room is not None and "pw" not in repr(room)


def test_a_password_given_to_an_open_room_is_refused() -> None:
    # Squatting: someone created the room first, without a password. A joiner who brings a
    # password expects privacy and must learn that there is none (issue 9, finding 3).
    reg = RoomRegistry()
    reg.join("open", "a")
    assert join_error(reg, "open", reg.password_key("open", "whatever")) == "room_not_protected"
    room = reg.get("open")
    assert room is not None and not room.password_protected and len(room.members) == 1
    reg.join("open", "b")  # without a password: in, knowingly


def test_same_names_in_a_room_get_numbers() -> None:
    reg = RoomRegistry()
    ann = reg.join("r", "Ann")
    second = reg.join("r", "ann")
    third = reg.join("r", "ANN")
    elsewhere = reg.join("other", "Ann")
    assert (ann.name, second.name, third.name, elsewhere.name) == ("Ann", "ann (2)", "ANN (3)", "Ann")
    reg.leave(second.id)
    assert reg.join("r", "Ann").name == "Ann (2)"


def test_empty_room_is_removed_and_its_password_forgotten() -> None:
    reg = RoomRegistry()
    a = reg.join("r", "a", reg.password_key("r", "one"))
    b = reg.join("r", "b", reg.password_key("r", "one"))
    assert reg.leave(a.id) is reg.get("r")
    room = reg.leave(b.id)
    assert room is not None and room.id == "r"
    assert reg.get("r") is None and len(reg) == 0 and reg.member_count == 0
    # A new first joiner sets a new password.
    reg.join("r", "c", reg.password_key("r", "two"))
    assert join_error(reg, "r", reg.password_key("r", "one")) == "bad_password"


def test_leave_unknown_member_is_harmless() -> None:
    reg = RoomRegistry()
    assert reg.leave("nobody") is None


def test_rooms_get_the_configured_floor_settings() -> None:
    reg = RoomRegistry(floor_settings=FloorSettings(max_talk_time=5, queue=False))
    reg.join("r", "n")
    room = reg.get("r")
    assert room is not None
    assert room.floor.settings == FloorSettings(max_talk_time=5, queue=False)


def test_invalid_capacity() -> None:
    with pytest.raises(ValueError):
        RoomRegistry(max_users=0)
