"""Signed join links over the real server: who gets in, listen-only, priority pre-emption."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sfu
from signaling.server import SignalingServer
from signaling.tokens import Grant, issue
from tests.sfu.peerclient import PeerClient

from .conftest import ServerFactory, WsClient

SECRET = "k" * 48

Clients = Callable[[SignalingServer], Awaitable[WsClient]]


def link(room: str = "ops", name: str = "Ann", ttl: float = 3600, **permissions: Any) -> str:
    return issue(SECRET, Grant(room, name, time.time() + ttl, **permissions))


async def join(client: WsClient, token: str, room: str = "ops") -> dict[str, Any]:
    await client.send({"type": "join", "room": room, "token": token})
    return await client.expect("joined")


async def refused(client: WsClient, message: dict[str, Any], code: str) -> None:
    await client.send(message)
    error = await client.expect("error", code=code, fatal=True)
    assert error["message"]
    assert await client.closed() == 1008


async def test_a_token_admits_its_bearer_under_the_token_s_name(
        make_server: ServerFactory, client_factory: Clients) -> None:
    server = await make_server(token_secret=SECRET)
    ann = await client_factory(server)
    # The join's own name is not used: the token names the member.
    await ann.send({"type": "join", "room": "ops", "name": "Mallory", "token": link()})
    joined = await ann.expect("joined")
    assert joined["you"]["name"] == "Ann"
    assert joined["permissions"] == {"listen_only": False, "priority": 0}


async def test_every_bad_token_is_fatal_for_its_client_only(
        make_server: ServerFactory, client_factory: Clients) -> None:
    server = await make_server(token_secret=SECRET)
    bob = await client_factory(server)
    await join(bob, link(name="Bob"))
    cases = [
        ({"type": "join", "room": "ops", "name": "Eve"}, "bad_token"),  # no token at all
        ({"type": "join", "room": "ops", "token": link(ttl=-120)}, "token_expired"),
        ({"type": "join", "room": "ops", "token": link(room="sales")}, "bad_token"),
        ({"type": "join", "room": "ops", "token": link()[:-3] + "AAA"}, "bad_token"),
        ({"type": "join", "room": "ops", "token": "x" * 5000}, "bad_token"),
    ]
    for message, code in cases:
        await refused(await client_factory(server), message, code)
    # Nothing changed for anyone else: Bob saw nobody come or go, and is alone in the room.
    await bob.ping()
    assert [m["type"] for m in bob.seen] == ["joined", "pong"]
    assert server.registry.get("ops") is not None and len(server.registry.get("ops").members) == 1


async def test_a_password_is_refused_on_a_token_server(
        make_server: ServerFactory, client_factory: Clients) -> None:
    server = await make_server(token_secret=SECRET)
    ann = await client_factory(server)
    await ann.send({"type": "join", "room": "ops", "token": link(), "password": "pw"})
    await ann.expect("error", code="bad_message", fatal=False)
    await join(ann, link())  # the session went on


async def test_without_a_secret_nothing_changes_and_a_token_is_refused(
        server: SignalingServer, client_factory: Clients) -> None:
    ann = await client_factory(server)
    joined = await ann.join("ops", "Ann", password="pw")
    assert joined["permissions"] == {"listen_only": False, "priority": 0}
    await refused(await client_factory(server),
                  {"type": "join", "room": "ops", "token": link()}, "bad_token")


async def test_a_listen_only_member_is_denied_the_floor_and_changes_nothing(
        make_server: ServerFactory, client_factory: Clients) -> None:
    server = await make_server(token_secret=SECRET)
    lee, ann = await client_factory(server), await client_factory(server)
    joined = await join(lee, link(name="Lee", listen_only=True))
    assert joined["permissions"]["listen_only"] is True
    await join(ann, link(name="Ann"))
    await lee.send({"type": "floor_request"})
    assert await lee.expect("floor_denied") == {"type": "floor_denied", "reason": "listen_only",
                                                "holder": None}
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await lee.send({"type": "floor_request"})
    denied = await lee.expect("floor_denied", reason="listen_only")
    assert denied["holder"]["name"] == "Ann"
    room = server.registry.get("ops")
    assert room is not None and room.floor.holder is not None and room.floor.queue == ()
    # Lee is never the holder, so never the media plane's speaker: its uplink is never sent on.
    assert room.members[room.floor.holder].name == "Ann"


async def test_a_listen_only_member_s_media_only_comes_down(
        make_server: ServerFactory, client_factory: Clients, router: sfu.Router) -> None:
    """Whatever its page offers (a modified page may offer sendrecv), the media plane's
    answer says sendonly and the audio it sends anyway is dropped and counted."""
    server = await make_server(token_secret=SECRET)
    lee = await client_factory(server)
    lee_id = (await join(lee, link(name="Lee", listen_only=True)))["you"]["id"]
    page = PeerClient("lee-page")
    try:
        await page.open()
        await lee.send({"type": "offer", "sdp": page.offer()})
        answer = (await lee.expect("answer"))["sdp"]
        assert "a=sendonly" in answer.split("\r\n") and "a=sendrecv" not in answer
        page.take_answer(answer)
        await page.connect()
        await lee.expect("media", state="connected")
        for _ in range(3):
            page.send_audio()
        for _ in range(200):  # bounded: the datagrams cross loopback to the router
            stats = router.peer_stats(lee_id)
            if stats is not None and stats["rtp_dropped_not_sending"] == 3:
                break
            await asyncio.sleep(0.01)
        assert stats is not None and stats["rtp_dropped_not_sending"] == 3
        assert stats["rtp_received"] == 0
    finally:
        page.close()


async def test_a_higher_priority_pre_empts_and_the_talker_is_told_by_whom(
        make_server: ServerFactory, client_factory: Clients) -> None:
    server = await make_server(token_secret=SECRET)
    ann, bob, boss = [await client_factory(server) for _ in range(3)]
    await join(ann, link(name="Ann", priority=1))
    await join(bob, link(name="Bob", priority=1))
    boss_id = (await join(boss, link(name="Boss", priority=9)))["you"]["id"]
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.send({"type": "floor_request"})  # equal priority: queued as always
    await bob.expect("floor_queued", position=1)
    await boss.send({"type": "floor_request"})
    await boss.expect("floor_granted")
    revoked = await ann.expect("floor_revoked")
    assert revoked == {"type": "floor_revoked", "reason": "preempted",
                       "by": {"id": boss_id, "name": "Boss"}}
    broadcast = await bob.expect("floor")
    while broadcast["holder"] is None or broadcast["holder"]["id"] != boss_id:
        broadcast = await bob.expect("floor")
    assert broadcast["queue_length"] == 1  # Bob still waits; Ann was not queued again
    await boss.send({"type": "floor_release"})
    await bob.expect("floor_granted")
