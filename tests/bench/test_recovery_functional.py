"""Media recovery through a real ``walkie serve`` with worker processes (docs/PROTOCOL.md
``media reset`` and re-offer): a user re-offers on its open WebSocket and media flows again,
and the bench's ``--kill-worker`` mode sees every member of the killed worker's rooms hear
audio again. Functional results only: no figure is judged.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bench.audio import encode_loop
from bench.client import SyntheticClient
from bench.context import BenchContext
from bench.server import ServerProcess

from .benchrun import run_bench


async def test_a_second_offer_on_the_same_websocket_replaces_the_media_session() -> None:
    server = ServerProcess.start(max_users=4, core=None)
    ctx = BenchContext(encode_loop("tone", 0.4), sample_every=1, shared_socket=True)
    clients: list[SyntheticClient] = []
    try:
        ws_url = server.url.replace("http://", "ws://") + "ws"
        origin = server.url.rstrip("/")
        clients = [SyntheticClient(ctx, "recover", f"user {i}") for i in range(3)]
        for client in clients:
            await client.join(ws_url, origin, 10.0)
        talker, listeners = clients[0], clients[1:]
        talker.start_talking()
        verdict, _ = await talker.request_floor()
        assert verdict == "granted"
        first = talker.granted()
        for tick in range(20):
            talker.send_frame(tick)
            await asyncio.sleep(0.02)
        # a client-initiated re-offer (as after media reset): new session, same WebSocket
        old = talker.session
        talker.media_reset("test: re-offer")
        await talker.wait_reoffer()
        record = talker.reoffers[0]
        assert record.back_at is not None, record.errors
        assert talker.session is not old and talker.session.srtp is not None
        for tick in range(20, 60):  # the holder's new session speaks at once
            talker.send_frame(tick)
            await asyncio.sleep(0.02)
        last = talker.stop_talking()
        await asyncio.sleep(0.3)
        await talker.release_floor()
    finally:
        for client in clients:
            await client.close()
        if ctx.mux is not None:
            ctx.mux.close()
        server.stop()
    for listener in listeners:
        mon = listener.monitor
        assert mon is not None
        received = {seq for csrc, a, b in mon.runs if csrc == talker.ssrc for seq in range(a, b + 1)}
        # everything sent on the new session arrived (the old one may lose a few at the switch)
        assert set(range(first + 20, last + 1)) <= received
        assert not mon.failures and mon.unmatched == 0


def test_kill_worker_mode_end_to_end(tmp_path: Path) -> None:
    r = run_bench(
        ["--rooms", "2", "--users", "4", "--duration", "14", "--talk", "10", "10",
         "--kill-worker", "4", "--server-arg=--workers=2", "--floor-seconds", "0.3",
         "--no-pin", "--quiet", "--seed", "5"],
        tmp_path,
    )
    i = r["incident"]
    detail = json.dumps({k: r.get(k) for k in ("incident", "outage", "accounting")}, indent=1)[:6000]
    assert i["kind"] == "kill-worker" and i["error"] is None and i["killed_pid"], detail
    assert i["new_worker"] is not None, detail  # the server started a new worker
    assert i["affected_rooms"] >= 1 and i["affected_members"] >= 4, detail
    assert i["members_not_reconnected_count"] == 0, detail
    assert i["reoffer_ms"]["n"] == i["affected_members"], detail
    assert i["audio_back_ms"]["n"] >= 1, detail  # listeners heard their talker again
    assert r["outage"]["resets"] >= i["affected_members"], detail
    assert r["accounting"]["missing"] == 0, detail  # the outage is outage, not loss
    assert r["checks"]["all_joined"] and r["checks"]["payload_intact"], detail
