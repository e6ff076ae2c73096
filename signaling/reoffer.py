"""Which re-offers the media plane cannot serve: an ICE restart of the same peer connection.

The media plane makes a fresh transport for every offer: new ICE credentials and a new DTLS
association (docs/PROTOCOL.md, "offer"). A browser's ``restartIce()`` re-offers from the
*same* peer connection: new ICE credentials, the same DTLS certificate, and Chromium keeps
its DTLS association across it (an ICE restart does not restart DTLS), so it would never
start the handshake our new transport waits for: audio would stop, and the session end
30 s later. Such an offer is refused with a clear ``bad_offer`` instead, and the media
session it would have replaced goes on; the page makes a new peer connection instead
(a new certificate, so a new DTLS association).

Only the two lines that tell it apart are read here (the media plane parses the offer for
real): the certificate fingerprints and the ICE username fragment.
"""

from __future__ import annotations

import re

__all__ = ["OfferIdentity", "ice_restart_problem", "identity_of"]

_FINGERPRINT = re.compile(r"^a=fingerprint:[ \t]*(\S+)[ \t]+(\S+)[ \t]*\r?$", re.MULTILINE)
_UFRAG = re.compile(r"^a=ice-ufrag:[ \t]*(\S+)[ \t]*\r?$", re.MULTILINE)

#: (the offer's certificate fingerprints, its ICE ufrags)
OfferIdentity = tuple[frozenset[tuple[str, str]], frozenset[str]]


def identity_of(sdp: str) -> OfferIdentity:
    fingerprints = frozenset((a.lower(), v.upper()) for a, v in _FINGERPRINT.findall(sdp))
    return fingerprints, frozenset(_UFRAG.findall(sdp))


def ice_restart_problem(current: OfferIdentity | None, offer: OfferIdentity) -> str | None:
    """Why ``offer`` cannot replace the session whose accepted offer was ``current``, or None:
    the same certificate with new ICE credentials is an ICE restart of the same peer
    connection."""
    if current is None or not offer[0] or offer[0] != current[0] or offer[1] == current[1]:
        return None
    return ("an ICE restart of the same peer connection (same DTLS certificate, new ICE "
            "credentials) is not supported: your media session goes on; to renew it, offer "
            "from a new RTCPeerConnection")
