"""The inter-node envelope codec: every kind round-trips, junk raises EnvelopeError only."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.cluster import envelope as env
from signaling.messages import FloorRelease, FloorRequest, Join, Offer, Ping, Replay, ReplayStop

A, B = "node-a", "node-b"
CONN = env.conn_id(A, 7)

GOOD = [
    env.Open(A, CONN, "203.0.113.9", Join("ops-1", "Ann", "secret")),
    env.Open(A, CONN, "2001:db8::1", Join("ops-1", "Zoë")),
    env.Msg(A, CONN, Offer("v=0\r\n")),
    env.Msg(A, CONN, FloorRequest()),
    env.Msg(A, CONN, FloorRelease()),
    env.Msg(A, CONN, Ping()),
    env.Msg(A, CONN, Join("x", "Bob")),
    env.Gone(A, CONN),
    env.Resume(A, CONN, "127.0.0.1", "Ab_9-xYz", "Ann (2)", "ops-1"),
    env.Accepted(B, CONN, "Ab_9-xYz", "ops-1"),
    env.Refused(B, CONN),
    env.Send(B, CONN, '{"type":"pong"}'),
    env.Close(B, CONN, 1008, "bad_password"),
    env.Moved(B, CONN, "ops-1", "node-c", 3),
    # a member's name and token permissions, which a resume after a move must keep
    env.Resume(A, CONN, "::1", "Ab_9-xYz", "Ann", "ops-1", "node_failed", True, 200),
    env.Accepted(B, CONN, "Ab_9-xYz", "ops-1", "Ann (2)", True, 7),
    env.Msg(A, CONN, Replay("5f0c9a3e21b7")),  # say-again, served by the room's node
    env.Msg(A, CONN, ReplayStop()),
]


@pytest.mark.parametrize("envelope", GOOD, ids=lambda e: type(e).__name__)
def test_every_kind_round_trips(envelope: env.Envelope) -> None:
    raw = env.encode(envelope, 41)
    recipient = B if envelope.sender == A else A
    assert env.decode(raw, recipient) == (41, envelope)
    assert env.decode(raw.decode()) == (41, envelope)  # text from a decode_responses client too
    data = json.loads(raw)
    assert data["v"] == 1 and data["from"] == envelope.sender and data["conn"] == CONN


def test_unknown_fields_are_ignored() -> None:
    data = json.loads(env.encode(env.Gone(A, CONN), 1))
    data["later"] = {"x": [1, 2]}
    assert env.decode(json.dumps(data).encode()) == (1, env.Gone(A, CONN))


def reason(raw: object, recipient: str | None = None) -> str:
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(raw, recipient)
    return str(info.value)


def mutate(envelope: env.Envelope, **changes: object) -> bytes:
    data = json.loads(env.encode(envelope, 1))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(("changes", "why"), [
    ({"v": 2}, "version"), ({"v": True}, "version"), ({"v": ...}, "version"),
    ({"k": "teleport"}, "kind"), ({"k": 1}, "kind"),
    ({"from": "Node A"}, "node id"), ({"from": ...}, "node id"), ({"from": "x" * 65}, "node id"),
    ({"conn": "node-a/0"}, "conn"), ({"conn": "node-a"}, "conn"), ({"conn": 7}, "conn"),
    ({"conn": "node-a/1/2"}, "conn"),
    ({"seq": 0}, "seq"), ({"seq": 1.5}, "seq"), ({"seq": ...}, "seq"), ({"seq": 2**53 + 1}, "seq"),
    ({"conn": "node-c/7"}, "sent by"),  # an ingress speaks only about its own sockets
])
def test_envelope_fields_are_checked(changes: dict[str, object], why: str) -> None:
    assert why in reason(mutate(env.Gone(A, CONN), **changes))


@pytest.mark.parametrize(("envelope", "changes"), [
    (GOOD[0], {"join": {"type": "offer", "sdp": "v=0"}}),  # open carries a join
    (GOOD[0], {"join": {"type": "join", "room": "Bad Room", "name": "Ann"}}),
    (GOOD[0], {"join": {"type": "join", "room": "r", "name": "\u202eevil"}}),
    (GOOD[0], {"join": "join"}),
    (GOOD[0], {"ip": "1.2.3.4 5"}), (GOOD[0], {"ip": ""}), (GOOD[0], {"ip": 1}),
    (GOOD[2], {"message": {"type": "offer", "sdp": " "}}),
    (GOOD[2], {"message": {"type": "shout"}}),
    (GOOD[2], {"message": {"type": "offer", "sdp": "x" * 70_000}}),
    (GOOD[8], {"member_id": "a b"}), (GOOD[8], {"name": ""}), (GOOD[8], {"room": "A"}),
    (GOOD[9], {"member_id": ...}),
    (GOOD[11], {"text": ""}), (GOOD[11], {"text": 5}),
    (GOOD[12], {"code": 999}), (GOOD[12], {"code": 1008.0}), (GOOD[12], {"code": True}),
    (GOOD[12], {"reason": "x" * 124}),
    (GOOD[13], {"epoch": 0}), (GOOD[13], {"epoch": "3"}), (GOOD[13], {"owner": "?"}),
    (GOOD[14], {"reason": "bored"}), (GOOD[14], {"reason": None}),
    (GOOD[14], {"listen_only": 1}), (GOOD[14], {"priority": 256}),
    (GOOD[14], {"priority": True}), (GOOD[15], {"name": ""}), (GOOD[15], {"priority": -1}),
    (GOOD[15], {"listen_only": "yes"}),
])
def test_each_kinds_fields_are_checked(envelope: env.Envelope, changes: dict[str, object]) -> None:
    reason(mutate(envelope, **changes))


def test_direction_is_checked_against_the_recipient() -> None:
    # an owner's envelope must be about one of the recipient's sockets
    assert "another node" in reason(env.encode(env.Send(B, env.conn_id("node-c", 1), "x"), 1), A)
    # nobody may speak as the recipient itself
    assert "this node" in reason(env.encode(env.Gone(A, CONN), 1), A)


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(env.EnvelopeError):
        env.encode(env.Send(B, CONN, "x" * env.MAX_ENVELOPE_BYTES), 1)
    with pytest.raises(env.EnvelopeError):
        env.encode(env.Send(B, CONN, "\ud800"), 1)


def test_a_largest_client_frame_fits_in_an_envelope() -> None:
    # the largest offer a browser may send (one 64 KiB frame) is relayed whole
    sdp = "é" * ((env.MAX_MESSAGE_BYTES - 40) // 2)
    frame = json.dumps({"type": "offer", "sdp": sdp}, ensure_ascii=False)
    assert len(frame.encode()) <= env.MAX_MESSAGE_BYTES
    raw = env.encode(env.Msg(A, CONN, Offer(sdp)), 2**53)
    assert env.decode(raw, B) == (2**53, env.Msg(A, CONN, Offer(sdp)))


def test_size_cap() -> None:
    assert "over" in reason(b" " * (env.MAX_ENVELOPE_BYTES + 1))
    assert "over" in reason(" " * (env.MAX_ENVELOPE_BYTES + 1))


@pytest.mark.parametrize("raw", [
    b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"v":NaN}', b"[" * 100_000, "\ud800", 5, None,
    b'{"v":1,"k":"gone","from":"node-a","seq":1,"conn":"node-a/1","x":' + b"[" * 60_000 + b"]" * 60_000
    + b"}",
])
def test_junk(raw: object) -> None:
    reason(raw)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(["v", "k", "from", "conn", "ip", "join", "message", "member_id",
                          "name", "room", "text", "code", "reason", "owner", "epoch"])


def decode_or_error(raw: object, recipient: str | None = None) -> None:
    try:
        env.decode(raw, recipient)
    except env.EnvelopeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_raise_only_envelope_error(raw: bytes | str) -> None:
    decode_or_error(raw)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(GOOD), st.dictionaries(FIELDS, JSONISH, max_size=4),
       st.sampled_from([None, A, B]))
def test_mutated_envelopes_raise_only_envelope_error(
        envelope: env.Envelope, changes: dict[str, object], recipient: str | None) -> None:
    data = json.loads(env.encode(envelope, 1))
    data.update(changes)
    decode_or_error(json.dumps(data).encode(), recipient)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=64))
def test_random_joins_raise_only_envelope_error(room: str, name: str, password: str) -> None:
    data = json.loads(env.encode(GOOD[0], 1))
    data["join"] = {"type": "join", "room": room, "name": name, "password": password}
    decode_or_error(json.dumps(data).encode(), B)
