"""Fuzz targets for the text the browser sends: SDP offers and signaling messages.

The input bytes are decoded as UTF-8 with replacement, as text that arrived in a WebSocket
frame (always valid UTF-8) and, for SDP, in a JSON string that
``signaling/messages.py`` has already checked for lone surrogates.
"""

from __future__ import annotations

import json
import random

from sfu.core import CoreConfig, MediaCore, OfferError
from sfu.sdp import SdpError, build_answer, parse_offer, select_audio
from signaling.messages import (
    FloorRelease,
    FloorRequest,
    Join,
    Offer,
    Ping,
    ProtocolError,
    encode,
    parse_client_message,
    validate_name,
    validate_room,
)

from .harness import check
from .packets import IDENTITIES

__all__ = ["sdp", "signaling"]

_CORE = MediaCore(CoreConfig("127.0.0.1", 40000), IDENTITIES["server"], rng=random.Random(1))


def sdp(data: bytes) -> None:
    """One offer through what ``WorkerPool.negotiate`` and the worker do with it: parse,
    select, ``MediaCore.open_peer``, answer; then the peer is removed again.

    Expected: ``SdpError`` (parse, select, answer) and ``OfferError`` (open_peer). Must
    hold: the answer parses back, serves the selected m-line with the offer's Opus payload
    type only, is ICE-lite and never says ``actpass``.
    """
    text = data.decode("utf-8", "replace")
    try:
        offer = parse_offer(text)
        selection = select_audio(offer)
    except SdpError:
        return
    try:
        local = _CORE.open_peer("fuzz", "room", selection, 0.0)
    except OfferError:
        return
    try:
        answer = build_answer(offer, selection, local)
    except SdpError:
        return
    finally:
        _CORE.remove_peer("fuzz")
    check(_CORE.peer_count == 0, "a removed peer is still there")
    again = parse_offer(answer)
    check(again.media[selection.index].formats == [str(pt) for pt in selection.payload_types],
          "the answer does not serve the selected Opus (and RED) payload types alone")
    check("a=ice-lite\r\n" in answer and "a=setup:actpass" not in answer,
          "the answer is not ICE-lite or leaves the DTLS role open")


_KINDS = (Join, Offer, FloorRequest, FloorRelease, Ping)


def signaling(data: bytes) -> None:
    """Byte 0 bit 0: a binary frame (bytes) instead of a text frame; the rest, the frame.

    Expected: ``ProtocolError`` with a lower-case code and a message that can be sent back
    (``encode`` and UTF-8 must take it). Must hold: a Join's room and name are already in
    the form ``validate_room``/``validate_name`` give, and every accepted string can be
    encoded for the other members.
    """
    if not data:
        return
    raw = data[1:]
    frame: str | bytes = raw if data[0] & 1 else raw.decode("utf-8", "replace")
    try:
        message = parse_client_message(frame)
    except ProtocolError as exc:
        check(exc.code.isascii() and exc.code.replace("_", "").isalpha() and exc.code.islower(),
              f"odd error code {exc.code!r}")
        encode({"type": "error", "code": exc.code, "message": exc.message}).encode("utf-8")
        return
    check(isinstance(message, _KINDS), f"unexpected message type {type(message).__name__}")
    if isinstance(message, Join):
        check(validate_room(message.room) == message.room, "room not in its validated form")
        check(validate_name(message.name) == message.name, "name not in its validated form")
        encode({"type": "joined", "room": message.room, "name": message.name}).encode("utf-8")
        if message.password is not None:
            message.password.encode("utf-8")
    elif isinstance(message, Offer):
        json.dumps(message.sdp, ensure_ascii=False).encode("utf-8")
