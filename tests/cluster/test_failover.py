"""A node dies (kill -9) while it owns a room: the members whose sockets are on live nodes
follow the room to a live node on the same sockets (docs/CLUSTER.md, "Node failure").

Three nodes in the test's event loop on a real redis-server; ``Node.kill`` does what kill -9
does to one (no goodbye: its record expires after the TTL, its sockets and UDP port vanish).
test_failover_process.py kills a real ``walkie serve --redis`` process with SIGKILL.
Assertions are on messages and packets, never on time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from signaling.tokens import Grant, issue
from tests.signaling.conftest import WsClient

from .nodes import Node, running_nodes
from .test_bridge import DEADLINE, owners, ws_client

SECRET = b"0123456789abcdef0123456789abcdef"
TOKEN_SECRET = "t" * 40


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[list[Node]]:
    """Three nodes sharing the secret room password keys are derived with."""
    async for started in running_nodes(redis_url, 3, room_secret=SECRET):
        yield started


async def test_members_bridged_to_a_dead_node_resume_on_a_live_one(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann = await ws_client(nodes[1], clients)
    bob = await ws_client(nodes[2], clients)
    cy = await ws_client(nodes[0], clients)
    first_ann = await ann.join("ops", "Ann", password="right horse")
    first_bob = await bob.join("ops", "Bob", password="right horse")
    await cy.join("ops", "Cy", password="right horse")
    assert owners(nodes, "ops") == [nodes[0].id]
    store = nodes[1].cluster.store
    while (before := await store.room("ops")) is None or before.password_key is None:
        await asyncio.sleep(0.05)  # the owner writes the key at its next sweep
    # Bob talks when the owner dies
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted")

    await nodes[0].kill()

    # Ann and Bob (sockets on live nodes) get the room again from its new node, on the
    # same sockets, with the same ids: a second `joined`, then `media` `reset`
    for client, first in ((ann, first_ann), (bob, first_bob)):
        again = await client.expect("joined", timeout=DEADLINE)
        assert again["you"] == first["you"]
        assert again["floor"] == {"holder": None, "queue_length": 0}
        assert again["password_protected"] is True
        reset = await client.expect("media", timeout=DEADLINE)
        assert reset["state"] == "reset" and reset["reason"] == "node_failed"
    for client in (ann, bob):  # each knows the other (its `joined`, or a `member_joined`)
        while not _heard_of_both(client, first_ann, first_bob):
            await client.recv(timeout=DEADLINE)
    # Cy's socket was on the dead node: it is gone (the page reconnects through another node)
    assert await cy.closed(timeout=DEADLINE) != 1000
    live = nodes[1:]
    (owner,) = [node for node in live if node.hosts("ops")]
    record = await owner.cluster.store.room("ops")
    assert record is not None and record.owner == owner.id and record.epoch == before.epoch + 1
    assert record.password_key == before.password_key
    assert sorted(m.name for m in owner.server.registry.get("ops").members.values()) == [
        "Ann", "Bob"]  # type: ignore[union-attr]

    # the room's password still guards it at its new node
    eve = await ws_client(nodes[1], clients)
    await eve.send({"type": "join", "room": "ops", "name": "Eve", "password": "wrong"})
    assert (await eve.expect("error", timeout=DEADLINE))["code"] == "bad_password"
    dee = await ws_client(nodes[2], clients)
    joined = await dee.join("ops", "Dee", password="right horse")
    assert {m["name"] for m in joined["members"]} == {"Ann", "Bob", "Dee"}
    # and the floor works for the resumed members
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted", timeout=DEADLINE)
    await _floor_with_holder(bob, first_ann["you"]["name"])
    health = owner.server._healthz("GET")
    assert health.status == 200


@pytest.fixture
async def token_nodes(redis_url: str) -> AsyncIterator[list[Node]]:
    """Three nodes that admit with signed join links (signaling/tokens.py)."""
    async for started in running_nodes(redis_url, 3, token_secret=TOKEN_SECRET):
        yield started


async def _join_with(client: WsClient, name: str, **permissions: object) -> dict[str, object]:
    grant = Grant("ops", name, time.time() + 3600, **permissions)  # type: ignore[arg-type]
    await client.send({"type": "join", "room": "ops", "token": issue(TOKEN_SECRET, grant)})
    return await client.expect("joined", timeout=DEADLINE)


async def test_resumed_members_keep_the_permissions_of_their_tokens(
        token_nodes: list[Node], clients: list[WsClient]) -> None:
    """A listen-only member stays listen-only and priorities still pre-empt after the
    room's node died: the permissions travel with the resume (cluster/handover.py), since
    no token is checked again there."""
    nodes = token_nodes
    ann = await ws_client(nodes[1], clients)
    lee = await ws_client(nodes[2], clients)
    boss = await ws_client(nodes[1], clients)
    first = {"Ann": await _join_with(ann, "Ann", priority=1),
             "Lee": await _join_with(lee, "Lee", listen_only=True),
             "Boss": await _join_with(boss, "Boss", priority=9)}
    assert owners(nodes, "ops") == [nodes[0].id]
    assert first["Lee"]["permissions"] == {"listen_only": True, "priority": 0}

    await nodes[0].kill()

    for name, client in (("Ann", ann), ("Lee", lee), ("Boss", boss)):
        again = await client.expect("joined", timeout=DEADLINE)
        assert again["you"] == first[name]["you"]
        assert again["permissions"] == first[name]["permissions"], name
        assert (await client.expect("media", timeout=DEADLINE))["reason"] == "node_failed"
    (owner,) = [node for node in nodes[1:] if node.hosts("ops")]
    room = owner.server.registry.get("ops")
    assert room is not None
    assert {(m.name, m.listen_only, m.priority) for m in room.members.values()} == {
        ("Ann", False, 1), ("Lee", True, 0), ("Boss", False, 9)}
    # and they still act: Lee is denied, Boss pre-empts Ann
    await lee.send({"type": "floor_request"})
    await lee.expect("floor_denied", timeout=DEADLINE, reason="listen_only")
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted", timeout=DEADLINE)
    await boss.send({"type": "floor_request"})
    await boss.expect("floor_granted", timeout=DEADLINE)
    revoked = await ann.expect("floor_revoked", timeout=DEADLINE)
    assert revoked["reason"] == "preempted" and revoked["by"] == first["Boss"]["you"]


def _heard_of_both(client: WsClient, *joined: dict[str, object]) -> bool:
    """The last ``joined`` plus the ``member_joined`` after it name both members."""
    last = max(i for i, m in enumerate(client.seen) if m["type"] == "joined")
    ids = {m["id"] for m in client.seen[last]["members"]}
    ids.update(m["member"]["id"] for m in client.seen[last:] if m["type"] == "member_joined")
    return ids >= {j["you"]["id"] for j in joined}  # type: ignore[index]


async def _floor_with_holder(client: WsClient, name: str) -> None:
    """Until a ``floor`` broadcast names ``name`` as the holder (older ones are skipped)."""
    while True:
        floor = await client.expect("floor", timeout=DEADLINE)
        if floor["holder"] is not None and floor["holder"]["name"] == name:
            return


async def test_an_ingress_that_becomes_the_owner_resumes_its_own_sockets(
        nodes: list[Node], clients: list[WsClient]) -> None:
    """Both members bridged from node-2 to node-1: node-2 is the only one to place the room
    again, and takes it itself (the least loaded live node): its sockets become local."""
    ann = await ws_client(nodes[1], clients)
    bob = await ws_client(nodes[1], clients)
    first = [await ann.join("pair", "Ann"), await bob.join("pair", "Bob")]
    assert owners(nodes, "pair") == [nodes[0].id]
    await nodes[2].cluster.store.set_draining(True)  # so that placement picks node-2
    await nodes[0].kill()
    for client, joined in zip((ann, bob), first):
        again = await client.expect("joined", timeout=DEADLINE)
        assert again["you"] == joined["you"]
        assert (await client.expect("media", timeout=DEADLINE))["reason"] == "node_failed"
    assert owners(nodes[1:], "pair") == [nodes[1].id]
    assert nodes[1].cluster.bridge.health()["bridged_clients"] == 0
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await _floor_with_holder(bob, "Ann")


async def test_a_join_on_its_way_to_a_dying_node_is_told_to_try_again(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann = await ws_client(nodes[1], clients)
    await ann.join("late", "Ann")
    assert owners(nodes, "late") == [nodes[0].id]
    await nodes[0].kill()
    bob = await ws_client(nodes[2], clients)
    # until node-1's record expires, a join is sent to it and lost; then it is placed again
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        await bob.send({"type": "join", "room": "late", "name": "Bob"})
        reply = await _joined_or_error(bob)
        if reply["type"] == "joined":
            break
        assert reply["code"] == "try_later" and reply["fatal"] is False, reply
        assert loop.time() < deadline, "never joined"
        await asyncio.sleep(0.2)
    assert {m["name"] for m in reply["members"]} == {"Ann", "Bob"}  # type: ignore[union-attr]


async def _joined_or_error(client: WsClient) -> dict[str, object]:
    while True:
        message = await client.recv(timeout=DEADLINE)
        if message["type"] in ("joined", "error"):
            return message


async def test_a_protected_room_whose_key_never_reached_redis_is_not_resumed_open(
        nodes: list[Node], clients: list[WsClient]) -> None:
    """The owner died before its sweep wrote the room's password key: the new node must not
    re-create the room without its password; the sockets close (1012) and the pages join
    again, with the password."""
    for node in nodes:  # no sweep: no key is ever written (as if the owner died at once)
        node.cluster._sweeper.cancel()  # type: ignore[union-attr]
    nodes[0].cluster.bridge._save_password_keys = _nothing  # type: ignore[method-assign]
    ann = await ws_client(nodes[1], clients)
    await ann.join("vault", "Ann", password="right horse")
    assert owners(nodes, "vault") == [nodes[0].id]
    record = await nodes[1].cluster.store.room("vault")
    assert record is not None and record.password_key is None
    await nodes[0].kill()
    await asyncio.sleep(1.5)  # nodes[0]'s record expires (node_ttl 1 s in tests/cluster)
    await nodes[1].cluster.bridge.sweep()
    assert await ann.closed(timeout=DEADLINE) == 1012
    assert not [m for m in ann.seen if m["type"] == "joined"][1:]
    bob = await ws_client(nodes[2], clients)
    await bob.send({"type": "join", "room": "vault", "name": "Bob"})
    reply = await bob.recv(timeout=DEADLINE)
    assert reply["type"] == "joined" and reply["password_protected"] is False  # a new room


async def _nothing(*_: object) -> None:
    return None
