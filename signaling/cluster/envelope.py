"""The messages nodes send each other over the bus: one JSON object per Redis message.

Pure: :func:`encode` turns an envelope into bytes, :func:`decode` turns bytes from Redis back
into one, checking everything the way ``signaling/messages.py`` checks a browser's frame.
Whatever the bytes, :func:`decode` returns an envelope or raises :class:`EnvelopeError`,
never anything else (``tests/cluster/test_envelope.py`` feeds it junk): every node of a
cluster can publish on every other node's channel, and so can anyone who reaches Redis, so a
node treats the bus as untrusted input.

Layout: ``{"v": 1, "k": kind, "from": node_id, "seq": n, "conn": "<ingress node>/<serial>",
...}``, at most :data:`MAX_ENVELOPE_BYTES`. ``conn`` names one WebSocket by the node it is
open on (the *ingress*) and that node's serial for it. ``seq`` numbers what one node sends
to another, 1, 2, 3 ...: the receiver sees a lost envelope as a gap (bus.py). Kinds, by direction (docs/CLUSTER.md has the
sequence of a join):

ingress -> owner (the room's node), ``conn`` is the sender's own:

* ``open`` {ip, join}: a socket joins a room the receiver owns. ``join`` is the client's
  ``join`` message (password included: the owner checks it); ``ip`` the client's address
  for the owner's per-address budgets and password backoff.
* ``msg`` {message}: a later client message (``offer``, ``floor_request``, ...).
* ``gone`` {}: the socket closed.
* ``resume`` {ip, member_id, name, room, reason}: re-join after the room moved (a drain's ``moved``,
  or its node failed; no password check: the member passed it before).

owner -> ingress, ``conn`` is the receiver's:

* ``accepted`` {member_id, room, name}: the join (or resume) went through; the socket is a
  member now, called ``name`` (optional: what a later ``resume`` asks for).
* ``refused`` {}: the join did not go through (the error came as a ``send`` before it); the
  owner forgot ``conn``, the socket stays open and may join again.
* ``send`` {text}: write this text frame to the socket.
* ``close`` {code, reason}: close the socket (after the ``send``s before it); the owner
  forgot ``conn``.
* ``moved`` {room, owner, epoch}: the room now lives on ``owner`` (a drain moved it): the
  ingress resumes the socket there.

Client messages inside ``open`` and ``msg`` go through the same validation as a browser's
frame (``parse_client_message``), so an owner never sees a message its own sockets could not
have sent. Unknown fields are ignored (a newer node may add some); an unknown ``v`` or kind
is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..messages import (MAX_MESSAGE_BYTES, ClientMessage, FloorRelease, FloorRequest, Join,
                        Offer, Ping, ProtocolError, Replay, ReplayStop, Resume,
                        parse_client_message, validate_name, validate_room)
from ..tokens import MAX_PRIORITY
from .model import NODE_ID_RE

__all__ = ["Accepted", "Close", "ENVELOPE_VERSION", "Envelope", "EnvelopeError", "Gone",
           "MAX_ENVELOPE_BYTES", "MAX_SEQ", "Moved", "Msg", "Open", "RESUME_REASONS", "Refused",
           "Resume", "Send",
           "conn_id", "conn_node", "decode", "encode", "message_dict"]

ENVELOPE_VERSION = 1
#: A client frame may be 64 KiB (messages.MAX_MESSAGE_BYTES); re-encoded it never grows
#: (only validated fields are kept, compactly), so 4 KiB more covers the envelope's own.
MAX_ENVELOPE_BYTES = MAX_MESSAGE_BYTES + 4096
#: Envelopes one node may send another (2^53: exact in every JSON reader).
MAX_SEQ = 2**53
#: An address as the WebSocket layer reports it (IPv6 with a zone id: ~50 characters).
MAX_IP_CHARS = 64
#: Why a member resumes on another node: a drain moved its room, or the room's node died.
RESUME_REASONS = ("room_moved", "node_failed")
#: RFC 6455: a close reason is at most 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES = 123
_CONN_RE = re.compile(r"([a-z0-9][a-z0-9_-]{0,63})/([1-9][0-9]{0,17})")
_MEMBER_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_IP_RE = re.compile(r"[0-9A-Za-z.:%_-]{1," + str(MAX_IP_CHARS) + "}")


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this node can act on."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """Fields every envelope has: the sending node and the WebSocket it is about."""

    sender: str
    conn: str


@dataclass(frozen=True, slots=True)
class Open(Envelope):
    ip: str
    join: Join


@dataclass(frozen=True, slots=True)
class Msg(Envelope):
    message: ClientMessage


@dataclass(frozen=True, slots=True)
class Gone(Envelope):
    pass


@dataclass(frozen=True, slots=True)
class Resume(Envelope):
    ip: str
    member_id: str
    name: str
    room: str
    reason: str = "room_moved"  # why: RESUME_REASONS (the member's ``media`` ``reset`` says it)
    listen_only: bool = False   # the member's permissions from its join token (tokens.py)
    priority: int = 0
    protected: bool = False     # the room has a password: never re-created without its key


@dataclass(frozen=True, slots=True)
class Accepted(Envelope):
    member_id: str
    room: str
    name: str | None = None  # the member's name in the room (absent from older nodes)
    listen_only: bool = False  # its permissions, which a later ``resume`` must keep
    priority: int = 0
    protected: bool = False  # the room has a password (a later ``resume`` says so)


@dataclass(frozen=True, slots=True)
class Refused(Envelope):
    pass


@dataclass(frozen=True, slots=True)
class Send(Envelope):
    text: str


@dataclass(frozen=True, slots=True)
class Close(Envelope):
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Moved(Envelope):
    room: str
    owner: str
    epoch: int


_KIND = {Open: "open", Msg: "msg", Gone: "gone", Resume: "resume", Accepted: "accepted",
         Refused: "refused", Send: "send", Close: "close", Moved: "moved"}
#: Kinds an ingress node sends about its own socket (``conn`` names the sender).
_FROM_INGRESS = frozenset({Open, Msg, Gone, Resume})


def conn_id(node_id: str, serial: int) -> str:
    """The bus name of socket ``serial`` on ``node_id``."""
    return f"{node_id}/{serial}"


def conn_node(conn: str) -> str:
    """The node a (valid) connection id's socket is open on."""
    return conn.partition("/")[0]


# -- encoding -------------------------------------------------------------------------------------

def message_dict(message: ClientMessage) -> dict[str, Any]:
    """A validated client message as the JSON object a browser sends for it."""
    if isinstance(message, Join):
        data: dict[str, Any] = {"type": "join", "room": message.room, "name": message.name}
        if message.password is not None:
            data["password"] = message.password
        if message.token is not None:  # a signed join link (issue 11): the owner checks it
            data["token"] = message.token
        return data
    if isinstance(message, Offer):
        return {"type": "offer", "sdp": message.sdp}
    if isinstance(message, FloorRequest):
        return {"type": "floor_request"}
    if isinstance(message, FloorRelease):
        return {"type": "floor_release"}
    if isinstance(message, Ping):
        return {"type": "ping"}
    if isinstance(message, Replay):  # say-again: the room's node keeps its audio
        return {"type": "replay", "id": message.id}
    if isinstance(message, ReplayStop):
        return {"type": "replay_stop"}
    if isinstance(message, Resume):  # on a socket already bridged: the owner refuses it
        return {"type": "resume", "room": message.room, "id": message.member_id,
                "secret": message.secret}
    raise TypeError(f"not a client message: {message!r:.80}")


def encode(envelope: Envelope, seq: int) -> bytes:
    """The envelope, numbered ``seq``, as it goes on the bus; EnvelopeError if it would be
    over the size cap."""
    if not 0 < seq <= MAX_SEQ:
        raise ValueError(f"seq must be 1..{MAX_SEQ}")
    data: dict[str, Any] = {"v": ENVELOPE_VERSION, "k": _KIND[type(envelope)],
                            "from": envelope.sender, "seq": seq, "conn": envelope.conn}
    if isinstance(envelope, Open):
        data.update(ip=envelope.ip, join=message_dict(envelope.join))
    elif isinstance(envelope, Msg):
        data["message"] = message_dict(envelope.message)
    elif isinstance(envelope, Resume):
        data.update(ip=envelope.ip, member_id=envelope.member_id, name=envelope.name,
                    room=envelope.room, reason=envelope.reason,
                    listen_only=envelope.listen_only, priority=envelope.priority,
                    protected=envelope.protected)
    elif isinstance(envelope, Accepted):
        data.update(member_id=envelope.member_id, room=envelope.room)
        if envelope.name is not None:
            data["name"] = envelope.name
        data.update(listen_only=envelope.listen_only, priority=envelope.priority,
                    protected=envelope.protected)
    elif isinstance(envelope, Send):
        data["text"] = envelope.text
    elif isinstance(envelope, Close):
        data.update(code=envelope.code, reason=envelope.reason)
    elif isinstance(envelope, Moved):
        data.update(room=envelope.room, owner=envelope.owner, epoch=envelope.epoch)
    try:
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise EnvelopeError("a lone surrogate in an envelope") from None
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope of {len(raw)} bytes, over {MAX_ENVELOPE_BYTES}")
    return raw


# -- decoding -------------------------------------------------------------------------------------

def decode(raw: object, recipient: str | None = None) -> tuple[int, Envelope]:
    """(seq, the envelope) in ``raw`` (bytes or text from Redis), checked; else EnvelopeError.

    ``recipient``: the node reading it. An envelope from an owner must then be about one of
    the recipient's own sockets, and none may claim to come from the recipient itself.
    """
    if isinstance(raw, str):
        if len(raw) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope over {MAX_ENVELOPE_BYTES} bytes")
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise EnvelopeError("a lone surrogate in an envelope") from None
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"an envelope is bytes, not {type(raw).__name__}")
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope over {MAX_ENVELOPE_BYTES} bytes")
    try:
        data = json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise EnvelopeError(f"not JSON: {_short(exc)}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("an envelope is a JSON object")
    if _exact(data.get("v"), int) != ENVELOPE_VERSION:
        raise EnvelopeError(f"unknown envelope version {_short(data.get('v'))}")
    kind = _exact(data.get("k"), str)
    cls = next((c for c, name in _KIND.items() if name == kind), None)
    if cls is None:
        raise EnvelopeError(f"unknown envelope kind {_short(kind)}")
    sender = _node(data.get("from"), "from")
    seq = _exact(data.get("seq"), int)
    if not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
        raise EnvelopeError(f"bad seq {_short(seq)}")
    conn = _exact(data.get("conn"), str)
    if not isinstance(conn, str) or not _CONN_RE.fullmatch(conn):
        raise EnvelopeError(f"bad conn {_short(conn)}")
    ingress = conn_node(conn)
    if cls in _FROM_INGRESS and ingress != sender:
        raise EnvelopeError(f"{kind} about a socket of {ingress} sent by {sender}")
    if recipient is not None:
        if sender == recipient:
            raise EnvelopeError(f"{kind} claims to come from this node")
        if cls not in _FROM_INGRESS and ingress != recipient:
            raise EnvelopeError(f"{kind} about a socket of another node ({ingress})")
    return seq, _body(cls, data, sender, conn)


def _body(cls: type[Envelope], data: dict[str, Any], sender: str, conn: str) -> Envelope:
    """The kind's own fields, each checked."""
    if cls is Open:
        join = _client_message(data.get("join"))
        if not isinstance(join, Join):
            raise EnvelopeError("open carries a join message")
        return Open(sender, conn, _ip(data.get("ip")), join)
    if cls is Msg:
        return Msg(sender, conn, _client_message(data.get("message")))
    if cls is Resume:
        reason = data.get("reason", "room_moved")
        if reason not in RESUME_REASONS:
            raise EnvelopeError(f"bad resume reason {_short(reason)}")
        return Resume(sender, conn, _ip(data.get("ip")), _member(data.get("member_id")),
                      _checked(validate_name, data.get("name"), "name"),
                      _checked(validate_room, data.get("room"), "room"), str(reason),
                      *_permissions(data), _flag(data, "protected"))
    if cls is Accepted:
        name = data.get("name")
        return Accepted(sender, conn, _member(data.get("member_id")),
                        _checked(validate_room, data.get("room"), "room"),
                        None if name is None else _checked(validate_name, name, "name"),
                        *_permissions(data), _flag(data, "protected"))
    if cls is Send:
        text = data.get("text")
        if not isinstance(text, str) or not text:
            raise EnvelopeError("send carries a non-empty text")
        return Send(sender, conn, text)
    if cls is Close:
        code = _exact(data.get("code"), int)
        reason = _exact(data.get("reason"), str)
        if not isinstance(code, int) or not (1000 <= code <= 4999):
            raise EnvelopeError(f"bad close code {_short(code)}")
        if not isinstance(reason, str) or len(reason.encode("utf-8", "replace")) > (
                MAX_CLOSE_REASON_BYTES):
            raise EnvelopeError("a close reason is text of at most 123 bytes")
        return Close(sender, conn, code, reason)
    if cls is Moved:
        epoch = _exact(data.get("epoch"), int)
        if not isinstance(epoch, int) or not (0 < epoch < 2**53):
            raise EnvelopeError(f"bad epoch {_short(epoch)}")
        return Moved(sender, conn, _checked(validate_room, data.get("room"), "room"),
                     _node(data.get("owner"), "owner"), epoch)
    return cls(sender, conn)  # Gone, Refused: nothing more


def _permissions(data: dict[str, Any]) -> tuple[bool, int]:
    """A member's ``listen_only`` and ``priority`` (signaling/tokens.py); absent: none."""
    priority = data.get("priority", 0)
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        raise EnvelopeError(f"bad priority {_short(priority)}")
    return _flag(data, "listen_only"), priority


def _flag(data: dict[str, Any], key: str) -> bool:
    """An optional boolean field (absent: false)."""
    value = data.get(key, False)
    if type(value) is not bool:
        raise EnvelopeError(f"{key} must be true or false")
    return value


def _client_message(value: object) -> ClientMessage:
    """A client message inside an envelope, validated as if a browser had sent it."""
    if not isinstance(value, dict):
        raise EnvelopeError("a client message is a JSON object")
    try:
        return parse_client_message(json.dumps(value, ensure_ascii=False))
    except (ProtocolError, ValueError, TypeError, RecursionError) as exc:
        raise EnvelopeError(f"bad client message: {_short(exc)}") from None


def _checked(validate: Any, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} must be a string")
    try:
        return str(validate(value))
    except ProtocolError as exc:
        raise EnvelopeError(f"bad {what}: {exc.message}") from None


def _node(value: object, what: str) -> str:
    if not isinstance(value, str) or not NODE_ID_RE.fullmatch(value):
        raise EnvelopeError(f"bad node id in {what}: {_short(value)}")
    return value


def _ip(value: object) -> str:
    if not isinstance(value, str) or not _IP_RE.fullmatch(value):
        raise EnvelopeError(f"bad client address {_short(value)}")
    return value


def _member(value: object) -> str:
    if not isinstance(value, str) or not _MEMBER_RE.fullmatch(value):
        raise EnvelopeError(f"bad member id {_short(value)}")
    return value


def _exact(value: object, kind: type) -> object:
    """``value`` if it is exactly of ``kind`` (True is not the integer 1 here), else None."""
    return value if type(value) is kind else None


def _no_constant(name: str) -> None:
    raise ValueError(f"invalid JSON constant {name}")


def _short(value: object, limit: int = 60) -> str:
    """A bounded, ASCII-only rendering of untrusted input for error messages and logs
    (a container is named by its type: rendering a deeply nested one could recurse)."""
    if value is not None and not isinstance(value, (str, int, float, Exception)):
        return type(value).__name__
    text = str(value)
    shown = ascii(text[:limit])[1:-1]
    return shown if len(text) <= limit else shown + "..."
