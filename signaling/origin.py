"""The WebSocket Origin check: which web pages may open ``/ws`` in a visitor's browser.

Why: a browser lets any web page open a WebSocket to any server, and sends the visitor's
cookies and network position along. Without this check a page on ``evil.example`` could
open a socket to a walkie server on the visitor's LAN and join rooms in their name
(cross-site WebSocket hijacking). Browsers always send ``Origin`` on a WebSocket handshake,
so the server accepts its own origin (the ``Host`` the browser connected to) and the origins
the operator lists; clients that send no Origin (bots, tests, curl) are not browsers and are
let through.

Pure; one error class, :class:`OriginError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = ["OriginError", "OriginPolicy", "format_origin", "parse_host", "parse_origin",
           "split_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
# One trailing dot is allowed: "localhost." is the same DNS name, and a browser sends it as
# typed in both Origin and Host, so the two still compare equal.
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(?::([0-9]{1,5}))?")


class OriginError(ValueError):
    """Text that is not a web origin (``scheme://host[:port]``) or a ``Host`` header."""


def parse_origin(text: str) -> tuple[str, str, int]:
    """``"https://Example.org:443"`` -> ``("https", "example.org", 443)``.

    Only http and https origins exist for pages that can reach us; one trailing ``/`` is
    tolerated because people paste URLs into ``--allowed-origin``.
    """
    if not isinstance(text, str):
        raise OriginError("an origin must be text")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise OriginError(f"{text!r} is not an origin: it must start with http:// or https://")
    if rest.endswith("/"):
        rest = rest[:-1]
    if any(c in rest for c in "/?#@"):
        raise OriginError(f"{text!r} is not an origin: write scheme://host[:port], "
                          "without a path, query or user name")
    host, port = _host_port(text, rest, _DEFAULT_PORTS[scheme])
    return scheme, host, port


def parse_host(text: str, default_port: int) -> tuple[str, int]:
    """A ``Host`` header value -> ``(host, port)``, the port defaulting to ``default_port``."""
    if not isinstance(text, str):
        raise OriginError("a Host header must be text")
    return _host_port(text, text, default_port)


def split_host(text: str) -> tuple[str, int | None]:
    """``host[:port]`` -> ``(host, port or None)``: the host lower-cased, an IPv6 literal
    compressed and without its brackets. Used for ``Host`` headers (:mod:`signaling.hosts`)."""
    if not isinstance(text, str):
        raise OriginError("a Host header must be text")
    match = _HOST_PORT.fullmatch(text)
    if match is None:
        raise OriginError(f"{text!r}: expected host[:port]")
    host, port_text = match.group(1), match.group(2)
    if host.startswith("["):
        try:
            if "%" in host:  # a zone id: no browser sends one, and it is free text
                raise ValueError
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise OriginError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif not (_HOSTNAME.fullmatch(host) and len(host) <= 254):
        raise OriginError(f"{text!r}: {host!r} is not a host name or address")
    else:
        host = host.lower()
    if port_text is None:
        return host, None
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise OriginError(f"{text!r}: the port must be 1..65535")
    return host, port


def _host_port(original: str, text: str, default_port: int) -> tuple[str, int]:
    try:
        host, port = split_host(text)
    except OriginError as exc:
        raise OriginError(str(exc).replace(repr(text), repr(original), 1)) from None
    return host, default_port if port is None else port


def format_origin(origin: tuple[str, str, int]) -> str:
    """The canonical text of a parsed origin (the default port left out), for messages."""
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if _DEFAULT_PORTS[scheme] == port else f":{port}")


class OriginPolicy:
    """Decides whether a WebSocket handshake's ``Origin`` may open a session."""

    __slots__ = ("_allowed",)

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        # Parsed once: a bad --allowed-origin fails at start, not at the first browser.
        self._allowed = frozenset(parse_origin(o) for o in allowed)

    @property
    def allowed(self) -> tuple[str, ...]:
        """The extra origins, canonical and sorted (for the startup line and tests)."""
        return tuple(sorted(format_origin(o) for o in self._allowed))

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Same origin (the Origin's host and port are the ``Host`` asked for) or listed.

        The scheme is not compared with ours on purpose: behind a TLS-terminating proxy the
        page is https while this server speaks http; the host and port still tell a page of
        this site from a foreign one. ``Origin: null`` (sandboxed frames, file://) is refused.
        """
        if origin is None:
            return True
        try:
            parsed = parse_origin(origin)
        except OriginError:
            return False
        if parsed in self._allowed:
            return True
        if not host:
            return False
        try:
            return parse_host(host, _DEFAULT_PORTS[parsed[0]]) == parsed[1:]
        except OriginError:
            return False
