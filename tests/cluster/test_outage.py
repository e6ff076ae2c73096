"""Redis going away and coming back, against a real redis-server of the test's own."""

from __future__ import annotations

import asyncio
import logging

import pytest

from signaling.cluster import ClusterUnavailable, NodeInfo, NodeLoad, RedisStore

from .helpers import TIMEOUT, eventually
from .redis_server import RedisServer, free_port


async def test_an_unreachable_redis_is_one_clear_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(ClusterUnavailable) as caught:
        await RedisStore.connect(url, NodeInfo("node-a"), timeout=2.0)
    message = str(caught.value)
    assert "127.0.0.1" in message and "hunter2" not in message


async def test_redis_stopped_mid_test_then_back_on_its_port(
        own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="signaling.cluster.store")
    a = await RedisStore.connect(own_redis.url, NodeInfo("node-a"), heartbeat=0.1,
                                 node_ttl=2.0, timeout=TIMEOUT)
    observer = await RedisStore.connect(own_redis.url, timeout=TIMEOUT)
    try:
        a.start_heartbeat(lambda: NodeLoad(capacity_rooms=5))

        async def a_live() -> bool:
            return await observer.alive(["node-a"]) == {"node-a"}

        await eventually(a_live, "node-a registered")
        assert (await a.place("lobby")).owner == "node-a"

        own_redis.stop()
        for call in (a.room("lobby"), a.place("other"), observer.nodes(),
                     a.alive(["node-a"]), a.release("lobby", "node-a")):
            with pytest.raises(ClusterUnavailable):
                await call

        def lines(start: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]

        async def heartbeat_failing() -> bool:
            return bool(lines("Redis is unreachable")) and not a.redis_ok

        await eventually(heartbeat_failing, "the heartbeat notices the outage")
        await asyncio.sleep(5 * a.heartbeat)  # a few more failed beats
        assert len(lines("Redis is unreachable")) == 1  # once per outage, not per beat

        own_redis.start()  # a fresh server on the same port: no data at all

        async def a_back() -> bool:
            try:
                return a.redis_ok and await observer.alive(["node-a"]) == {"node-a"}
            except ClusterUnavailable:
                return False

        await eventually(a_back, "the heartbeat registers node-a again")
        assert (await observer.place("lobby")).owner == "node-a"
        assert len(lines("Redis is unreachable")) == 1
        assert lines("Redis is reachable again")
    finally:
        await a.close()
        await observer.close()


async def test_close_while_redis_is_away_does_not_raise(own_redis: RedisServer) -> None:
    a = await RedisStore.connect(own_redis.url, NodeInfo("node-a"), timeout=TIMEOUT)
    await a.beat(NodeLoad())
    own_redis.stop()
    await a.close()
