"""Three walkie nodes on one real redis-server: one room, whichever node a socket lands on.

Signaling goes through the node each client connected to and is bridged to the room's node;
media goes straight to the owning node's UDP port (the bench's synthetic clients: real ICE,
DTLS and SRTP). Assertions are on messages and packets, never on time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from signaling.cluster import envelope as env
from signaling.messages import Ping
from tests.signaling.conftest import WsClient

from .helpers import until
from .nodes import Node, running_nodes
from .redis_server import RedisServer
from .talk import synthetic_users, talk_and_hear

#: Generous bound for a condition to come true on a loaded 2-core machine (not a measurement).
DEADLINE = 15.0


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[list[Node]]:
    """Three nodes, node-1 to node-3, on the session's redis-server."""
    async for started in running_nodes(redis_url, 3):
        yield started


@pytest.fixture
async def nodes_own_redis(own_redis: RedisServer) -> AsyncIterator[list[Node]]:
    """Three nodes on a redis-server of the test's own (it may stop and start it)."""
    async for started in running_nodes(own_redis.url, 3):
        yield started


async def ws_client(node: Node, opened: list[WsClient]) -> WsClient:
    client = WsClient(await connect(node.ws_url, open_timeout=DEADLINE))
    opened.append(client)
    return client


def owners(nodes: list[Node], room: str) -> list[str]:
    return [node.id for node in nodes if node.hosts(room)]


async def test_members_joining_through_three_nodes_share_one_room(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann, bob, cy = [await ws_client(node, clients) for node in nodes]
    joined_ann = await ann.join("ops", "Ann")
    joined_bob = await bob.join("ops", "Bob")
    joined_cy = await cy.join("ops", "Cy")
    assert owners(nodes, "ops") == [nodes[0].id]  # placed once: all idle, so the lowest id
    assert [m["name"] for m in joined_ann["members"]] == ["Ann"]
    assert [m["name"] for m in joined_bob["members"]] == ["Ann", "Bob"]
    assert [m["name"] for m in joined_cy["members"]] == ["Ann", "Bob", "Cy"]
    assert (await ann.expect("member_joined"))["member"]["name"] == "Bob"
    assert (await ann.expect("member_joined"))["member"]["name"] == "Cy"
    assert (await bob.expect("member_joined"))["member"]["name"] == "Cy"

    # the floor, requested through a non-owning node, is seen by everyone
    await cy.send({"type": "floor_request"})
    await cy.expect("floor_granted")
    for client in (ann, bob, cy):
        floor = await client.expect("floor")
        assert floor["holder"]["name"] == "Cy"
    await bob.send({"type": "floor_request"})
    assert (await bob.expect("floor_queued"))["position"] == 1
    await cy.send({"type": "floor_release"})
    await cy.expect("floor_released")
    await bob.expect("floor_granted")

    # a bridged socket that closes leaves the room at the owner
    await cy.ws.close()
    assert (await ann.expect("member_left"))["id"] == joined_cy["you"]["id"]
    health = nodes[0].server._healthz("GET")
    cluster = json.loads(health.body)["cluster"]
    assert cluster["node_id"] == nodes[0].id and cluster["owned_rooms"] == 1
    assert cluster["remote_members"] == 1 and cluster["redis_ok"] is True
    assert json.loads(nodes[1].server._healthz("GET").body)["cluster"]["bridged_clients"] == 1


async def test_errors_from_the_owner_reach_a_bridged_socket(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann = await ws_client(nodes[0], clients)
    await ann.join("locked", "Ann", password="right horse")
    bob = await ws_client(nodes[1], clients)
    await bob.send({"type": "join", "room": "locked", "name": "Bob", "password": "wrong"})
    error = await bob.expect("error")
    assert error["code"] == "bad_password" and error["fatal"] is True
    assert await bob.closed() == 1008
    cy = await ws_client(nodes[2], clients)
    await cy.send({"type": "join", "room": "locked", "name": "Cy"})  # no password: refused
    assert (await cy.expect("error"))["code"] == "bad_password"
    dee = await ws_client(nodes[2], clients)
    joined = await dee.join("locked", "Dee", password="right horse")
    assert [m["name"] for m in joined["members"]] == ["Ann", "Dee"]
    await dee.ping()  # pings of a bridged socket are answered by its ingress (handover.py)
    await dee.send({"type": "join", "room": "locked", "name": "Dee"})
    assert (await dee.expect("error"))["code"] == "already_joined"


async def test_concurrent_first_joins_end_in_one_room_on_one_owner(
        nodes: list[Node], clients: list[WsClient]) -> None:
    members = [await ws_client(nodes[i % 3], clients) for i in range(9)]
    joins = await asyncio.gather(*(c.join("race", f"user {i}") for i, c in enumerate(members)))
    hosting = owners(nodes, "race")
    assert len(hosting) == 1
    owner = next(node for node in nodes if node.id == hosting[0])
    record = await owner.cluster.store.room("race")
    assert record is not None and record.owner == owner.id
    assert len(owner.server.registry.get("race").members) == 9  # type: ignore[union-attr]
    ids = {j["you"]["id"] for j in joins}
    assert len(ids) == 9
    # the last to join saw all nine; everyone else hears of the others
    assert max(len(j["members"]) for j in joins) == 9


async def test_the_claim_is_released_when_the_last_member_leaves(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann = await ws_client(nodes[1], clients)
    bob = await ws_client(nodes[2], clients)
    await ann.join("brief", "Ann")
    await bob.join("brief", "Bob")
    store = nodes[0].cluster.store
    (owner,) = [node for node in nodes if node.hosts("brief")]
    assert (await store.room("brief")).owner == owner.id  # type: ignore[union-attr]
    await ann.ws.close()
    await bob.ws.close()
    await until(lambda: not owner.hosts("brief"), "the room is gone at its owner")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while await store.room("brief") is not None:
        assert loop.time() < deadline, "the claim was never released"
        await asyncio.sleep(0.1)
    # and the room can be created again, anywhere
    cy = await ws_client(nodes[0], clients)
    assert [m["name"] for m in (await cy.join("brief", "Cy"))["members"]] == ["Cy"]


async def test_junk_on_a_nodes_channel_changes_nothing(
        nodes: list[Node], clients: list[WsClient], redis_url: str) -> None:
    import redis.asyncio

    ann = await ws_client(nodes[0], clients)
    bob = await ws_client(nodes[1], clients)
    await ann.join("steady", "Ann")
    joined_bob = await bob.join("steady", "Bob")
    await ann.expect("member_joined")
    owner, ingress = nodes[0], nodes[1]
    bob_conn = env.conn_id(ingress.id, 1)
    junk: list[bytes] = [
        b"", b"\xff", b"null", b"{}", b"[" * 5000, b'{"v":1,"k":"gone"}',
        env.encode(env.Gone("node-x", "node-x/1"), 1)[:-1],  # truncated
        b" " * (env.MAX_ENVELOPE_BYTES + 10),
    ]
    # well-formed envelopes that are nobody's business: a socket nobody has, a replayed
    # seq, an ingress speaking about another node's socket, an owner's message to a socket
    # of another node
    plausible = [
        env.encode(env.Msg("node-x", "node-x/99", Ping()), 1),
        env.encode(env.Send("node-x", env.conn_id(owner.id, 12345), '{"type":"pong"}'), 1),
        env.encode(env.Close("node-x", env.conn_id(owner.id, 1), 1000, "bye"), 2),
    ]
    client = redis.asyncio.from_url(redis_url)
    try:
        for target in (owner, ingress):
            channel = target.cluster.bus.channel
            for raw in junk + plausible:
                await client.publish(channel, raw)
        # a replay of the ingress's own first envelope (its open) from the owner's view
        await client.publish(owner.cluster.bus.channel,
                             env.encode(env.Gone(ingress.id, bob_conn), 1))
    finally:
        await (getattr(client, "aclose", None) or client.close)()  # redis < 5.0.1: close
    await until(lambda: owner.cluster.bus.junk >= len(junk) + 1
                and ingress.cluster.bus.junk >= len(junk), "junk counted")
    # nothing changed: both members are there, talk goes on, nobody was told anything
    await bob.ping()
    await ann.ping()
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted")
    assert (await ann.expect("floor"))["holder"]["id"] == joined_bob["you"]["id"]
    assert len(owner.server.registry.get("steady").members) == 2  # type: ignore[union-attr]
    assert not [m for m in ann.seen + bob.seen if m["type"] in ("member_left", "error")]


async def test_a_join_that_needs_the_cluster_gets_try_later_while_redis_is_away(
        nodes_own_redis: list[Node], clients: list[WsClient], own_redis: RedisServer) -> None:
    nodes = nodes_own_redis
    ann = await ws_client(nodes[0], clients)
    bob = await ws_client(nodes[0], clients)
    await ann.join("local", "Ann")
    own_redis.stop()
    # a room this node hosts keeps working, new members included
    await bob.join("local", "Bob")
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted")
    # a room nobody hosts here needs Redis: try_later, the session goes on
    cy = await ws_client(nodes[1], clients)
    await cy.send({"type": "join", "room": "elsewhere", "name": "Cy"})
    error = await cy.expect("error")
    assert error["code"] == "try_later" and error["fatal"] is False and error["retry_ms"] > 0
    await cy.ping()
    health = json.loads(nodes[1].server._healthz("GET").body)["cluster"]
    assert health["redis_ok"] is False
    own_redis.start()  # back (empty: nothing persisted): joins work again
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        await cy.send({"type": "join", "room": "elsewhere", "name": "Cy"})
        reply = await _joined_or_error(cy)
        if reply["type"] == "joined":
            break
        assert reply["code"] == "try_later", reply
        assert loop.time() < deadline, "joins never worked again"
        await asyncio.sleep(0.2)


async def _joined_or_error(client: WsClient) -> dict[str, object]:
    while True:
        message = await client.recv()
        if message["type"] in ("joined", "error"):
            return message


async def test_each_listener_receives_the_talker_through_three_nodes(nodes: list[Node]) -> None:
    async with synthetic_users("radio", 3) as users:
        for user, node in zip(users, nodes):
            await user.join(node.ws_url, node.origin, DEADLINE)
        assert owners(nodes, "radio") == [nodes[0].id]
        # the media of every member, bridged or not, is on the owner's router
        assert nodes[0].router.stats()["connected_peers"] == 3
        assert nodes[1].router.stats()["connected_peers"] == 0
        listeners = users[:2]
        await talk_and_hear(users[2], listeners)  # the talker joined through node 3
    for listener in listeners:
        mon = listener.monitor
        assert mon is not None and not mon.failures and mon.unmatched == 0
