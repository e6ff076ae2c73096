"""Quick reconnect (issue 12): a member whose socket dies is held for a grace period and
resumed on a new socket with its id, floor and queue place; sans-IO, on a fake clock.

The hub runs against the real router (as in test_hub.py), so offers really negotiate and
the held member's media peer really stays in the media plane.
"""

from __future__ import annotations

from typing import Any

import pytest

import sfu
from signaling.floor import FloorSettings
from signaling.hub import Client, Close, Hub, Send
from signaling.messages import FloorRequest, Join, ProtocolError, Resume, parse_client_message
from signaling.resume import ResumeKeeper
from signaling.rooms import RoomRegistry

from .test_hub import Clock, SpeakerLog, media, offer, sent, types  # noqa: F401 - media: fixture

GRACE = 10.0


def make_hub(media: SpeakerLog, grace: float = GRACE) -> tuple[Hub, Clock]:
    clock = Clock()
    registry = RoomRegistry(max_users=5, floor_settings=FloorSettings(no_media_timeout=3.0))
    return Hub(registry, media, clock=clock, resume_grace=grace), clock


def join(hub: Hub, name: str) -> tuple[Client, dict[str, Any]]:
    client = hub.connect()
    (joined,) = sent(hub.receive(client, Join("r", name)), client)
    return client, joined


def resume(hub: Hub, joined: dict[str, Any], secret: str | None = None) -> tuple[Client, list]:
    client = hub.connect()
    message = Resume("r", joined["you"]["id"], secret or joined["resume"]["secret"])
    return client, hub.receive(client, message)


def everything_sent(actions: list, *clients: Client) -> list[dict[str, Any]]:
    return [m for c in clients for m in sent(actions, c)]


# ---------------------------------------------------------------------- the keeper


def test_secrets_are_random_single_use_and_compared_by_digest() -> None:
    keeper = ResumeKeeper(10.0)
    first = keeper.issue("m1")
    assert len(first) == 24 and keeper.matches("m1", first)
    assert not keeper.matches("m1", first[:-1] + ("A" if first[-1] != "A" else "B"))
    assert not keeper.matches("m2", first)
    second = keeper.issue("m1")
    assert second != first and not keeper.matches("m1", first) and keeper.matches("m1", second)
    assert first.encode() not in b"".join(keeper._digests.values())  # noqa: SLF001 - only digests
    keeper.hold("m1", 100.0)
    assert keeper.expired(109.9) == [] and keeper.expired(110.0) == ["m1"]
    keeper.forget("m1")
    assert not keeper.is_held("m1") and not keeper.matches("m1", second)
    with pytest.raises(ValueError):
        ResumeKeeper(-1.0)


def test_a_resume_message_is_checked() -> None:
    good = parse_client_message('{"type":"resume","room":"r","id":"abc","secret":"s3cret"}')
    assert good == Resume("r", "abc", "s3cret")
    for bad in ('{"type":"resume","room":"r","id":"abc"}',
                '{"type":"resume","room":"R","id":"abc","secret":"x"}',
                '{"type":"resume","room":"r","id":"","secret":"x"}',
                '{"type":"resume","room":"r","id":"abc","secret":"' + "x" * 65 + '"}',
                '{"type":"resume","room":"r","id":7,"secret":"x"}'):
        with pytest.raises(ProtocolError):
            parse_client_message(bad)


# ---------------------------------------------------------------------- the hub


async def test_a_dead_socket_is_held_and_resumed_without_churn(media: SpeakerLog) -> None:
    hub, clock = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    await offer(hub, media, a)
    assert joined_a["resume"]["grace_ms"] == 10000
    peer = a.peer_id
    assert hub.disconnect(a, clean=False) == []  # held: nobody is told anything
    assert a.held and hub.resumes.is_held(joined_a["you"]["id"])
    assert media.removed == []  # its media peer stays
    clock.now += GRACE - 0.5
    assert hub.tick() == []
    a2, actions = resume(hub, joined_a)
    assert types(actions, a2) == ["joined", "media"]
    again, media_state = sent(actions, a2)
    assert again["you"] == joined_a["you"] and again["resumed"] is True
    assert again["resume"]["secret"] != joined_a["resume"]["secret"]
    assert media_state == {"type": "media", "state": "reset", "reason": "resumed"}  # not connected yet
    assert sent(actions, b) == []  # no member_left, no member_joined
    assert a2.member is not None and a2.member.id == joined_a["you"]["id"]
    assert peer in media.removed  # the peer that never connected goes: the page offers again
    clock.now += GRACE
    assert everything_sent(hub.tick(), b) == []  # resumed: its grace no longer runs


async def test_a_connected_holder_keeps_the_floor_and_its_media(media: SpeakerLog) -> None:
    hub, clock = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    c, joined_c = join(hub, "Cy")
    await offer(hub, media, a)
    hub.media_event(sfu.PeerEvent("connected", a.peer_id, "r"))  # type: ignore[arg-type]
    hub.receive(a, FloorRequest())
    hub.receive(c, FloorRequest())  # queued, position 1
    hub.disconnect(a, clean=False)
    hub.disconnect(c, clean=False)
    assert hub.registry.get("r").floor.holder == joined_a["you"]["id"]  # type: ignore[union-attr]
    clock.now += 1.0
    a2, actions = resume(hub, joined_a)
    assert types(actions, a2) == ["joined", "floor_granted", "media"]
    _, granted, media_state = sent(actions, a2)
    assert 58000 <= granted["max_ms"] <= 59000
    assert media_state == {"type": "media", "state": "connected"}
    assert a2.peer_id is not None and media.removed == []  # the same media session
    c2, actions = resume(hub, joined_c)
    assert types(actions, c2) == ["joined", "floor_queued", "media"]
    assert sent(actions, c2)[1]["position"] == 1
    assert sent(actions, b) == []


async def test_a_held_holder_without_media_loses_the_floor_at_once(media: SpeakerLog) -> None:
    """Without media nothing but media_wait (10 s) would free its floor: a disconnect
    releases it at once, as before the grace existed (issue 9's 5 s)."""
    hub, _ = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    hub.receive(a, FloorRequest())
    actions = hub.disconnect(a, clean=False)
    assert sent(actions, b) == [{"type": "floor", "holder": None, "queue_length": 0}]
    assert sent(actions, a) == []


async def test_the_end_of_media_timer_still_revokes_a_held_holder(media: SpeakerLog) -> None:
    hub, clock = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    await offer(hub, media, a)
    hub.media_event(sfu.PeerEvent("connected", a.peer_id, "r"))  # type: ignore[arg-type]
    hub.receive(a, FloorRequest())
    hub.media_event(sfu.PeerEvent("speaker_active", a.peer_id, "r"))  # type: ignore[arg-type]
    hub.disconnect(a, clean=False)
    clock.now += 1.0
    actions = hub.media_event(sfu.PeerEvent("speaker_silent", a.peer_id, "r", "", 1.0))  # type: ignore[arg-type]
    clock.now += 2.1
    actions += hub.tick()
    assert sent(actions, b) == [{"type": "floor", "holder": None, "queue_length": 0}]
    assert not [x for x in actions if isinstance(x, Send | Close) and x.client is a]


async def test_the_grace_running_out_is_a_leave(media: SpeakerLog) -> None:
    hub, clock = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    await offer(hub, media, a)
    peer = a.peer_id
    hub.disconnect(a, clean=False)
    clock.now += GRACE
    actions = hub.tick()
    assert sent(actions, b) == [{"type": "member_left", "id": joined_a["you"]["id"]}]
    assert peer in media.removed
    late_client, late = resume(hub, joined_a)
    (error,) = sent(late, late_client)
    assert error["code"] == "resume_failed" and error["fatal"] is False


async def test_wrong_reused_or_foreign_secrets_change_nothing(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, joined_b = join(hub, "Bob")
    hub.disconnect(a, clean=False)
    for secret in ("x" * 24, joined_b["resume"]["secret"]):
        c, actions = resume(hub, joined_a, secret)
        assert [m["code"] for m in sent(actions, c)] == ["resume_failed"]
        assert sent(actions, b) == [] and c.member is None
    wrong_room = hub.connect()
    actions = hub.receive(wrong_room, Resume("elsewhere", joined_a["you"]["id"],
                                             joined_a["resume"]["secret"]))
    assert [m["code"] for m in sent(actions, wrong_room)] == ["resume_failed"]
    a2, actions = resume(hub, joined_a)
    assert types(actions, a2)[0] == "joined"
    a3, actions = resume(hub, joined_a)  # the same secret once more: used
    assert [m["code"] for m in sent(actions, a3)] == ["resume_failed"]
    assert a2.member is not None and not a2.closed


async def test_a_resume_takes_over_a_socket_the_server_still_thinks_alive(media: SpeakerLog) -> None:
    """The page moved networks and resumed before the server noticed its old socket die."""
    hub, _ = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    a2, actions = resume(hub, joined_a)
    assert types(actions, a2)[0] == "joined"
    assert [x.code for x in actions if isinstance(x, Close) and x.client is a] == [1000]
    assert sent(actions, b) == []
    assert hub.disconnect(a, clean=False) == []  # the old socket's end changes nothing now
    assert a2.member is not None


async def test_a_goodbye_or_no_grace_leaves_at_once(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, joined_a = join(hub, "Ann")
    b, _ = join(hub, "Bob")
    assert sent(hub.disconnect(a, clean=True), b) == [{"type": "member_left",
                                                       "id": joined_a["you"]["id"]}]
    off, _ = make_hub(media, grace=0.0)
    c, joined_c = join(off, "Cy")
    d, _ = join(off, "Di")
    assert "resume" not in joined_c
    assert types(off.disconnect(c, clean=False), d) == ["member_left"]

