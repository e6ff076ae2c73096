"""Unit tests of the page's network handover (www/session.js, www/negotiation.js): resume
on a new socket, network changes, ICE failures recovered on the same socket. The session
machine runs in Chromium, step by step (see test_page_session.py for the harness)."""

from __future__ import annotations

from typing import Any

import pytest

from .test_page_session import (ANSWER, CONNECTED, JOINED_MSG, OFFER, OPENED, TO_READY, action,
                                error, msg, run, types)

pytestmark = pytest.mark.browser

RESUMABLE_MSG = {**JOINED_MSG, "resume": {"secret": "s3cret-one", "grace_ms": 10000}}
RESUMED_MSG = {**JOINED_MSG, "resumed": True, "resume": {"secret": "s3cret-two", "grace_ms": 10000},
               "floor": {"holder": {"id": "me", "name": "Ann"}, "queue_length": 0}}
TO_READY_RESUMABLE = [*TO_READY[:3], msg(RESUMABLE_MSG), *TO_READY[4:]]
LOST = ["socketClosed", "$socket", True]
FIRE = ["timerFired", "$timer"]
RESUMED = msg(RESUMED_MSG)


def test_a_lost_socket_resumes_and_keeps_room_floor_and_peer_connection(page: Any) -> None:
    records = run(page, [*TO_READY_RESUMABLE, LOST, FIRE, OPENED, RESUMED, CONNECTED])
    lost, fired, opened, resumed, connected = records[7:]
    assert types(lost) == ["startTimer"]  # no leaveRoom, no closePeer: the room stays
    assert action(lost, "startTimer")["delay"] == 100 and lost["phase"] == "backoff"
    assert types(fired) == ["openSocket"]
    assert action(opened, "send")["message"] == {"type": "resume", "room": "ops-1", "id": "me",
                                                 "secret": "s3cret-one"}
    assert types(resumed) == ["room"] and resumed["phase"] == "resetting"
    assert action(resumed, "room")["message"]["resumed"] is True
    assert connected["phase"] == "ready" and connected["actions"] == []  # the same peer connection
    # The next loss uses the newer secret.
    *_, again = run(page, [*TO_READY_RESUMABLE, LOST, FIRE, OPENED, RESUMED, CONNECTED,
                           LOST, FIRE, OPENED])
    assert action(again, "send")["message"]["secret"] == "s3cret-two"


def test_a_resume_whose_media_was_lost_offers_again_on_the_new_socket(page: Any) -> None:
    reset = msg({"type": "media", "state": "reset", "reason": "resumed"})
    records = run(page, [*TO_READY_RESUMABLE, LOST, FIRE, OPENED, RESUMED, reset, OFFER, ANSWER,
                         CONNECTED])
    renewed = records[11]
    assert types(renewed) == ["closePeer", "openPeer"] and renewed["phase"] == "resetting"
    assert records[-1]["phase"] == "ready"


def test_a_failed_resume_joins_afresh_on_the_same_socket(page: Any) -> None:
    records = run(page, [*TO_READY_RESUMABLE, LOST, FIRE, OPENED,
                         error("resume_failed", False, "too late"), msg(JOINED_MSG)])
    failed, joined = records[-2:]
    assert types(failed) == ["closePeer", "leaveRoom", "send"]
    assert action(failed, "send")["message"] == {"type": "join", "room": "ops-1", "name": "Ann"}
    assert types(joined) == ["room", "openPeer"] and joined["phase"] == "media"


def test_without_a_resume_secret_a_lost_socket_rejoins_as_before(page: Any) -> None:
    *_, lost = run(page, [*TO_READY, LOST])
    assert types(lost) == ["closePeer", "leaveRoom", "startTimer"]


def test_a_network_change_replaces_socket_and_peer_connection(page: Any) -> None:
    records = run(page, [*TO_READY_RESUMABLE, ["networkChanged"], FIRE, OPENED, RESUMED, CONNECTED,
                         OFFER, ANSWER, CONNECTED])
    changed, _, opened, resumed, media = records[7:12]
    assert types(changed) == ["closeSocket", "closePeer", "startTimer"]
    assert action(changed, "closeSocket")["code"] == 4000  # not a goodbye: the member is held
    assert action(opened, "send")["message"]["type"] == "resume"
    assert types(media) == ["openPeer"]  # the old peer connection was bound to the old network
    assert records[-1]["phase"] == "ready"
    *_, idle = run(page, [*TO_READY[:3], ["networkChanged"]])  # not joined yet: nothing
    assert idle["actions"] == []


def test_ice_trouble_is_recovered_on_the_same_socket(page: Any) -> None:
    records = run(page, [*TO_READY, ["peerDisconnected", "$peer"], ["peerConnected", "$peer"],
                         ["peerDisconnected", "$peer"], FIRE, OFFER, ANSWER, CONNECTED])
    grace, back, again, fired, offered = records[7:12]
    assert action(grace, "startTimer")["delay"] == 1000
    assert types(back) == ["cancelTimer"] and back["phase"] == "ready"
    assert types(fired) == ["closePeer", "openPeer"] and fired["phase"] == "resetting"
    assert types(offered) == ["send"]  # the new offer, on the same socket
    assert records[-1]["phase"] == "ready"
    *_, failed = run(page, [*TO_READY, ["peerFailed", "$peer"]])
    assert types(failed) == ["closePeer", "openPeer"] and failed["phase"] == "resetting"
