"""``walkie nodes`` against a real redis-server: the table, the JSON, the refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from signaling.cluster import NodeInfo, NodeLoad, RedisStore
from tests.walkie.serverproc import walkie

from .helpers import TIMEOUT
from .redis_server import free_port


async def nodes_command(*argv: str, env: dict[str, str] | None = None
                        ) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(walkie, "nodes", *argv, env=env)


async def test_walkie_nodes_lists_nodes_load_and_rooms(redis_url: str) -> None:
    started = time.time() - 3725  # up 1h02m05s
    a = await RedisStore.connect(redis_url, NodeInfo(
        "node-a", "https://a.example.org:8443", (("127.0.0.1", 40000), ("127.0.0.1", 40001)),
        started_at=started), node_ttl=60.0, timeout=TIMEOUT)
    b = await RedisStore.connect(redis_url, NodeInfo("node-b", started_at=started),
                                 node_ttl=60.0, timeout=TIMEOUT)
    try:
        await a.beat(NodeLoad(members=4, cpu_percent=12.5, capacity_rooms=200))
        await b.beat(NodeLoad(members=0, capacity_rooms=100))
        await b.set_draining(True)
        for room in ("lobby", "alpha", "beta"):
            await a.claim(room, "node-a")

        table = await nodes_command("--redis", redis_url)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["NODE", "STATE", "ROOMS", "MEMBERS", "CPU", "%", "UP",
                                    "SIGNALING", "MEDIA"]
        assert lines[1].split() == ["node-a", "serving", "3/200", "4", "12.5", "1h02m",
                                    "https://a.example.org:8443", "127.0.0.1:40000,",
                                    "127.0.0.1:40001"]
        assert lines[2].split() == ["node-b", "draining", "0/100", "0", "0.0", "1h02m", "-",
                                    "-"]
        assert "rooms of node-a (3): alpha, beta, lobby" in lines
        assert "rooms of node-b (0): -" in lines

        as_json = await nodes_command("--json", env={"WALKIE_REDIS": redis_url})
        assert as_json.returncode == 0, as_json.stderr
        listed = json.loads(as_json.stdout)
        assert listed["prefix"] == "walkie:"
        assert [(n["id"], n["rooms"], n["draining"], n["room_ids"]) for n in listed["nodes"]] == [
            ("node-a", 3, False, ["alpha", "beta", "lobby"]), ("node-b", 0, True, [])]
        assert listed["nodes"][0]["media"] == ["127.0.0.1:40000", "127.0.0.1:40001"]

        await a.close()  # a clean stop: gone from the listing at once
        after = json.loads((await nodes_command("--json", "--redis", redis_url)).stdout)
        assert [n["id"] for n in after["nodes"]] == ["node-b"]
        other = await nodes_command("--redis", redis_url, "--redis-prefix", "other:")
        assert other.stdout == "no live node in the cluster (key prefix other:)\n"
    finally:
        await a.close()
        await b.close()


async def test_walkie_nodes_without_redis_says_so_in_one_line() -> None:
    unreachable = await nodes_command("--redis", f"redis://:hunter2@127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2 and unreachable.stdout == ""
    assert unreachable.stderr.startswith("walkie nodes: cannot read the cluster: Redis at "
                                         "redis://:***@127.0.0.1:")
    assert len(unreachable.stderr.splitlines()) == 1 and "hunter2" not in unreachable.stderr
    missing = await nodes_command()
    assert (missing.returncode, missing.stderr) == (
        2, "walkie nodes: needs --redis URL (or the variable WALKIE_REDIS)\n")
    wrong = await nodes_command("--redis", "http://redis.example")
    assert (wrong.returncode, wrong.stderr) == (
        2, "walkie nodes: --redis must start with redis:// or rediss:// (TLS)\n")
