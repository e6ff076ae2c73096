"""End to end: two pages joined through two different cluster nodes hear each other, the
room's node is killed with SIGKILL, and both hear each other again without a click.

Three `walkie serve --redis` processes on one redis-server of the test's own: the room is
claimed for node-c before anyone joins, Ann's page is served (and its WebSocket open) by
node-a, Ben's by node-b, so both are bridged to node-c and send their audio to node-c's UDP
port. Each hears the other's 440 Hz fake mic. Then node-c and its media worker get SIGKILL
(by PID, checked to be the processes this test started). Nobody clicks: within the node TTL
node-a or node-b takes the room over, each page gets a second `joined` (same member id) and
`media` `reset` (`node_failed`) on the WebSocket it has, offers again, and its audio now goes
to the new node. Ann and Ben then talk in turn and hear each other again.

The time from the kill to each page being ready again is recorded (`kill_to_ready_ms_<name>`),
never asserted (speed belongs to bench/).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from signaling.cluster import RedisStore
from tests.cluster.redis_server import REDIS_SERVER, RedisServer

from . import roomkit as rk
from .harness import Server, start_server

pytestmark = pytest.mark.browser

SECRET = "0123456789abcdef0123456789abcdef"
PREFIX = "walkie-e2e:"
RECOVERY_TIMEOUT_S = 30.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; ci/test "
                    "installs it)")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def cluster_node(tmp_path: Path, redis: RedisServer, node_id: str) -> Server:
    return start_server(tmp_path, "--redis", redis.url, "--redis-prefix", PREFIX,
                        "--node-id", node_id, "--secret", SECRET)


def claim_for(redis: RedisServer, room: str, node_id: str) -> None:
    async def claim() -> None:
        store = await RedisStore.connect(redis.url, None, prefix=PREFIX)
        try:
            deadline = time.monotonic() + 20
            while node_id not in await store.alive({node_id}):
                assert time.monotonic() < deadline, f"node {node_id} never registered"
                await asyncio.sleep(0.05)
            assert (await store.claim(room, node_id)).owner == node_id
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs a loop in this thread
        pool.submit(asyncio.run, claim()).result(timeout=60)


def children(server: Server) -> list[int]:
    pids = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        pids.extend(int(c) for c in (task / "children").read_text().split())
    return [pid for pid in pids if server.is_parent_of(pid)]


def talk_and_hear(talker: Any, listener: Any, talker_name: str) -> None:
    rk.hold(talker)
    rk.wait_floor(talker, "talking")
    rk.wait_talker(listener, talker_name)
    assert 430 <= rk.wait_tone(listener) <= 450
    rk.let_go(talker)
    rk.wait_talker(listener, None)


def test_two_pages_through_two_nodes_hear_each_other_after_the_room_node_is_killed(
        browser: Any, redis: RedisServer, tmp_path: Path, record_property: Any) -> None:
    room = "fail-" + secrets.token_hex(3)
    node_a = cluster_node(tmp_path, redis, "node-a")
    node_b = cluster_node(tmp_path, redis, "node-b")
    node_c = cluster_node(tmp_path, redis, "node-c")
    try:
        claim_for(redis, room, "node-c")
        context = browser.new_context()
        pages: dict[str, Any] = {}
        logs: dict[str, rk.SocketLog] = {}
        for name, node in (("Ann", node_a), ("Ben", node_b)):
            pages[name] = context.new_page()
            logs[name] = rk.SocketLog(pages[name])
            pages[name].goto(node.room_url(room, name))
        ann, ben = pages["Ann"], pages["Ben"]
        for page in (ann, ben):
            rk.wait_ready(page)
            rk.wait_members(page, 2)
        assert node_c.healthz()["members"] == 2  # both bridged to node-c
        talk_and_hear(ann, ben, "Ann")
        talk_and_hear(ben, ann, "Ben")
        before = {name: rk.state(page) for name, page in pages.items()}

        workers = children(node_c)
        assert workers, "node-c has no media worker"
        killed = time.time()
        os.kill(node_c.proc.pid, signal.SIGKILL)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node_c.proc.wait(timeout=10)

        for name, page in pages.items():
            page.wait_for_function(
                "() => window.walkie.mediaResets >= 1 && window.walkie.connection === 'ready'",
                timeout=RECOVERY_TIMEOUT_S * 1000)
            record_property(f"kill_to_ready_ms_{name}", round((time.time() - killed) * 1000))
        for name, page in pages.items():
            rk.wait_members(page, 2)
            now = rk.state(page)
            assert now["you"] == before[name]["you"], name
            assert now["talker"] is None
            log = logs[name]
            assert len(log.sockets) == 1, f"{name} opened another WebSocket"
            kinds = [m["type"] for m in log.received()]
            assert kinds.count("joined") == 2, kinds
            assert {"type": "media", "state": "reset", "reason": "node_failed"} in log.received()
        health = [node_a.healthz()["rooms"], node_b.healthz()["rooms"]]
        assert sorted(health) == [0, 1], health  # one live node took the room over

        talk_and_hear(ann, ben, "Ann")
        talk_and_hear(ben, ann, "Ben")
        for name, log in logs.items():  # still the first socket, and what came on it
            assert len(log.sockets) == 1, (name, [m["type"] for m in log.received(0)])
        context.close()
    finally:
        for node in (node_a, node_b, node_c):
            node.stop()
