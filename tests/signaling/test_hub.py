"""The hub (session logic without sockets) against the real media plane.

Offers are a real Chromium offer (captured, tests/signaling/chrome_offer.sdp) so that
``negotiate`` really succeeds; the router is real. It is wrapped only to record which
``set_speaker`` and ``remove_peer`` calls the hub made, and media-plane events are the
router's own ``PeerEvent`` objects. The hub never awaits: an offer gives a ``Negotiate``
action, which these tests run against the router (as server.py does) or hold back, to feed
the outcome at the moment a test needs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import sfu
from signaling.budgets import MAX_BAD_OFFERS
from signaling.floor import FloorSettings
from signaling.hub import CLOSE_FATAL, CLOSE_MEDIA, Client, Close, Hub, Negotiate, Send
from signaling.messages import FloorRelease, FloorRequest, Join, Offer, Ping, ProtocolError
from signaling.rooms import RoomRegistry

OFFER = (Path(__file__).parent / "chrome_offer.sdp").read_text()


class SpeakerLog:
    """The real router, with its set_speaker and remove_peer calls recorded."""

    def __init__(self, router: sfu.Router) -> None:
        self.router = router
        self.calls: list[tuple[str, str | None]] = []
        self.removed: list[str] = []

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        self.calls.append((room_id, peer_id))
        self.router.set_speaker(room_id, peer_id)

    def remove_peer(self, peer_id: str) -> None:
        self.removed.append(peer_id)
        self.router.remove_peer(peer_id)

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


def begin_offer(hub: Hub, client: Client, sdp: str = OFFER) -> Negotiate:
    """Send an offer; the hub answers with exactly one Negotiate action for it."""
    (action,) = hub.receive(client, Offer(sdp))
    assert isinstance(action, Negotiate) and action.client is client and action.sdp == sdp
    assert client.offer_pending == action.offer
    return action


async def finish_offer(hub: Hub, media: SpeakerLog, negotiation: Negotiate) -> list:
    """What server.py does with a Negotiate: the media plane's outcome, back to the hub."""
    try:
        answer = await media.negotiate(negotiation.peer_id, negotiation.room_id, negotiation.sdp)
    except ValueError as exc:
        return hub.offer_failed(negotiation, str(exc))
    return hub.offer_answered(negotiation, answer)


async def offer(hub: Hub, media: SpeakerLog, client: Client, sdp: str = OFFER) -> list:
    return await finish_offer(hub, media, begin_offer(hub, client, sdp))


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
    (error,) = sent(await offer(hub, media, a, "v=0\r\nnonsense\r\n"), a)
    assert error["code"] == "bad_offer" and error["fatal"] is False and error["message"]
    assert a.offer_pending is None and a.peer_id is None
    (answer,) = sent(await offer(hub, media, a), a)
    assert answer["type"] == "answer"
    assert "a=ice-lite" in answer["sdp"] and "a=setup:actpass" not in answer["sdp"]
    assert a.peer_id is not None and media.peer_stats(a.peer_id) is not None
    peer_id = a.peer_id
    hub.disconnect(a)
    assert media.peer_stats(peer_id) is None  # removed from the media plane
    assert media.removed == [peer_id]


async def test_an_offer_while_one_is_answered_is_refused_without_harm(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a = join(hub, "Ann")
    pending = begin_offer(hub, a)
    (error,) = sent(hub.receive(a, Offer(OFFER)), a)
    assert error == {"type": "error", "code": "bad_message", "fatal": False,
                     "message": "an offer is already being answered"}
    assert a.offer_pending == pending.offer  # the first offer is still the one answered
    assert types(await finish_offer(hub, media, pending), a) == ["answer"]
    assert a.offer_pending is None and a.peer_id == a.member.id  # type: ignore[union-attr]


async def test_an_internal_media_failure_is_a_server_error_and_the_session_goes_on(
    media: SpeakerLog,
) -> None:
    hub, _ = make_hub(media)
    a = join(hub, "Ann")
    (error,) = sent(hub.offer_failed(begin_offer(hub, a), None), a)
    assert error["code"] == "server_error" and error["fatal"] is False
    assert types(await offer(hub, media, a), a) == ["answer"]


async def test_a_new_offer_replaces_the_media_peer_and_keeps_the_floor(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    (first,) = sent(await offer(hub, media, a), a)
    await offer(hub, media, b)
    hub.receive(a, FloorRequest())
    peer_id = a.peer_id
    assert peer_id is not None and media.calls == [("r", peer_id)]

    negotiation = begin_offer(hub, a)
    # The old peer is gone at once; the holder is nobody's speaker until the new answer.
    assert media.removed == [peer_id] and a.peer_id is None
    assert media.peer_stats(peer_id) is None
    assert media.calls == [("r", peer_id), ("r", None)]
    actions = await finish_offer(hub, media, negotiation)
    (second,) = sent(actions, a)
    assert second["type"] == "answer" and not sent(actions, b)  # no presence change
    assert ice_ufrag(second["sdp"]) != ice_ufrag(first["sdp"])  # a new transport
    assert a.peer_id == peer_id and media.peer_stats(peer_id) is not None
    assert media.calls[-1] == ("r", peer_id)  # the holder speaks again
    room = hub.registry.get("r")
    assert room is not None and room.floor.holder == a.member.id  # type: ignore[union-attr]


def ice_ufrag(sdp: str) -> str:
    (line,) = [x for x in sdp.splitlines() if x.startswith("a=ice-ufrag:")]
    return line


async def test_reset_keeps_membership_floor_and_queue_and_restores_the_speaker(
    media: SpeakerLog,
) -> None:
    hub, _ = make_hub(media)
    a, b, c = join(hub, "Ann"), join(hub, "Bob"), join(hub, "Cy")
    for client in (a, b, c):
        await offer(hub, media, client)
    hub.receive(a, FloorRequest())
    hub.receive(b, FloorRequest())  # queued behind a
    assert media.calls == [("r", a.peer_id)]
    a_id, b_id = a.member.id, b.member.id  # type: ignore[union-attr]

    # a's and b's worker died: the media plane forgot them and says "reset" for each.
    for client in (a, b):
        media.router.remove_peer(client.peer_id)  # type: ignore[arg-type]
    reset_a = hub.media_event(sfu.PeerEvent("reset", a_id, "r", "media worker restarted"))
    reset_b = hub.media_event(sfu.PeerEvent("reset", b_id, "r", "media worker restarted"))
    assert sent(reset_a, a) == [
        {"type": "media", "state": "reset", "reason": "media worker restarted"}
    ]
    assert types(reset_b, b) == ["media"]
    assert not sent(reset_a + reset_b, c)  # nobody left, nothing changed for the others
    assert a.peer_id is None and b.peer_id is None and not a.closed
    assert media.calls[-1] == ("r", None)  # the hub's idea of the speaker follows the media plane
    room = hub.registry.get("r")
    assert room is not None and room.floor.holder == a_id and list(room.floor.queue) == [b_id]
    assert len(room.members) == 3

    # Floor traffic goes on while media is down; then the holder's new offer brings it back.
    assert types(hub.receive(b, FloorRequest()), b) == ["floor_queued"]
    assert types(await offer(hub, media, a), a) == ["answer"]
    assert media.calls[-1] == ("r", a_id)
    assert types(await offer(hub, media, b), b) == ["answer"]
    assert media.calls[-1] == ("r", a_id)  # b is only queued: no speaker change
    # A reset for a peer the client no longer has (it re-offered meanwhile) changes nothing.
    assert hub.media_event(sfu.PeerEvent("reset", "ghost", "r", "x")) == []


async def test_an_answer_for_a_member_who_left_meanwhile_removes_the_peer(
    media: SpeakerLog,
) -> None:
    hub, _ = make_hub(media)
    a, b = join(hub, "Ann"), join(hub, "Bob")
    negotiation = begin_offer(hub, a)
    peer_id = negotiation.peer_id
    hub.disconnect(a)
    assert media.removed == []  # nothing to remove yet: the offer is still being answered
    assert await finish_offer(hub, media, negotiation) == []
    assert media.removed == [peer_id] and media.peer_stats(peer_id) is None
    # The same for a failed offer: nothing to say to anybody.
    negotiation = begin_offer(hub, b)
    hub.disconnect(b)
    assert hub.offer_failed(negotiation, "nope") == []


async def test_floor_drives_the_speaker(media: SpeakerLog) -> None:
    hub, _ = make_hub(media)
    a, b, c = join(hub, "Ann"), join(hub, "Bob"), join(hub, "Cy")
    for client in (a, b):
        await offer(hub, media, client)
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
    await offer(hub, media, c)
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
    await offer(hub, media, a)
    await offer(hub, media, b)
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
    await offer(hub, media, a)
    await offer(hub, media, b)
    assert types(hub.media_event(sfu.PeerEvent("connected", a.peer_id, "r")), a) == ["media"]  # type: ignore[arg-type]
    assert a.media_connected
    hub.receive(a, FloorRequest())
    a_id = a.member.id  # type: ignore[union-attr]
    # The router already dropped the peer when it emits consent_lost.
    media.router.remove_peer(a.peer_id)  # type: ignore[arg-type]
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


async def test_unusable_offers_are_fatal_but_a_restarting_media_plane_is_not_counted(
    media: SpeakerLog,
) -> None:
    """The page re-offers after a worker restart and may be refused meanwhile (WorkerGone):
    those refusals never count; the MAX_BAD_OFFERS-th unusable offer ends the session."""
    hub, _ = make_hub(media)
    a = join(hub, "Ann")
    for _ in range(2 * MAX_BAD_OFFERS):
        actions = hub.offer_failed(begin_offer(hub, a), "media worker 0 is gone", unusable=False)
        (error,) = sent(actions, a)
        assert error["code"] == "bad_offer" and error["fatal"] is False
    for i in range(1, MAX_BAD_OFFERS + 1):
        actions = hub.offer_failed(begin_offer(hub, a), "no Opus", unusable=True)
        (error,) = sent(actions, a)
        assert error["code"] == "bad_offer" and error["fatal"] is (i == MAX_BAD_OFFERS)
    assert [a_.code for a_ in actions if isinstance(a_, Close)] == [CLOSE_FATAL]
    assert a.closed and a.member is None


async def test_a_room_handed_over_and_resumed_elsewhere_keeps_ids_names_and_permissions(
        media: SpeakerLog) -> None:
    """A cluster moves a room (docs/CLUSTER.md): the old node's hub hands it over silently
    (a holder is told ``room_moved``), the new node's hub resumes each member with its id,
    name and token permissions, a ``joined`` and a ``media`` ``reset``."""
    old, _ = make_hub(media)
    ann, bob = join(old, "Ann"), join(old, "Bob")
    old.receive(bob, FloorRequest())
    actions, members = old.hand_over("r", "room_moved")
    assert sent(actions, bob) == [{"type": "floor_revoked", "reason": "room_moved"}]
    assert sent(actions, ann) == []  # nobody is told anyone left
    assert [c for c, _ in members] == [ann, bob] and old.registry.get("r") is None
    assert ann.member is None and bob.member is None
    new, _ = make_hub(media)
    key = new.registry.password_key("r", "pw")
    moved = {}
    for client, member in members:
        moved[member.name] = fresh = new.connect()
        listen_only = member.name == "Bob"
        actions = new.resume(fresh, "r", member.id, member.name, key, "node_failed",
                             listen_only=listen_only, priority=3)
        assert types(actions, fresh) == ["joined", "media"]
        joined, reset = sent(actions, fresh)
        assert joined["you"] == member.public() and joined["password_protected"] is True
        assert reset == {"type": "media", "state": "reset", "reason": "node_failed"}
    # Bob's token let him listen only: still so after the move
    denied = new.receive(moved["Bob"], FloorRequest())
    assert sent(denied, moved["Bob"])[0]["reason"] == "listen_only"
    # the password key came along: a join with another password is refused
    late = new.connect()
    refused = new.receive(late, Join("r", "Cy", "other"),
                          new.registry.password_key("r", "other"))
    assert sent(refused, late)[0]["code"] == "bad_password"


async def test_joined_says_whether_the_room_is_recorded(media: SpeakerLog) -> None:
    """Issue 12: every member is told when the server keeps the room's audio; a room that
    arrives from another node (resume) says it the same way, from the node that hosts it."""
    hub, _ = make_hub(media)
    plain = hub.connect()
    (joined,) = sent(hub.receive(plain, Join("r", "Ann")), plain)
    assert joined["recorded"] is False
    recording = Hub(RoomRegistry(max_users=3, floor_settings=FloorSettings()), media,
                    recording=True)
    client = recording.connect()
    (joined,) = sent(recording.receive(client, Join("r", "Ann")), client)
    assert joined["recorded"] is True
    resumed = recording.connect()
    actions = recording.resume(resumed, "moved", "k3J9_aQx", "Bob", None, "room_moved")
    assert sent(actions, resumed)[0]["recorded"] is True
