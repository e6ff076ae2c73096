"""STUN/TURN servers for the browsers, with short-lived TURN credentials (coturn's REST scheme).

Why short-lived credentials: the page is public, so anything it receives is public too. The
signaling server and coturn (``use-auth-secret``) share a secret; each member gets the
username ``"<unix expiry>:<member id>"`` and the password ``base64(HMAC-SHA1(secret,
username))``. coturn recomputes the HMAC, so no per-user state is shared, and a leaked
credential stops opening new allocations at its expiry (allocations already made keep
running: a long talk is not cut off). The secret itself never leaves this process.

Why the URL parser: a typo in ``--turn-url`` (``turn://host``, a missing port number, an
unknown transport) would otherwise surface only as a browser that silently gathers no relay
candidate. Browsers also refuse a ``turn:`` URL that has no credentials (``InvalidAccessError``
from ``new RTCPeerConnection``), so :class:`TurnConfig` refuses that combination up front.

Pure: the clock is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "IceUrl",
    "TurnConfig",
    "TurnUrlError",
    "ice_servers",
    "parse_ice_url",
    "turn_credential",
]

#: Longest credential lifetime accepted (one week): "short-lived" must mean something.
MAX_TTL = 7 * 24 * 3600

_SCHEMES = ("stun", "stuns", "turn", "turns")
_TRANSPORTS = ("udp", "tcp")
# RFC 3986 reg-name restricted to what DNS names use (browsers accept nothing else here).
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


class TurnUrlError(ValueError):
    """A STUN/TURN URL that does not follow RFC 7064 / RFC 7065."""


@dataclass(frozen=True, slots=True)
class IceUrl:
    """One parsed ``stun:``/``stuns:``/``turn:``/``turns:`` URL (RFC 7064, RFC 7065)."""

    scheme: str                   # lower case, one of _SCHEMES
    host: str                     # a DNS name, an IPv4 address, or an IPv6 address (no brackets)
    port: int | None = None       # None: the scheme's default (3478, or 5349 for stuns/turns)
    transport: str | None = None  # "udp" / "tcp" (turn/turns only); None: the client decides

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{host}"
        if self.port is not None:
            text += f":{self.port}"
        if self.transport is not None:
            text += f"?transport={self.transport}"
        return text


def parse_ice_url(text: str) -> IceUrl:
    """Parse ``scheme:host[:port][?transport=udp|tcp]``; raises :class:`TurnUrlError` only."""
    if not isinstance(text, str):
        raise TurnUrlError("an ICE server URL must be text")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise TurnUrlError(f"{text!r}: the URL must start with stun:, stuns:, turn: or turns:")
    if rest.startswith("//"):
        raise TurnUrlError(f"{text!r}: write {scheme}:host:port (no '//')")
    hostport, qmark, query = rest.partition("?")
    transport = None
    if qmark:
        if scheme in ("stun", "stuns"):
            raise TurnUrlError(f"{text!r}: a {scheme}: URL takes no query")
        key, eq, value = query.partition("=")
        if key != "transport" or not eq or value.lower() not in _TRANSPORTS:
            raise TurnUrlError(f"{text!r}: the only query is ?transport=udp or ?transport=tcp")
        transport = value.lower()
    host, port_text = _split_host_port(text, hostport)
    port = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise TurnUrlError(f"{text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return IceUrl(scheme, host, port, transport)


def _split_host_port(text: str, hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise TurnUrlError(f"{text!r}: unclosed '[' around the IPv6 address")
        literal, tail = hostport[1:end], hostport[end + 1:]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise TurnUrlError(f"{text!r}: {literal!r} is not an IPv6 address") from None
        if tail and not tail.startswith(":"):
            raise TurnUrlError(f"{text!r}: unexpected text after the IPv6 address")
        return literal, (tail[1:] if tail else None)
    host, colon, port_text = hostport.partition(":")
    if not host or not (_HOSTNAME.fullmatch(host) and len(host) <= 253):
        raise TurnUrlError(f"{text!r}: {host!r} is not a host name or address "
                           "(an IPv6 address goes in brackets)")
    return host.lower(), (port_text if colon else None)


def turn_credential(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """The (username, credential) pair for ``user``, valid until ``now + ttl``."""
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """The ICE servers every member is given.

    ``urls`` may mix STUN and TURN URLs: STUN ones are given as they are, TURN ones with a
    fresh credential made from ``secret``. Invalid combinations raise ``ValueError``
    (:class:`TurnUrlError` for a bad URL) when the config is made, not when a browser joins.
    """

    urls: tuple[str, ...]          # e.g. ("turn:turn.example.org:3478", "stun:turn.example.org")
    secret: str | None = None      # coturn's static-auth-secret; required by turn:/turns: URLs
    ttl: int = 3600                # seconds a credential can open new allocations

    def __post_init__(self) -> None:
        parsed = tuple(parse_ice_url(u) for u in self.urls)
        if any(u.is_turn for u in parsed) and not self.secret:
            raise ValueError("turn:/turns: URLs need the TURN secret: browsers refuse a TURN "
                             "server without credentials")
        if self.secret is not None and not self.secret:
            raise ValueError("the TURN secret is empty")
        if not 1 <= self.ttl <= MAX_TTL:
            raise ValueError(f"the TURN credential lifetime must be 1..{MAX_TTL} s")
        # Normalised (lower-case scheme and host) so what browsers get is what was checked.
        object.__setattr__(self, "urls", tuple(str(u) for u in parsed))

    @property
    def has_turn(self) -> bool:
        """True when at least one URL is a TURN server (so relay candidates are possible)."""
        return any(u.startswith(("turn:", "turns:")) for u in self.urls)

    def __repr__(self) -> str:
        # Never print the secret, even by accident (a log line, a traceback's locals).
        secret = "None" if self.secret is None else "'***'"
        return f"TurnConfig(urls={self.urls!r}, secret={secret}, ttl={self.ttl})"


def ice_servers(config: TurnConfig | None, user: str, now: float) -> list[dict[str, object]]:
    """The ``iceServers`` a browser's RTCPeerConnection needs (empty: none).

    STUN URLs go in one entry without credentials and TURN URLs in another with them:
    a browser sends a TURN credential to every URL of its entry, and a STUN server has
    no use for it.
    """
    if config is None or not config.urls:
        return []
    stun = [u for u in config.urls if u.startswith(("stun:", "stuns:"))]
    turn = [u for u in config.urls if u.startswith(("turn:", "turns:"))]
    servers: list[dict[str, object]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and config.secret:
        username, credential = turn_credential(config.secret, user, now, config.ttl)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
