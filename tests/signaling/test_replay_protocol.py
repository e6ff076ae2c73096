"""Say-again on the wire (docs/PROTOCOL.md, "Say again"): the real server and the real media
plane in-process, JSON clients, synthetic media peers. What members are told, requests and
their refusals (each a clear error to that client only), and a replay end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import time

import pytest

import sfu
from signaling.budgets import BudgetSettings
from signaling.server import ServerConfig, SignalingServer
from signaling.tokens import Grant, issue

from .conftest import WsClient
from .replaykit import listed, media_up, talk_turn

Factory = Callable[[SignalingServer], Awaitable[WsClient]]


def not_told(client: WsClient) -> bool:
    """``client`` got nothing about anyone's replay (the room's list is for everyone)."""
    return not [m for m in client.seen if m["type"] in ("replay_started", "replay_ended")]


@pytest.fixture
async def replay_server() -> AsyncIterator[SignalingServer]:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0,
                                                     replay_seconds=120))
    server = await SignalingServer.start(ServerConfig(
        host="127.0.0.1", port=0, tick_interval=0.05, replay_seconds=120,
        budgets=BudgetSettings(replay_rate=0.01, replay_burst=3)), router)
    try:
        yield server
    finally:
        await server.close()
        await router.close()


async def test_joined_says_how_long_the_room_keeps_audio(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann = await client_factory(replay_server)
    joined = await ann.join("ops", "Ann")
    assert joined["replay"] == {"seconds": 120, "transmissions": []}


async def test_a_server_without_replay_says_nothing_and_refuses_requests(
        server: SignalingServer, client_factory: Factory) -> None:
    ann = await client_factory(server)
    joined = await ann.join("ops", "Ann")
    assert "replay" not in joined
    await ann.send({"type": "replay", "id": "abc"})
    error = await ann.expect("error", code="replay_unavailable", fatal=False)
    assert "keeps no audio" in error["message"]
    await ann.ping()  # the session goes on


@pytest.mark.parametrize(("message", "says"), [
    ({"type": "replay"}, 'missing field "id"'),
    ({"type": "replay", "id": 7}, 'field "id" must be a string'),
    ({"type": "replay", "id": ""}, 'field "id" must be 1-32 characters'),
    ({"type": "replay", "id": "../etc"}, 'field "id" must be 1-32 characters'),
    ({"type": "replay", "id": "x" * 33}, 'field "id" must be 1-32 characters'),
])
async def test_malformed_requests_are_bad_messages_and_change_nothing(
        replay_server: SignalingServer, client_factory: Factory,
        message: dict[str, object], says: str) -> None:
    ann, bob = await client_factory(replay_server), await client_factory(replay_server)
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    await ann.send(message)
    error = await ann.expect("error", code="bad_message", fatal=False)
    assert says in error["message"]
    await ann.ping()
    await bob.ping()
    await bob.nothing_more()


async def test_requests_before_joining_or_before_media_are_refused(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann = await client_factory(replay_server)
    await ann.send({"type": "replay", "id": "abc"})
    await ann.expect("error", code="not_joined", fatal=False)
    await ann.join("ops", "Ann")
    await ann.send({"type": "replay", "id": "abc"})
    error = await ann.expect("error", code="replay_unavailable", fatal=False)
    assert "not connected" in error["message"]
    await ann.send({"type": "replay_stop"})
    await ann.expect("error", code="replay_unavailable")


async def test_an_id_the_room_does_not_keep_ends_at_once_as_gone(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann = await client_factory(replay_server)
    await ann.join("ops", "Ann")
    peer = await media_up(ann, "ann")
    try:
        await ann.send({"type": "replay", "id": "000000000000"})
        assert await ann.expect("replay_ended") == {
            "type": "replay_ended", "id": "000000000000", "reason": "gone"}
        await ann.send({"type": "replay_stop"})  # nothing plays: no answer
        await ann.ping()
        await ann.nothing_more()
    finally:
        peer.close()


async def test_replay_requests_are_budgeted_per_address(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann = await client_factory(replay_server)
    await ann.join("ops", "Ann")
    peer = await media_up(ann, "ann")
    try:
        for _ in range(3):  # the burst
            await ann.send({"type": "replay", "id": "000000000000"})
            await ann.expect("replay_ended", reason="gone")
        await ann.send({"type": "replay", "id": "000000000000"})
        error = await ann.expect("error", code="rate_limited", fatal=False)
        assert "replays per second" in error["message"] and error["retry_ms"] > 0
        await ann.ping()
    finally:
        peer.close()


async def test_a_late_member_replays_a_transmission_and_only_it_hears_it(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann, cy = await client_factory(replay_server), await client_factory(replay_server)
    ann_id = (await ann.join("ops", "Ann"))["you"]["id"]
    await cy.join("ops", "Cy")
    ann_peer, cy_peer = await media_up(ann, "ann"), await media_up(cy, "cy")
    peers = [ann_peer, cy_peer]
    try:
        sent = await talk_turn(ann, ann_peer, 25)
        (kept,) = await listed(ann, 1)
        assert (await listed(cy, 1)) == [kept]
        assert kept["talker"] == {"id": ann_id, "name": "Ann"}
        assert kept["duration_ms"] == 500 and kept["truncated"] is False
        await cy_peer.drain()

        bob = await client_factory(replay_server)  # joins late: the list is in its joined
        joined = await bob.join("ops", "Bob")
        assert joined["replay"]["transmissions"] == [kept]
        bob_peer = await media_up(bob, "bob")
        peers.append(bob_peer)
        await bob.send({"type": "replay", "id": kept["id"]})
        started = await bob.expect("replay_started")
        assert {k: started[k] for k in kept} == kept
        assert await bob.expect("replay_ended", timeout=10.0) == {
            "type": "replay_ended", "id": kept["id"], "reason": "done"}
        got = await bob_peer.drain()
        assert [p.payload for p in got] == sent  # the same Opus packets
        assert all(p.csrcs == [] for p in got)  # not live talk from anyone
        assert await cy_peer.drain() == []  # nobody else heard it
        await cy.ping()
        assert not_told(cy)
    finally:
        for peer in peers:
            peer.close()


async def test_live_talk_stops_a_replay_and_the_listener_is_told(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann, bob = await client_factory(replay_server), await client_factory(replay_server)
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    ann_peer, bob_peer = await media_up(ann, "ann"), await media_up(bob, "bob")
    try:
        await talk_turn(ann, ann_peer, 100)  # two seconds
        (kept,) = await listed(bob, 1)
        await bob_peer.drain()
        await bob.send({"type": "replay", "id": kept["id"]})
        await bob.expect("replay_started")
        await ann.send({"type": "floor_request"})  # live wins
        await ann.expect("floor_granted")
        ended = await bob.expect("replay_ended")
        assert ended["reason"] == "live"
        await ann.send({"type": "floor_release"})
        # a request while someone holds the floor is answered "live" at once
        await ann.send({"type": "floor_request"})
        await ann.expect("floor_granted")
        await bob.send({"type": "replay", "id": kept["id"]})
        assert (await bob.expect("replay_ended"))["reason"] == "live"
    finally:
        ann_peer.close()
        bob_peer.close()


async def test_a_member_may_stop_its_replay(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann, bob = await client_factory(replay_server), await client_factory(replay_server)
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    ann_peer, bob_peer = await media_up(ann, "ann"), await media_up(bob, "bob")
    try:
        await talk_turn(ann, ann_peer, 100)
        (kept,) = await listed(bob, 1)
        await bob.send({"type": "replay", "id": kept["id"]})
        await bob.expect("replay_started")
        await bob.send({"type": "replay_stop"})
        assert (await bob.expect("replay_ended"))["reason"] == "stopped"
        await ann.ping()
        assert not_told(ann)
    finally:
        ann_peer.close()
        bob_peer.close()


async def test_a_talker_who_left_is_still_named_and_the_room_forgets_with_its_last_member(
        replay_server: SignalingServer, client_factory: Factory) -> None:
    ann, cy = await client_factory(replay_server), await client_factory(replay_server)
    await ann.join("ops", "Ann")
    await cy.join("ops", "Cy")
    ann_peer, cy_peer = await media_up(ann, "ann"), await media_up(cy, "cy")
    try:
        await talk_turn(ann, ann_peer, 10)
        (kept,) = await listed(cy, 1)
        await ann.ws.close()
        await cy.expect("member_left")
        bob = await client_factory(replay_server)
        joined = await bob.join("ops", "Bob")
        assert joined["replay"]["transmissions"] == [kept]
        assert kept["talker"]["name"] == "Ann"
        await cy.ws.close()
        await bob.ws.close()
        dee = await client_factory(replay_server)  # the room was empty: nothing kept
        assert (await dee.join("ops", "Dee"))["replay"]["transmissions"] == []
    finally:
        ann_peer.close()
        cy_peer.close()


async def test_a_listen_only_member_may_replay(client_factory: Factory) -> None:
    secret = "k" * 48
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0,
                                                     replay_seconds=60))
    server = await SignalingServer.start(ServerConfig(
        host="127.0.0.1", port=0, replay_seconds=60, token_secret=secret), router)
    peers = []
    try:
        ann, lou = await client_factory(server), await client_factory(server)
        for client, grant in ((ann, Grant("ops", "Ann", time.time() + 600)),
                              (lou, Grant("ops", "Lou", time.time() + 600, listen_only=True))):
            await client.send({"type": "join", "room": "ops", "token": issue(secret, grant)})
            await client.expect("joined")
        ann_peer, lou_peer = await media_up(ann, "ann"), await media_up(lou, "lou")
        peers += [ann_peer, lou_peer]
        sent = await talk_turn(ann, ann_peer, 10)
        (kept,) = await listed(lou, 1)
        await lou_peer.drain()
        await lou.send({"type": "replay", "id": kept["id"]})
        await lou.expect("replay_started")
        assert (await lou.expect("replay_ended"))["reason"] == "done"
        assert [p.payload for p in await lou_peer.drain()] == sent
    finally:
        for peer in peers:
            peer.close()
        await server.close()
        await router.close()
