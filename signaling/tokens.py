"""Signed join tokens: another application lets its own users into a room, no password shared.

A token is a JWT (RFC 7519) signed with HMAC-SHA256 (``HS256``) under the server's token
secret (``--token-secret``). Its claims:

========================  ======================================================================
``room``     (required)   the one room it admits to (1-64 of ``[a-z0-9-]``)
``name``     (required)   the member's display name (the names.py rules); the page cannot change it
``exp``      (required)   expiry, Unix seconds; at most :data:`MAX_TTL` (7 days) ahead
``listen_only``           bool, default false: the member may never take the floor
``priority``              int 0-255, default 0: a higher priority pre-empts a lower talker
========================  ======================================================================

Why so strict: a token is a bearer credential that arrives from an untrusted browser. The
algorithm is pinned (``alg: none``, ``HS512``, RS256 with the secret as a "public key" are all
refused), every claim's type is checked (``true`` is not a priority, ``1`` is not
``listen_only``), tokens are bounded in size before any decoding, and a token cannot be made
to last for ever (``exp`` is required and bounded), so a leaked link stops working on its own.

Sans-IO: the time is passed in (``now``, Unix seconds), so expiry is tested without a clock.
Every refusal is a :class:`TokenError` whose ``code`` is the protocol error sent to that
client: ``token_expired`` for a token that was good and ran out (the user needs a new link),
``bad_token`` for everything else (docs/PROTOCOL.md, "Signed join tokens").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from .messages import MAX_TOKEN_CHARS, Join, ProtocolError, validate_name, validate_room

__all__ = ["ALGORITHM", "MAX_PRIORITY", "MAX_TOKEN_CHARS", "MAX_TTL", "MIN_SECRET_CHARS",
           "Grant", "TokenCheck", "TokenError", "admit_token", "issue", "verify"]

ALGORITHM = "HS256"
#: Longest lifetime a token may claim (seconds): a leaked link must expire on its own.
MAX_TTL = 7 * 24 * 3600
MAX_PRIORITY = 255
#: Shortest secret: HS256 wants a key of at least its 256-bit output (RFC 7518 §3.2).
MIN_SECRET_CHARS = 32
#: Seconds of clock difference allowed between the issuer and this server, both ways.
LEEWAY = 30.0
REQUIRED = ("room", "name", "exp")


class TokenError(ProtocolError):
    """A token that does not admit its bearer; ``code``: ``bad_token`` or ``token_expired``."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token allows: this member, in this room, with these permissions."""

    room: str
    name: str
    expires_at: float
    listen_only: bool = False
    priority: int = 0


class TokenCheck:
    """A server's token policy: its secret, and the wall clock that expiry is read from."""

    __slots__ = ("_secret", "_clock")

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        check_secret(secret)
        self._secret = secret
        self._clock = clock

    def grant(self, token: str | None, room: str) -> Grant:
        """The grant of a join's token for ``room``, or TokenError."""
        return verify(self._secret, token or "", room, self._clock())

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return "TokenCheck(<secret>)"


def admit_token(check: TokenCheck | None, join: Join) -> Grant | None:
    """What a ``join`` is allowed under the server's policy: its token's grant, or None on a
    server without tokens (rooms and passwords as always). Raises ProtocolError (a
    TokenError for the token itself)."""
    if check is None:
        if join.token is not None:
            raise TokenError("bad_token", "this server does not use signed join links")
        return None
    if join.password is not None:
        raise ProtocolError("bad_message", "this server admits with signed links, not "
                                           "passwords: send the token without a password")
    return check.grant(join.token, join.room)


def issue(secret: str, grant: Grant) -> str:
    """The token for ``grant`` (``walkie token``; an integrating application does the same
    with any JWT library). Raises ValueError for a grant :func:`verify` would refuse."""
    check_secret(secret)
    validate_room(grant.room)
    if validate_name(grant.name) != grant.name:
        raise ValueError("the name must be given as the server keeps it (NFC, trimmed)")
    _check_permissions(grant.listen_only, grant.priority, ValueError)
    claims: dict[str, Any] = {"room": grant.room, "name": grant.name,
                              "exp": int(grant.expires_at)}
    if grant.listen_only:
        claims["listen_only"] = True
    if grant.priority:
        claims["priority"] = grant.priority
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str, room: str, now: float) -> Grant:
    """The :class:`Grant` of ``token`` for a join of ``room`` at ``now``, or TokenError."""
    if not isinstance(token, str) or not token:
        raise TokenError("bad_token", "this server admits with signed links: a token is needed")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("bad_token", f"token longer than {MAX_TOKEN_CHARS} characters")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM],
            # Expiry is checked below against the ``now`` passed in (sans-IO); pyjwt checks
            # the signature, the algorithm and that the required claims are present.
            options={"require": list(REQUIRED), "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False, "verify_aud": False, "verify_iss": False},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("bad_token", f"token without the {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("bad_token", f"token not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_token", "token signature does not match") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise TokenError("bad_token", "malformed token") from None
    return _grant(claims, room, now)


def check_secret(secret: str) -> None:
    """ValueError unless ``secret`` is long enough to sign with."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_CHARS} characters "
                         "(e.g. `openssl rand -hex 32`)")


def _grant(claims: dict[str, Any], room: str, now: float) -> Grant:
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
        raise TokenError("bad_token", "token 'exp' must be a number of Unix seconds")
    if exp <= now - LEEWAY:
        raise TokenError("token_expired", "this link has expired: ask for a new one")
    if exp > now + MAX_TTL + LEEWAY:
        raise TokenError("bad_token", f"token valid for more than {MAX_TTL // 86400} days")
    claimed_room, name = claims["room"], claims["name"]
    if not isinstance(claimed_room, str) or not isinstance(name, str):
        raise TokenError("bad_token", "token 'room' and 'name' must be strings")
    if claimed_room != room:
        raise TokenError("bad_token", "this token is for another room")
    try:
        name = validate_name(name)
    except ProtocolError as exc:
        raise TokenError("bad_token", f"token name: {exc.message}") from None
    listen_only = claims.get("listen_only", False)
    priority = claims.get("priority", 0)
    _check_permissions(listen_only, priority, TokenError)
    return Grant(room, name, float(exp), listen_only, priority)


def _check_permissions(listen_only: object, priority: object, error: type[ValueError]) -> None:
    if not isinstance(listen_only, bool):
        raise _error(error, "token 'listen_only' must be true or false")
    if isinstance(priority, bool) or not isinstance(priority, int) or not (
            0 <= priority <= MAX_PRIORITY):
        raise _error(error, f"token 'priority' must be an integer 0..{MAX_PRIORITY}")


def _error(kind: type[ValueError], message: str) -> ValueError:
    return TokenError("bad_token", message) if kind is TokenError else kind(message)
