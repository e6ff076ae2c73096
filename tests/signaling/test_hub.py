"""The hub (session logic without sockets) against the real media plane.

Offers are a real Chromium offer (captured, tests/signaling/chrome_offer.sdp) so that
``add_peer`` really succeeds; the router is real. It is wrapped only to record which
``set_speaker`` calls the hub made, and media-plane events are the router's own
``PeerEvent`` objects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import sfu
from signaling.floor import FloorSettings
from signaling.hub import CLOSE_FATAL, CLOSE_MEDIA, Client, Close, Hub, Send
from signaling.messages import FloorRelease, FloorRequest, Join, Offer, Ping, ProtocolError
from signaling.rooms import RoomRegistry

OFFER = (Path(__file__).parent / "chrome_offer.sdp").read_text()


class SpeakerLog:
    """The real router, with its set_speaker calls recorded."""

    def __init__(self, router: sfu.Router) -> None:
        self.router = router
        self.calls: list[tuple[str, str | None]] = []

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        self.calls.append((room_id, peer_id))
        self.router.set_speaker(room_id, peer_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def media() -> AsyncIterator[SpeakerLog]:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    try:
        yield SpeakerLog(router)
    finally:
        await router.close()


def make_hub(media: SpeakerLog, **floor: Any) -> tuple[Hub, Clock]:
    clock = Clock()
    registry = RoomRegistry(max_users=3, floor_settings=FloorSettings(**floor))
    return Hub(registry, media, clock=clock), clock


def sent(actions: list, client: Client) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send) and a.client is client]


def types(actions: list, client: Client) -> list[str]:
    return [m["type"] for m in sent(actions, client)]


def join(hub: Hub, name: str, room: str = "r") -> Client:
    client = hub.connect()
    actions = hub.receive(client, Join(room, name))
    assert types(actions, client) == ["joined"]
    return client


async def test_join_presence_and_leave(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a = join(hub, "Ann")
    b = hub.connect()
    actions = hub.receive(b, Join("r", "Bob"))
    (joined,) = sent(actions, b)
    assert joined["you"]["name"] == "Bob"
    assert [m["name"] for m in joined["members"]] == ["Ann", "Bob"]
    assert joined["max_users"] == 3 and joined["max_talk_ms"] == 60000
    assert joined["floor"] == {"holder": None, "queue_length": 0}
    assert joined["ice_servers"] == [] and joined["password_protected"] is False
    assert sent(actions, a) == [{"type": "member_joined", "member": joined["you"]}]
    left = hub.disconnect(b)
    assert sent(left, a) == [{"type": "member_left", "id": joined["you"]["id"]}]
    assert hub.client_count == 1


async def test_errors_before_and_after_join(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    c = hub.connect()
    for message in (Offer(OFFER), FloorRequest(), FloorRelease()):
        (error,) = sent(hub.receive(c, message), c)
        assert error["code"] == "not_joined" and error["fatal"] is False
    assert types(hub.receive(c, Ping()), c) == ["pong"]
    join_actions = hub.receive(c, Join("r", "n"))
    assert types(join_actions, c) == ["joined"]
    (error,) = sent(hub.receive(c, Join("r", "again")), c)
    assert error["code"] == "already_joined" and error["fatal"] is False


async def test_room_full_is_fatal_and_closes(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    members = [join(hub, f"m{i}") for i in range(3)]
    late = hub.connect()
    actions = hub.receive(late, Join("r", "late"))
    (error,) = sent(actions, late)
    assert error["code"] == "room_full" and error["fatal"] is True
    assert Close(late, CLOSE_FATAL, "room_full") in actions
    assert all(not sent(actions, m) for m in members)
    assert hub.receive(late, Ping()) == []  # closed: nothing more


async def test_protocol_errors_fatal_only_for_bad_join_fields(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    c = hub.connect()
    actions = hub.error(c, ProtocolError("bad_json", "x"))
    assert not any(isinstance(a, Close) for a in actions)
    actions = hub.error(c, ProtocolError("bad_name", "x"))
    assert any(isinstance(a, Close) for a in actions)


async def test_offer_answer_and_bad_offers(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a = join(hub, "Ann")
    (error,) = sent(hub.receive(a, Offer("v=0\r\nnonsense\r\n")), a)
    assert error["code"] == "bad_offer" and error["fatal"] is False and error["message"]
    (answer,) = sent(hub.receive(a, Offer(OFFER)), a)
    assert answer["type"] == "answer"
    assert "a=ice-lite" in answer["sdp"] and "a=setup:actpass" not in answer["sdp"]
    assert a.peer_id is not None and media.peer_stats(a.peer_id) is not None
    (error,) = sent(hub.receive(a, Offer(OFFER)), a)
    assert error["code"] == "bad_message"
    peer_id = a.peer_id
    hub.disconnect(a)
    assert media.peer_stats(peer_id) is None  # removed from the media plane


async def test_floor_drives_the_speaker(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, b, c = join(hub, "Ann"), join(hub, "Bob"), join(hub, "Cy")
    for client in (a, b):
        hub.receive(client, Offer(OFFER))
    assert media.calls == []

    actions = hub.receive(a, FloorRequest())
    assert sent(actions, a) == [
        {"type": "floor_granted", "max_ms": 60000},
        {"type": "floor", "holder": a.member.public(), "queue_length": 0},  # type: ignore[union-attr]
    ]
    assert types(actions, b) == types(actions, c) == ["floor"]
    assert media.calls == [("r", a.peer_id)]

    # c has no media yet: it may queue and be granted, but the router gets no speaker.
    assert sent(hub.receive(c, FloorRequest()), c)[0] == {"type": "floor_queued", "position": 1}
    assert sent(hub.receive(b, FloorRequest()), b)[0] == {"type": "floor_queued", "position": 2}
    actions = hub.receive(a, FloorRelease())
    assert types(actions, a) == ["floor_released", "floor"]
    assert types(actions, c) == ["floor_granted", "floor"]
    assert types(actions, b) == ["floor_queued", "floor"]
    assert media.calls[-1] == ("r", None)
    # Once c's offer is accepted, c becomes the speaker without a new request.
    hub.receive(c, Offer(OFFER))
    assert media.calls[-1] == ("r", c.peer_id)
    # Holder leaves: the floor passes on at once.
    actions = hub.disconnect(c)
    assert types(actions, b) == ["floor_granted", "floor", "member_left"]
    assert media.calls[-1] == ("r", b.peer_id)
    # Repeated floor messages change nothing, so no extra set_speaker call.
    calls = len(media.calls)
    assert types(hub.receive(b, FloorRequest()), b) == ["floor_granted"]
    assert len(media.calls) == calls


async def test_busy_denied_without_queue(media: SpeakerLog) -> None:
    hub, _ = make_hub(media, queue=False)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    hub.receive(a, FloorRequest())
    (denied,) = sent(hub.receive(b, FloorRequest()), b)
    assert denied == {"type": "floor_denied", "reason": "busy", "holder": a.member.public()}  # type: ignore[union-attr]


async def test_tick_revokes_after_max_talk_time(media: SpeakerLog) -> None:
    hub, clock = make_hub(media, max_talk_time=5.0)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    hub.receive(a, Offer(OFFER))
    hub.receive(b, Offer(OFFER))
    hub.receive(a, FloorRequest())
    hub.receive(b, FloorRequest())
    clock.now += 4.9
    assert hub.tick() == []
    clock.now += 0.2
    actions = hub.tick()
    assert sent(actions, a) == [
        {"type": "floor_revoked", "reason": "max_talk_time"},
        {"type": "floor", "holder": b.member.public(), "queue_length": 0},  # type: ignore[union-attr]
    ]
    assert types(actions, b) == ["floor_granted", "floor"]
    assert media.calls[-1] == ("r", b.peer_id)


async def test_media_loss_releases_floor_and_closes(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    hub.receive(a, Offer(OFFER))
    hub.receive(b, Offer(OFFER))
    assert types(hub.media_event(sfu.PeerEvent("connected", a.peer_id, "r")), a) == ["media"]  # type: ignore[arg-type]
    assert a.media_connected
    hub.receive(a, FloorRequest())
    a_id = a.member.id  # type: ignore[union-attr]
    # The router already dropped the peer when it emits consent_lost.
    media.remove_peer(a.peer_id)  # type: ignore[arg-type]
    actions = hub.media_event(sfu.PeerEvent("consent_lost", a_id, "r", "no ICE consent for 30 s"))
    assert sent(actions, a) == [
        {"type": "media", "state": "failed", "reason": "no ICE consent for 30 s"}
    ]
    assert Close(a, CLOSE_MEDIA, "media consent_lost") in actions
    assert types(actions, b) == ["floor", "member_left"]
    assert media.calls[-1] == ("r", None)
    # The socket closing afterwards changes nothing more.
    assert hub.disconnect(a) == []
    # Events for unknown peers are ignored.
    assert hub.media_event(sfu.PeerEvent("connected", "ghost", "r")) == []


async def test_handling_is_per_room(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a = join(hub, "Ann", room="one")
    b = join(hub, "Bob", room="two")
    actions = hub.receive(a, FloorRequest())
    assert not sent(actions, b)
    assert hub.receive(b, FloorRequest())[0] == Send(b, '{"type":"floor_granted","max_ms":60000}')
