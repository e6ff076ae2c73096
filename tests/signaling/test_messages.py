"""Validation of client messages: every bad input gets its own error code, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.messages import (
    MAX_MESSAGE_BYTES,
    FloorRelease,
    FloorRequest,
    Join,
    Offer,
    Ping,
    ProtocolError,
    encode,
    parse_client_message,
)
from tests.name_cases import REFUSED


def code_of(frame: str | bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(frame)
    assert info.value.message  # always a human-readable reason
    return info.value.code


def j(**fields: object) -> str:
    return json.dumps(fields)


def test_valid_messages() -> None:
    assert parse_client_message(j(type="join", room="ops-1", name="Ann")) == Join("ops-1", "Ann")
    assert parse_client_message(j(type="join", room="a", name="B", password="pw")) == Join(
        "a", "B", "pw"
    )
    assert parse_client_message(j(type="offer", sdp="v=0\r\n")) == Offer("v=0\r\n")
    assert parse_client_message(j(type="floor_request")) == FloorRequest()
    assert parse_client_message(j(type="floor_release")) == FloorRelease()
    assert parse_client_message(j(type="ping")) == Ping()


def test_unknown_fields_are_ignored() -> None:
    assert parse_client_message(j(type="ping", extra=[1, 2])) == Ping()


def test_name_is_trimmed_and_normalised_and_any_script_is_fine() -> None:
    assert parse_client_message(j(type="join", room="r", name="  Zoë  ")).name == "Zoë"
    # NFD input (e + combining diaeresis) becomes NFC.
    assert parse_client_message(j(type="join", room="r", name="Zoe\u0308")).name == "Zoë"
    assert parse_client_message(j(type="join", room="r", name="無線 📻")).name == "無線 📻"
    assert parse_client_message(j(type="join", room="r", name="x" * 32)).name == "x" * 32


def test_empty_password_means_none() -> None:
    assert parse_client_message(j(type="join", room="r", name="n", password="")).password is None
    assert parse_client_message(j(type="join", room="r", name="n", password=None)).password is None


@pytest.mark.parametrize(
    "frame",
    ["", "{", "nope", '{"type":"ping"', "[" * 60_000, '{"type":"ping","x":NaN}',
     '{"type":"ping","x":Infinity}', '{"type":"ping"}}'],
    ids=["empty", "open", "word", "unclosed", "deep", "nan", "infinity", "trailing"],
)
def test_bad_json(frame: str) -> None:
    assert code_of(frame) == "bad_json"


@pytest.mark.parametrize("frame", ["[]", "1", '"join"', "null", "true"])
def test_not_an_object(frame: str) -> None:
    assert code_of(frame) == "bad_message"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"type": 1},
        {"type": None},
        {"type": ["join"]},
        {"type": "hello"},
        {"type": "JOIN", "room": "r", "name": "n"},
        {"type": "join", "name": "n"},
        {"type": "join", "room": "r"},
        {"type": "join", "room": 5, "name": "n"},
        {"type": "join", "room": "r", "name": ["n"]},
        {"type": "join", "room": "r", "name": "n", "password": 1234},
        {"type": "join", "room": "r", "name": "n", "password": "p" * 129},
        {"type": "join", "room": "r", "name": "n", "password": "\ud800"},
        {"type": "offer"},
        {"type": "offer", "sdp": {"v": 0}},
        {"type": "offer", "sdp": "  "},
        {"type": "offer", "sdp": "v=0\r\n\udc00"},
    ],
)
def test_bad_message(fields: dict[str, object]) -> None:
    assert code_of(json.dumps(fields)) == "bad_message"


def test_binary_frames_are_refused() -> None:
    assert code_of(b'{"type":"ping"}') == "bad_message"


@pytest.mark.parametrize(
    "room", ["", "UPPER", "has space", "under_score", "dot.", "ü", "a" * 65, "../etc", "r\n"]
)
def test_bad_room(room: str) -> None:
    assert code_of(j(type="join", room=room, name="n")) == "bad_room"


def test_room_limits() -> None:
    assert parse_client_message(j(type="join", room="a" * 64, name="n")).room == "a" * 64
    assert parse_client_message(j(type="join", room="0-9", name="n")).room == "0-9"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 33,
        "y" * 1000,
        "bell\x07",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "evil\u202eoverride",
        "line\u2028sep",
        "lone\ud800surrogate",
    ],
)
def test_bad_name(name: str) -> None:
    assert code_of(j(type="join", room="r", name=name)) == "bad_name"


@pytest.mark.parametrize("raw,message", REFUSED)
def test_bad_name_cases_shared_with_the_page(raw: str, message: str) -> None:
    # Issue 9, finding 9: U+200B, U+200E, U+2060 and 31 combining marks used to get through.
    with pytest.raises(ProtocolError) as info:
        parse_client_message(j(type="join", room="r", name=raw))
    assert (info.value.code, info.value.message) == ("bad_name", message)


def test_too_large() -> None:
    big = j(type="offer", sdp="a" * MAX_MESSAGE_BYTES)
    assert code_of(big) == "too_large"
    # The limit is on UTF-8 bytes, not characters.
    wide = json.dumps({"type": "offer", "sdp": "é" * (MAX_MESSAGE_BYTES // 2)}, ensure_ascii=False)
    assert len(wide) < MAX_MESSAGE_BYTES
    assert code_of(wide) == "too_large"


def test_error_messages_do_not_echo_raw_input() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(j(type="\u202e" + "x" * 500))
    assert info.value.message.isascii()
    assert len(info.value.message) < 120


def test_encode_is_compact_json() -> None:
    assert encode({"type": "pong"}) == '{"type":"pong"}'
    assert json.loads(encode({"name": "Zoë"})) == {"name": "Zoë"}


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_raises_only_protocol_error(frame: str | bytes) -> None:
    try:
        parse_client_message(frame)
    except ProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["join", "offer", "floor_request", "floor_release", "ping", "other"]),
    st.dictionaries(st.sampled_from(["room", "name", "password", "sdp", "x"]), json_values,
                    max_size=5),
)
def test_arbitrary_objects_raise_only_protocol_error(kind: str, fields: dict[str, object]) -> None:
    frame = json.dumps({"type": kind, **fields})
    try:
        message = parse_client_message(frame)
    except ProtocolError as exc:
        assert exc.code in {"bad_message", "bad_room", "bad_name", "bad_json"}
        return
    # Whatever passed is well-formed.
    if isinstance(message, Join):
        assert 1 <= len(message.name) <= 32 and message.name == message.name.strip()
        message.name.encode("utf-8")
