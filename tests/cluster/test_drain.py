"""A node drains (what SIGTERM does to ``walkie serve --redis``): its rooms move to other
nodes at a quiet moment and every member follows on the socket it has (docs/CLUSTER.md,
"Draining"). Three nodes in the test's event loop on a real redis-server; assertions on
messages and packets, never on time (the outage of a move is recorded, not asserted).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.signaling.conftest import WsClient

from .nodes import Node, running_nodes
from .helpers import until
from .talk import media_back, synthetic_users, talk_and_hear
from .test_bridge import DEADLINE, owners, ws_client


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[list[Node]]:
    async for started in running_nodes(redis_url, 3, room_secret=b"s" * 32):
        yield started


async def moved(client: WsClient, first: dict[str, Any]) -> dict[str, Any]:
    """The room's new node welcomed ``client`` back: a second ``joined`` (same id), then
    ``media`` ``reset`` ``room_moved``; returns that ``joined``."""
    again = await client.expect("joined", timeout=DEADLINE)
    assert again["you"] == first["you"]
    assert again["floor"] == {"holder": None, "queue_length": 0}
    reset = await client.expect("media", timeout=DEADLINE)
    assert (reset["state"], reset["reason"]) == ("reset", "room_moved")
    return again


async def test_a_drain_moves_a_room_with_members_on_three_nodes(
        nodes: list[Node], clients: list[WsClient], record_property: Any) -> None:
    async with synthetic_users("radio", 2) as users:
        ann = await ws_client(nodes[0], clients)
        await ann.join("radio", "Ann")  # a socket of the draining node itself
        assert owners(nodes, "radio") == [nodes[0].id]
        for user, node in zip(users, nodes[1:]):
            await user.join(node.ws_url, node.origin, DEADLINE)
        await talk_and_hear(users[0], [users[1]])

        drain = asyncio.create_task(nodes[0].cluster.drain(30.0))
        await until(lambda: nodes[0].cluster.bridge.draining, "draining")
        health = nodes[0].server._healthz("GET")
        assert health.status == 503
        assert json.loads(health.body)["status"] == "draining"
        assert json.loads(health.body)["cluster"]["draining"] is True

        await media_back(users, "room_moved")
        # the node's own sockets (resumed on the new node meanwhile) close once its rooms
        # have moved: the page reconnects through another node
        assert await ann.closed(timeout=DEADLINE) == 1012
        assert await drain == 1
        (owner,) = owners(nodes, "radio")
        assert owner != nodes[0].id
        for i, user in enumerate(users):
            record = user.reoffers[-1]
            assert record.back_at is not None
            record_property(f"move_outage_ms_{i}", round((record.back_at - record.reset_at) * 1000))
        # each keeps hearing the next talker
        await talk_and_hear(users[1], [users[0]])
        await talk_and_hear(users[0], [users[1]])
        assert all(not u.media_failed for u in users)


async def test_a_room_whose_floor_is_held_moves_once_it_is_released(
        nodes: list[Node], clients: list[WsClient]) -> None:
    bob = await ws_client(nodes[1], clients)
    cy = await ws_client(nodes[2], clients)
    first = {"bob": await bob.join("busy", "Bob"), "cy": await cy.join("busy", "Cy")}
    quiet = await ws_client(nodes[2], clients)
    first_quiet = await quiet.join("quiet", "Quinn")  # placed on node-2 (node-1 has a room)
    node_of_quiet = owners(nodes, "quiet")
    assert owners(nodes, "busy") == [nodes[0].id] and node_of_quiet != [nodes[0].id]
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted")
    await cy.send({"type": "floor_request"})
    await cy.expect("floor_queued")

    drain = asyncio.create_task(nodes[0].cluster.drain(30.0))
    await until(lambda: nodes[0].cluster.bridge.draining, "draining")
    # a new room is never placed on a draining node, even through its own socket
    dee = await ws_client(nodes[0], clients)
    await dee.join("fresh", "Dee")
    assert owners(nodes, "fresh") not in ([], [nodes[0].id])
    # the talk goes on: several looks at the room later it has not moved
    for _ in range(10):
        await asyncio.sleep(0.05)
        assert nodes[0].hosts("busy") and not drain.done()
    await bob.ping()
    assert not [m for m in bob.seen + cy.seen if m["type"] == "joined" and m is not first["bob"]
                and m is not first["cy"]]
    # Bob lets go: Cy gets the floor, still on the old node; Cy lets go: quiet, it moves
    await bob.send({"type": "floor_release"})
    await cy.expect("floor_granted")
    await cy.send({"type": "floor_release"})
    for name, client in (("bob", bob), ("cy", cy)):
        await moved(client, first[name])
    assert await drain == 1
    assert owners(nodes, "busy") not in ([], [nodes[0].id])
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted", timeout=DEADLINE)
    assert not [m for m in quiet.seen if m["type"] == "joined" and m is not first_quiet]


async def test_after_the_drain_timeout_the_held_floor_is_revoked_and_the_room_moves(
        nodes: list[Node], clients: list[WsClient]) -> None:
    ann = await ws_client(nodes[1], clients)
    bob = await ws_client(nodes[2], clients)
    first_ann = await ann.join("long", "Ann")
    first_bob = await bob.join("long", "Bob")
    assert owners(nodes, "long") == [nodes[0].id]
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    drain = asyncio.create_task(nodes[0].cluster.drain(0.3))
    revoked = await ann.expect("floor_revoked", timeout=DEADLINE)
    assert revoked["reason"] == "room_moved"
    await moved(ann, first_ann)
    await moved(bob, first_bob)
    assert await drain == 1
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_granted", timeout=DEADLINE)
