"""Fixtures of the cluster tests: a real redis-server, and stores on it or on fakeredis.

``stores`` is parametrized over both backends, so one test body checks the Lua scripts and
the client code against fakeredis (its scripts run in lupa) *and* a real Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.cluster import NodeInfo, RedisStore
from tests.signaling.conftest import WsClient

from .helpers import TIMEOUT, MakeStore, flush
from .redis_server import REDIS_SERVER, RedisServer

NO_REDIS = "redis-server is not installed (Debian package redis-server; ci/test installs it)"


def need_redis_server() -> None:
    if REDIS_SERVER is None:
        pytest.skip(NO_REDIS)


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session (``redis_url`` empties it for each test)."""
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    """The URL of a running, empty redis-server on 127.0.0.1."""
    flush(shared_redis.port)
    return shared_redis.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it may stop and start it)."""
    need_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(params=["fakeredis", "redis-server"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """``await stores(node_id, **options)``: a store on this test's backend (all stores of a
    test share it); ``node_id`` None makes an observer. Every store is closed at the end."""
    made: list[RedisStore] = []
    if request.param == "fakeredis":
        import fakeredis

        server = fakeredis.FakeServer()

        async def make(node_id: str | None = "node-a", **options: Any) -> RedisStore:
            node = NodeInfo(node_id, started_at=time.time()) if node_id else None
            store = RedisStore(fakeredis.FakeAsyncRedis(server=server), node, **options)
            made.append(store)
            return store
    else:
        url = request.getfixturevalue("redis_url")

        async def make(node_id: str | None = "node-a", **options: Any) -> RedisStore:
            node = NodeInfo(node_id, started_at=time.time()) if node_id else None
            store = await RedisStore.connect(url, node, **options, timeout=TIMEOUT)
            made.append(store)
            return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[WsClient]]:
    """Protocol clients a test opened (``test_bridge.ws_client``), closed at the end."""
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.ws.close()
