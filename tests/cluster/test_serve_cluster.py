"""``walkie serve --redis`` as an operator runs it: two node processes on one redis-server;
and a ``walkie serve`` without it never loads the cluster's bridge nor ``redis``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from tests.signaling.conftest import WsClient
from tests.walkie.serverproc import BASE_ENV, REPO, Serve

SECRET = "0123456789abcdef0123456789abcdef"

NO_REDIS = """
import asyncio, sys
from walkie import config as cfg
from walkie.serve import serve

async def main():
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(cfg.load(["--port", "0", "--udp-port", "0"], {}),
                                     ready=ready, stop=stop))
    await ready.wait()
    stop.set()
    await task

asyncio.run(main())
loaded = sorted(m for m in sys.modules
                if m == "redis" or m.startswith(("redis.", "signaling.cluster.b",
                                                 "signaling.cluster.node")))
print("LOADED", loaded)
"""


def test_a_single_server_never_imports_redis() -> None:
    done = subprocess.run([sys.executable, "-c", NO_REDIS], cwd=REPO, env=BASE_ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout + done.stderr


async def test_two_node_processes_share_a_room(tmp_path: Path, redis_url: str) -> None:
    args = ("--redis", redis_url, "--heartbeat", "0.2", "--node-ttl", "1")
    env = {"WALKIE_SECRET": SECRET}
    one = Serve(tmp_path, *args, "--node-id", "one", env=env)
    two = None
    try:
        two = Serve(tmp_path, *args, "--node-id", "two", env=env)
        assert "cluster node one" in one.output()
        health = await asyncio.to_thread(two.healthz)
        assert health["cluster"]["node_id"] == "two" and health["cluster"]["redis_ok"]
        ann = WsClient(await connect(one.url.replace("http", "ws") + "/ws"))
        bob = WsClient(await connect(two.url.replace("http", "ws") + "/ws"))
        try:
            await ann.join("ops", "Ann", password="s3cret")
            joined = await bob.join("ops", "Bob", password="s3cret")
            assert [m["name"] for m in joined["members"]] == ["Ann", "Bob"]
            assert (await ann.expect("member_joined"))["member"]["name"] == "Bob"
        finally:
            await ann.ws.close()
            await bob.ws.close()
    finally:
        if two is not None:
            assert two.stop() == 0
        assert one.stop() == 0

