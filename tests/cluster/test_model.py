"""Node and room records: round trips, and junk read from Redis raising ClusterDataError only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.cluster.model import (MAX_NODE_RECORD_BYTES, PASSWORD_KEY_BYTES, ClusterDataError,
                                     NodeInfo, NodeLoad, RoomRecord, check_node_id,
                                     decode_node, decode_room, encode_node, new_node_id)
from signaling.rooms import RoomRegistry

INFO = NodeInfo("3f2a9c1b7d4e", "https://walkie.example.org:8443",
                (("203.0.113.7", 40000), ("2001:db8::1", 40001)), False, 1700000000.25)
LOAD = NodeLoad(rooms=3, members=40, cpu_percent=12.5, capacity_rooms=200)
ROOM = {b"owner": b"3f2a9c1b7d4e", b"epoch": b"3", b"created": b"1700000000.125"}


def good_node() -> dict[str, Any]:
    return json.loads(encode_node(INFO, LOAD))


def test_a_node_record_round_trips() -> None:
    assert decode_node(encode_node(INFO, LOAD)) == (INFO, LOAD)
    assert decode_node(encode_node(INFO, LOAD).encode(), INFO.id) == (INFO, LOAD)
    assert INFO.media_addresses() == ["203.0.113.7:40000", "[2001:db8::1]:40001"]


def test_a_room_record_decodes() -> None:
    assert decode_room("lobby", ROOM) == RoomRecord("lobby", "3f2a9c1b7d4e", 3, 1700000000.125)
    key = bytes(range(PASSWORD_KEY_BYTES))
    record = decode_room("lobby", {**ROOM, b"password_key": key.hex().encode()})
    assert record.password_key == key


def test_the_password_key_is_what_rooms_derive() -> None:
    assert len(RoomRegistry().password_key("lobby", "pw")) == PASSWORD_KEY_BYTES


def test_node_ids() -> None:
    assert check_node_id(new_node_id()) and len(new_node_id()) == 12
    for bad in ("", "A", "-a", "a:b", "a b", "a" * 65, 7):
        with pytest.raises(ValueError):
            check_node_id(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "why"), [
    ({"v": 2}, "version"),
    ({"v": True}, "a bool is no version"),
    ({"rooms": True}, "a bool is no count"),
    ({"rooms": -1}, "negative"),
    ({"rooms": 2**60}, "too many"),
    ({"members": 1.0}, "a float is no count"),
    ({"cpu_percent": "12"}, "text is no number"),
    ({"cpu_percent": 1e300}, "out of range"),
    ({"draining": 0}, "0 is no bool"),
    ({"id": "Node A"}, "bad id"),
    ({"signaling_url": "javascript:alert(1)"}, "not http(s)"),
    ({"signaling_url": "https://a.example/\x1b[2J"}, "control characters"),
    ({"media": [["localhost", 40000]]}, "not an IP"),
    ({"media": [["127.0.0.1", 0]]}, "port 0"),
    ({"media": [["127.0.0.1", 40000, 1]]}, "three items"),
    ({"media": {"127.0.0.1": 40000}}, "not a list"),
    ({"media": [["127.0.0.1", 1]] * 257}, "too many addresses"),
    ({"started_at": -1}, "negative time"),
    ({"extra": 1}, "unknown field"),
])
def test_junk_node_records_are_refused(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ClusterDataError):
        decode_node(json.dumps({**good_node(), **change}))


@pytest.mark.parametrize("raw", [
    b"", b"null", b"[]", b"{}", b"\xff", b'{"v": NaN}', b"1" * 10, None, 7,
    b" " * (MAX_NODE_RECORD_BYTES + 1), b"[" * 100_000,
    encode_node(INFO, LOAD).replace('"v":1', '"v":1,"v":1'),  # a field twice
])
def test_malformed_node_records_are_refused(raw: Any) -> None:
    with pytest.raises(ClusterDataError):
        decode_node(raw)


def test_a_record_under_another_nodes_key_is_refused() -> None:
    with pytest.raises(ClusterDataError, match="under the key of"):
        decode_node(encode_node(INFO, LOAD), "other-node")
    missing = good_node()
    del missing["capacity_rooms"]
    with pytest.raises(ClusterDataError):
        decode_node(json.dumps(missing))


@pytest.mark.parametrize("change", [
    {b"owner": b"Node A"}, {b"owner": b"\xff"}, {b"epoch": b"0"}, {b"epoch": b"-1"},
    {b"epoch": b"1.5"}, {b"epoch": b"01"}, {b"epoch": b"1" * 17}, {b"created": b"nan"},
    {b"created": b"-1"}, {b"password_key": b"ab"}, {b"password_key": b"AB" * 32},
    {b"extra": b"1"}, {"owner": "3f2a9c1b7d4e"},
])
def test_junk_room_records_are_refused(change: dict[Any, Any]) -> None:
    with pytest.raises(ClusterDataError):
        decode_room("lobby", {**ROOM, **change})


def test_a_room_record_missing_a_field_is_refused() -> None:
    for field in ROOM:
        with pytest.raises(ClusterDataError):
            decode_room("lobby", {k: v for k, v in ROOM.items() if k != field})
    with pytest.raises(ClusterDataError):
        decode_room("lobby", [b"owner", b"x"])


# -- property tests: whatever the bytes, ClusterDataError or a valid record -------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_as_a_node_record(raw: bytes | str) -> None:
    try:
        info, load = decode_node(raw)
    except ClusterDataError:
        return
    assert isinstance(info, NodeInfo) and isinstance(load, NodeLoad)


@settings(max_examples=300)
@given(st.sampled_from(sorted(good_node())), JSON)
def test_any_value_in_any_node_field(field: str, value: Any) -> None:
    try:
        text = json.dumps({**good_node(), field: value})
    except ValueError:
        return
    try:
        info, load = decode_node(text)
    except ClusterDataError:
        return
    assert decode_node(encode_node(info, load)) == (info, load)  # what passes is coherent


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from([b"owner", b"epoch", b"created", b"password_key",
                                        b"x"]) | st.binary(max_size=8),
                       st.binary(max_size=70), max_size=6))
def test_any_hash_as_a_room_record(fields: dict[bytes, bytes]) -> None:
    try:
        record = decode_room("lobby", {**ROOM, **fields})
    except ClusterDataError:
        return
    assert record.epoch >= 1 and check_node_id(record.owner)
