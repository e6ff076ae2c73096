"""What a browser may do with our responses: Content-Security-Policy and its companions.

The page is plain ES modules and one stylesheet from ``/static/`` (www/README.md): no inline
script or style, no ``eval``, no ``blob:`` or ``data:`` URL, no font, no frame. The remote
audio plays from a ``MediaStream`` (``srcObject``), which no CSP fetch directive governs, and
the tones are WebAudio; ICE servers (STUN/TURN) are not fetched through ``connect-src``
either. So the policy can be ``'self'`` for everything and ``'none'`` for what the page
never uses, and an injected script (should a bug ever let text become markup) could neither
run nor send anything to another host.

Sent on every HTTP response (page, static files, ``/healthz``, errors): a CSP on a script or
an error body costs nothing, and a browser that opens one of them as a document is covered.
Pure.
"""

from __future__ import annotations

import re

__all__ = ["PERMISSIONS_POLICY", "content_security_policy", "security_headers", "websocket_sources"]

#: Host names that a CSP host-source can spell (no ``_``, no IPv6 brackets, no trailing dot).
_CSP_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")

#: Powerful features: the microphone for this origin only, the rest for nobody. (Screen wake
#: lock, clipboard write and Web Share keep their default, this origin: the page uses them.)
PERMISSIONS_POLICY = "microphone=(self), camera=(), geolocation=(), display-capture=(), usb=(), payment=()"


def websocket_sources(authority: str | None, tls: bool) -> tuple[str, ...]:
    """The ``connect-src`` sources for the page's WebSocket (``ws(s)://<its Host>/ws``).

    ``authority`` is the request's checked ``Host`` (:meth:`signaling.hosts.HostPolicy.check`),
    which is what the page's ``location.host`` is. ``'self'`` covers the socket in CSP 3
    browsers; the explicit URL is for the others. Plain HTTP lists ``wss:`` too: behind a
    TLS-terminating proxy the page is https while this server is not. An IPv6 literal, a
    trailing dot or a ``_`` cannot be written in a CSP host-source, so such a host is left to
    ``'self'`` (an invalid source would only earn a console warning).
    """
    if authority is None:  # a refused request: no page of ours will run from it
        return ("'self'",)
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    if not _CSP_HOST.fullmatch(host):
        return ("'self'",)
    schemes = ("wss",) if tls else ("ws", "wss")
    return ("'self'", *(f"{scheme}://{authority}" for scheme in schemes))


def content_security_policy(authority: str | None, tls: bool) -> str:
    directives = (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src " + " ".join(websocket_sources(authority, tls)),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",  # nobody may frame the Talk button (clickjacking)
    )
    return "; ".join(directives)


def security_headers(authority: str | None, tls: bool) -> list[tuple[str, str]]:
    """The headers to add to a response to a request for ``authority`` (its checked Host;
    None for a request refused for its Host).

    ``X-Content-Type-Options`` and ``Referrer-Policy`` are already on every response
    (:mod:`signaling.static`).
    """
    return [
        ("Content-Security-Policy", content_security_policy(authority, tls)),
        ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers without CSP 2
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]
