"""SDP for walkie: parse a browser's offer, pick the one audio m-line we serve, build the answer.

Sans-IO: text in, dataclasses and text out. The SFU is ICE-lite, DTLS-SRTP, rtcp-mux, BUNDLE
and Opus only, and negotiates exactly one bidirectional audio m-line per browser (mic up, the
room's channel down). Everything else the browser offers (video, data channels, a second audio
m-line) is rejected with port 0, which browsers accept without renegotiation.

Three steps, one module each, so that the caller can allocate per-peer state between them
(and run them in another process than the media):

* ``parse.py``: :func:`parse_offer` turns SDP text into an :class:`Offer` (``model.py``);
* ``select.py``: :func:`select_audio` decides whether we can serve it and returns the
  :class:`AudioSelection` the transport layers need;
* ``answer.py``: :func:`build_answer` writes the answer from our :class:`LocalParams`.

``roles.py`` owns ``a=setup`` and the DTLS role it gives (:func:`local_setup_for`,
:func:`dtls_role`). Every parsing or validation failure raises :class:`SdpError` (a
``ValueError``), never anything else, whatever the input: signaling hands us text from the
network.
"""
from __future__ import annotations

from .answer import LocalParams, answer_direction, build_answer
from .model import Fingerprint, MediaSection, Offer, SdpError
from .parse import parse_offer
from .roles import dtls_role, local_setup_for, offerer_dtls_role
from .select import AUDIO_LEVEL_URI, MID_URI, AudioSelection, select_audio

__all__ = [
    "AUDIO_LEVEL_URI",
    "MID_URI",
    "AudioSelection",
    "Fingerprint",
    "LocalParams",
    "MediaSection",
    "Offer",
    "SdpError",
    "answer_direction",
    "build_answer",
    "dtls_role",
    "local_setup_for",
    "offerer_dtls_role",
    "parse_offer",
    "select_audio",
]
