"""The ``Host`` check: answer only requests for the names this server serves.

Why: DNS rebinding. A page on ``evil.example`` can make its own name resolve to 127.0.0.1 (or
a LAN address) a moment after it loaded; the visitor's browser then sends the page's requests
to a walkie server on the visitor's machine or LAN, and treats the answers as the attacker's
own origin: it may read ``/healthz``, and the WebSocket's Origin check passes, since the
``Origin`` and the ``Host`` are both ``evil.example``. What the attacker cannot change is the
``Host`` header: it is the name in the page's URL. So every HTTP request and every WebSocket
upgrade must name this server: an IP literal (a rebinding attacker has a name, not an
address), ``localhost``, a name the operator configured (``--server-name``), or a name on the
server's TLS certificate. Anything else is refused with 421 Misdirected Request.

The port in ``Host`` is not compared: behind a NAT or a reverse proxy it is not ours to know,
and it plays no part in rebinding (the Origin check still compares it). A trailing dot
(``localhost.``) names the same DNS name and is accepted; case is ignored. A configured
``*.example.org`` matches one label, as a certificate's wildcard does.

Pure; :class:`HostRefused` carries the status to answer with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .origin import OriginError, split_host

__all__ = ["HostPolicy", "HostRefused", "parse_server_name"]

#: Always served: the loopback name. (IP literals are always served too.)
ALWAYS = ("localhost",)

_LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


class HostRefused(ValueError):
    """A request whose ``Host`` this server does not serve: ``status`` is 400 or 421."""

    def __init__(self, status: int, reason: str, message: str, host: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.host = host  # the refused name, validated (safe to log and to show), if any


def parse_server_name(text: str) -> str:
    """A ``--server-name`` value: ``walkie.example.org`` or ``*.example.org``, lower-cased and
    without a trailing dot; an IP address is accepted (and always served anyway)."""
    name = text.strip().lower()
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    if not (_NAME.fullmatch(name) and len(name) <= 253):
        raise ValueError(f"{text!r} is not a host name (write the name only, e.g. "
                         "walkie.example.org or *.example.org: no scheme, port or path)")
    return name


class HostPolicy:
    """Decides whether a request's ``Host`` header names this server."""

    __slots__ = ("_names", "_suffixes")

    def __init__(self, names: Iterable[str] = ()) -> None:
        parsed = {parse_server_name(n) for n in names} | set(ALWAYS)
        self._names = frozenset(n for n in parsed if not n.startswith("*."))
        self._suffixes = frozenset(n[1:] for n in parsed if n.startswith("*."))  # ".example.org"

    @property
    def names(self) -> tuple[str, ...]:
        """The names served besides IP literals, sorted (for the start-up line and tests)."""
        return tuple(sorted(self._names | {"*" + s for s in self._suffixes}))

    def serves(self, name: str) -> bool:
        """True for an IP literal or a served name (``name`` as :func:`split_host` gives it)."""
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        name = name[:-1] if name.endswith(".") else name
        if name in self._names:
            return True
        label, dot, parent = name.partition(".")
        return bool(dot and label and "." + parent in self._suffixes)

    def check(self, values: list[str]) -> str:
        """The ``Host`` header's values -> the authority the request named, in canonical
        form (``host`` or ``host:port`` as sent, lower-cased; IPv6 in brackets, compressed).

        Raises :class:`HostRefused`: 400 for no ``Host``, several, or one that is not
        ``host[:port]``; 421 for a well-formed name this server does not serve.
        """
        if len(values) != 1:
            raise HostRefused(400, "Bad Request", "a request needs exactly one Host header")
        try:
            host, port = split_host(values[0])
        except OriginError:
            raise HostRefused(400, "Bad Request", "the Host header is not host[:port]") from None
        if not self.serves(host):
            raise HostRefused(
                421, "Misdirected Request",
                f"this server does not answer to the name {host!r}; its operator can add "
                "it with --server-name", host)
        shown = f"[{host}]" if ":" in host else host
        return shown if port is None else f"{shown}:{port}"

