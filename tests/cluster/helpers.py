"""Helpers of the cluster tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from signaling.cluster import NodeLoad, RedisStore

#: A generous deadline for conditions that take a node TTL or two (never asserted as a time).
DEADLINE = 20.0

#: Per-command timeout of the tests' stores on a real redis-server: an outage shows as a refused
#: connection at once; a loaded 2-core machine must not make a slow reply look like one.
TIMEOUT = 5.0

MakeStore = Callable[..., Awaitable[RedisStore]]


def flush(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"FLUSHALL\r\n")
        assert conn.recv(16).startswith(b"+OK")


async def registered(make: MakeStore, node_id: str, capacity: int = 10,
                     **options: Any) -> RedisStore:
    """A store whose node is live (one record written, with a TTL long enough for a test)."""
    options.setdefault("node_ttl", 60.0)
    store = await make(node_id, **options)
    await store.beat(NodeLoad(capacity_rooms=capacity))
    return store


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after a generous deadline."""
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], what: str, deadline: float = 15.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after a generous deadline."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not condition():
        assert loop.time() < give_up, f"never true: {what}"
        await asyncio.sleep(0.02)
