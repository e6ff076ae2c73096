"""Which re-offers the media plane cannot serve: an ICE restart of the same peer connection.

The media plane makes a fresh transport for every offer: new ICE credentials and a new DTLS
association (docs/PROTOCOL.md, "offer"). A browser's ``restartIce()`` re-offers from the
*same* peer connection, and Chromium keeps its DTLS association across it (an ICE restart
does not restart DTLS), so it would never start the handshake our new transport waits for:
audio would stop, and the session end 30 s later. Such an offer is refused with a clear
``bad_offer`` instead, and the media session it would have replaced goes on; the page makes
a new peer connection instead.

How it is told apart: every later offer of one peer connection keeps the session id of its
``o=`` line (RFC 3264 §8, JSEP §5.2.2), and a new peer connection draws a new one; an ICE
restart changes the ``a=ice-ufrag``. The certificate fingerprint cannot tell: an
application may give every new peer connection the same certificate. Only these lines are
read here; the media plane parses the offer for real.
"""

from __future__ import annotations

import re

__all__ = ["OfferIdentity", "ice_restart_problem", "identity_of"]

_ORIGIN = re.compile(r"^o=\S+[ \t]+(\S+)[ \t]", re.MULTILINE)
_UFRAG = re.compile(r"^a=ice-ufrag:[ \t]*(\S+)[ \t]*\r?$", re.MULTILINE)

#: (the o= line's session id, the offer's ICE ufrags)
OfferIdentity = tuple[str, frozenset[str]]


def identity_of(sdp: str) -> OfferIdentity:
    origin = _ORIGIN.search(sdp)
    return (origin.group(1) if origin else ""), frozenset(_UFRAG.findall(sdp))


def ice_restart_problem(current: OfferIdentity | None, offer: OfferIdentity) -> str | None:
    """Why ``offer`` cannot replace the session whose accepted offer was ``current``, or None:
    the same peer connection (``o=`` session id) with new ICE credentials is an ICE restart."""
    if current is None or not offer[0] or offer[0] != current[0] or offer[1] == current[1]:
        return None
    return ("an ICE restart of the same peer connection (same o= session, new ICE "
            "credentials) is not supported: your media session goes on; to renew it, offer "
            "from a new RTCPeerConnection")
