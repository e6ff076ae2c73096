"""Validation of client -> server signaling messages (see docs/PROTOCOL.md).

A frame from the browser is untrusted text. :func:`parse_client_message` turns it into one
small typed object or raises :class:`ProtocolError` carrying the error ``code`` the server
sends back; it never raises anything else, whatever the input (a hypothesis test feeds it
arbitrary text and bytes). Checking everything here keeps the rest of the server free of
"is this field really a string?" code.

Unknown extra fields are ignored so that newer clients can talk to older servers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .names import MAX_NAME_CHARS, NameRefused, check_name

__all__ = [
    "ClientMessage",
    "FloorRelease",
    "FloorRequest",
    "Join",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME_CHARS",
    "MAX_PASSWORD_CHARS",
    "MAX_TOKEN_CHARS",
    "Offer",
    "Ping",
    "ProtocolError",
    "Replay",
    "ReplayStop",
    "Resume",
    "encode",
    "parse_client_message",
    "validate_name",
    "validate_room",
]

MAX_MESSAGE_BYTES = 65536
MAX_PASSWORD_CHARS = 128
#: Longest join token (signaling/tokens.py): ~250 characters are enough for ours.
MAX_TOKEN_CHARS = 2048
ROOM_RE = re.compile(r"[a-z0-9-]{1,64}")
#: A kept transmission's id (say-again: the media plane makes 12 hex digits; any id of
#: this shape is well-formed, and one the room does not keep is answered ``gone``).
REPLAY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ProtocolError(ValueError):
    """A client message that cannot be accepted; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    name: str  # "" when a token is given: the token names the member
    password: str | None = None
    token: str | None = None  # a signed join token (signaling/tokens.py), checked by the hub


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Resume:
    """Take over a member whose socket died (signaling/resume.py), instead of ``join``."""

    room: str
    member_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class FloorRequest:
    pass


@dataclass(frozen=True, slots=True)
class FloorRelease:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Replay:
    """Say-again: play the room's kept transmission ``id`` to me (docs/PROTOCOL.md)."""

    id: str


@dataclass(frozen=True, slots=True)
class ReplayStop:
    pass


ClientMessage = Join | Offer | FloorRequest | FloorRelease | Ping | Replay | ReplayStop | Resume

#: Longest member id and resume secret a ``resume`` may carry (ours: 8 and 24 characters).
MAX_MEMBER_ID_CHARS = 32
MAX_RESUME_SECRET_CHARS = 64


def _reject_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259); Python accepts them by default.
    raise ProtocolError("bad_json", f"invalid JSON constant {name}")


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Parse and validate one WebSocket frame from a client."""
    if not isinstance(frame, str):
        raise ProtocolError("bad_message", "binary frames are not supported: send JSON text")
    if len(frame) > MAX_MESSAGE_BYTES or len(frame.encode("utf-8", "surrogatepass")) > (
        MAX_MESSAGE_BYTES
    ):
        raise ProtocolError("too_large", f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(frame, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays ("[[[[..."), which json handles by recursing.
        raise ProtocolError("bad_json", f"invalid JSON: {_short(exc)}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", 'a message needs a string field "type"')
    if kind == "join":
        return _parse_join(data)
    if kind == "offer":
        sdp = _field(data, "sdp", str)
        if not sdp.strip():
            raise ProtocolError("bad_message", 'field "sdp" is empty')
        if _has_surrogate(sdp):
            raise ProtocolError("bad_message", 'field "sdp" contains a lone surrogate')
        return Offer(sdp)
    if kind == "floor_request":
        return FloorRequest()
    if kind == "floor_release":
        return FloorRelease()
    if kind == "ping":
        return Ping()
    if kind == "replay":
        transmission_id = _field(data, "id", str)
        if not REPLAY_ID_RE.fullmatch(transmission_id):
            raise ProtocolError("bad_message", 'field "id" must be 1-32 characters of '
                                "A-Z, a-z, 0-9, '_' and '-'")
        return Replay(transmission_id)
    if kind == "replay_stop":
        return ReplayStop()
    if kind == "resume":
        return _parse_resume(data)
    raise ProtocolError("bad_message", f"unknown message type '{_short(kind)}'")


def _parse_join(data: dict[str, object]) -> Join:
    room = validate_room(_field(data, "room", str))
    token = data.get("token")
    if token is not None:
        if not isinstance(token, str):
            raise ProtocolError("bad_message", 'field "token" must be a string')
        if len(token) > MAX_TOKEN_CHARS:
            raise ProtocolError("bad_token", f"token longer than {MAX_TOKEN_CHARS} characters")
    # With a token the name is the token's: the join's own name is not used (nor checked).
    name = "" if token else validate_name(_field(data, "name", str))
    password = data.get("password")
    if password is not None and not isinstance(password, str):
        raise ProtocolError("bad_message", 'field "password" must be a string')
    if password is not None and len(password) > MAX_PASSWORD_CHARS:
        raise ProtocolError(
            "bad_message", f'field "password" is longer than {MAX_PASSWORD_CHARS} characters'
        )
    if password is not None and _has_surrogate(password):
        raise ProtocolError("bad_message", 'field "password" contains a lone surrogate')
    return Join(room, name, password or None, token or None)


def _parse_resume(data: dict[str, object]) -> Resume:
    room = validate_room(_field(data, "room", str))
    member_id = _field(data, "id", str)
    secret = _field(data, "secret", str)
    if not 0 < len(member_id) <= MAX_MEMBER_ID_CHARS or not member_id.isascii():
        raise ProtocolError("bad_message", f'field "id" must be 1-{MAX_MEMBER_ID_CHARS} '
                            "ASCII characters")
    if not 0 < len(secret) <= MAX_RESUME_SECRET_CHARS or not secret.isascii():
        raise ProtocolError("bad_message", f'field "secret" must be 1-{MAX_RESUME_SECRET_CHARS} '
                            "ASCII characters")
    return Resume(room, member_id, secret)


def validate_room(room: str) -> str:
    """A room id: 1-64 characters of ``[a-z0-9-]`` (clients lower-case what users type)."""
    if not ROOM_RE.fullmatch(room):
        raise ProtocolError(
            "bad_room", "room must be 1-64 characters of lower-case a-z, 0-9 and '-'"
        )
    return room


def validate_name(raw: str) -> str:
    """A display name: NFC, trimmed, 1-32 characters; the rules are in ``names.py``."""
    try:
        return check_name(raw)
    except NameRefused as exc:
        raise ProtocolError("bad_name", str(exc)) from None


def _field(data: dict[str, object], key: str, kind: type[str]) -> str:
    value = data.get(key)
    if value is None:
        raise ProtocolError("bad_message", f'missing field "{key}"')
    if not isinstance(value, kind):
        raise ProtocolError("bad_message", f'field "{key}" must be a string')
    return value


def _has_surrogate(text: str) -> bool:
    """Lone surrogates survive json.loads but cannot be encoded as UTF-8 later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _short(value: object, limit: int = 60) -> str:
    """A bounded, ASCII-only rendering of untrusted input for error messages."""
    text = ascii(str(value)[:limit])[1:-1]
    return text if len(str(value)) <= limit else text + "..."


def encode(message: dict[str, object]) -> str:
    """Serialise a server -> client message as compact JSON.

    ``ensure_ascii=False`` keeps names readable on the wire; it is safe because every
    string we send was validated (no lone surrogates) or produced by us.
    """
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
