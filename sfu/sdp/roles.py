"""``a=setup`` and the DTLS role it gives (RFC 8842, RFC 5763 §5): the one owner of that rule.

The offer says ``actpass`` (either), ``active`` or ``passive``; the answer must pick one of
the two concrete roles that fits; the side that is ``active`` starts the DTLS handshake (the
DTLS client), the ``passive`` one waits for it (the server). The offer check
(``sfu/sdp/select.py``), the answer (``sfu/sdp/answer.py``), the peer that creates its DTLS
endpoint and the bench's offering client all ask these functions instead of re-deriving it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .model import SdpError, quote

if TYPE_CHECKING:
    from ..dtls import Role

__all__ = [
    "ANSWER_SETUPS",
    "answer_setup_fits",
    "check_offer_setup",
    "dtls_role",
    "local_setup_for",
    "offerer_dtls_role",
]

# What an answer may say for each offered a=setup, our preference first. For 'actpass' we
# prefer 'passive': the browser (a full ICE agent) then starts DTLS as soon as ICE works,
# and we never send a first datagram to an address before it has passed a connectivity check.
_ANSWERS: dict[str, tuple[str, ...]] = {
    "actpass": ("passive", "active"),
    "active": ("passive",),
    "passive": ("active",),
}

#: What an answer's a=setup may be at all: a concrete role, never ``actpass``.
ANSWER_SETUPS: tuple[str, ...] = _ANSWERS["actpass"]


def check_offer_setup(offer_setup: str) -> str:
    """``offer_setup`` if an offer may say it (actpass, active or passive), else SdpError."""
    if offer_setup not in _ANSWERS:
        raise SdpError(f"offer's a=setup:{quote(offer_setup)} is not actpass, active or passive")
    return offer_setup


def local_setup_for(offer_setup: str) -> str:
    """Our ``a=setup`` for the offer's (RFC 8842 §5.3): never ``actpass`` in an answer.

    For ``actpass`` we choose ``passive`` (see ``_ANSWERS`` for why).
    """
    return _ANSWERS[check_offer_setup(offer_setup)][0]


def answer_setup_fits(offer_setup: str, answer_setup: str) -> bool:
    """True if an answer's ``a=setup:answer_setup`` may answer the offer's ``offer_setup``."""
    return answer_setup in _ANSWERS.get(offer_setup, ())


def dtls_role(setup: str) -> Role:
    """The DTLS role of the side whose ``a=setup`` (in an answer) is ``setup``.

    ``active`` starts the handshake: the DTLS client. ``passive`` waits: the server.
    """
    if setup == "active":
        return "client"
    if setup == "passive":
        return "server"
    raise SdpError(f"a=setup:{quote(setup)} gives no DTLS role (need active or passive)")


def offerer_dtls_role(answer_setup: str) -> Role:
    """The DTLS role of an ``actpass`` offerer, once the answer's ``a=setup`` is known: the
    other role than the answerer's."""
    return "server" if dtls_role(answer_setup) == "client" else "client"
