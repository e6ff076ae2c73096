"""A real ``walkie serve --redis`` process that owns a room is killed with SIGKILL (with its
media worker) while members joined through two other nodes talk: every member gets the room
again from a live node on the same WebSocket (``joined``, ``media`` ``reset``
``node_failed``), re-offers, and hears the next talker (the bench's synthetic clients: real
ICE, DTLS and SRTP). A SIGTERM makes such a process drain instead, and it exits 0.

The time from the kill to each member's media being up again is recorded
(``kill_to_media_ms_<n>``), never asserted (speed belongs to bench/ and docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.walkie.serverproc import Serve

from .nodes import Node, running_nodes
from .talk import media_back, synthetic_users, talk_and_hear
from .test_bridge import DEADLINE, owners

SECRET = "0123456789abcdef0123456789abcdef"
PREFIX = "walkie-test:"  # the prefix of tests/cluster/nodes.py


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[list[Node]]:
    async for started in running_nodes(redis_url, 2, room_secret=SECRET.encode()):
        yield started


def node_process(tmp_path: Path, redis_url: str, node_id: str, *extra: str) -> Serve:
    """A node process with the default --heartbeat 0.5 and --node-ttl 2 (the ingress nodes
    of tests/cluster/nodes.py sweep every 0.2 s)."""
    return Serve(tmp_path, "--redis", redis_url, "--redis-prefix", PREFIX, "--node-id", node_id,
                 *extra, env={"WALKIE_SECRET": SECRET})


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (its media workers), by PID."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


async def owned_by(nodes: list[Node], room: str, node_id: str) -> None:
    """Claim ``room`` for the node process ``node_id`` once it is live."""
    store = nodes[0].cluster.store
    await until_async(lambda: store.alive({node_id}), lambda alive: node_id in alive,
                      f"node {node_id} is live")
    assert (await store.claim(room, node_id)).owner == node_id


async def until_async(read: Callable[[], Any], ok: Callable[[Any], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not ok(await read()):
        assert loop.time() < deadline, f"never true: {what}"
        await asyncio.sleep(0.05)


async def test_sigkill_of_the_owning_node_process_every_member_hears_again(
        nodes: list[Node], redis_url: str, tmp_path: Path, record_property: Any) -> None:
    owner = node_process(tmp_path, redis_url, "node-3")
    try:
        async with synthetic_users("radio", 3) as users:
            await owned_by(nodes, "radio", "node-3")
            for user, node in zip(users, (nodes[0], nodes[1], nodes[0])):
                await user.join(node.ws_url, node.origin, DEADLINE)
            assert owners(nodes, "radio") == []  # the room lives in the process
            await talk_and_hear(users[1], [users[0], users[2]])

            workers = children(owner.proc.pid)
            killed = time.perf_counter()
            os.kill(owner.proc.pid, signal.SIGKILL)
            for pid in workers:  # a machine that dies takes its media workers with it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            owner.proc.wait(timeout=10)

            await media_back(users, "node_failed")
            for i, user in enumerate(users):
                back = user.reoffers[-1].back_at
                assert back is not None
                record_property(f"kill_to_media_ms_{i}", round((back - killed) * 1000))
            assert len(owners(nodes, "radio")) == 1  # a live node took it over
            # the same members, the same ids: each talker is heard by the two others
            await talk_and_hear(users[2], [users[0], users[1]])
            await talk_and_hear(users[0], [users[1], users[2]])
            assert all(not u.media_failed for u in users)
    finally:
        owner.stop()


async def test_sigterm_drains_a_node_process_and_it_exits(
        nodes: list[Node], redis_url: str, tmp_path: Path, record_property: Any) -> None:
    owner = node_process(tmp_path, redis_url, "node-3")
    try:
        async with synthetic_users("calm", 2) as users:
            await owned_by(nodes, "calm", "node-3")
            for user, node in zip(users, nodes):
                await user.join(node.ws_url, node.origin, DEADLINE)
            await talk_and_hear(users[0], [users[1]])
            signalled = time.perf_counter()
            owner.proc.send_signal(signal.SIGTERM)
            await media_back(users, "room_moved")
            for i, user in enumerate(users):
                record = user.reoffers[-1]
                assert record.back_at is not None
                record_property(f"move_outage_ms_{i}", round((record.back_at - record.reset_at) * 1000))
                record_property(f"sigterm_to_media_ms_{i}", round((record.back_at - signalled) * 1000))
            assert await asyncio.to_thread(owner.proc.wait, 30) == 0
            assert "draining" in owner.output()
            assert len(owners(nodes, "calm")) == 1
            await talk_and_hear(users[1], [users[0]])
    finally:
        owner.stop()
