"""Say-again end to end: ``walkie serve --replay`` as an operator starts it (signaling and a
media worker process), members as synthetic clients (JSON over a WebSocket, our own ICE,
DTLS and SRTP, real Opus frames). A member who joins after a transmission replays it and
receives the very Opus packets the talker sent; another listener receives nothing of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from tests.signaling.conftest import WsClient
from tests.signaling.replaykit import listed, media_up, talk_turn

from .serverproc import Serve

opus_frames = pytest.importorskip("bench.audio").encode_loop


async def test_a_late_joiner_replays_a_transmission_and_gets_the_same_opus_packets(
        serve: Callable[..., Serve]) -> None:
    server = serve("--replay", "60")
    ws_url = server.url.replace("http", "ws") + "/ws"
    frames = opus_frames("tone", 0.6)  # 30 frames of a real Opus tone
    sockets: list[WsClient] = []
    peers = []

    async def member(name: str) -> WsClient:
        client = WsClient(await connect(ws_url, open_timeout=10))
        sockets.append(client)
        return client

    try:
        ann, cy = await member("Ann"), await member("Cy")
        assert (await ann.join("ops", "Ann"))["replay"] == {"seconds": 60, "transmissions": []}
        await cy.join("ops", "Cy")
        ann_peer, cy_peer = await media_up(ann, "ann"), await media_up(cy, "cy")
        peers += [ann_peer, cy_peer]
        sent = await talk_turn(ann, ann_peer, frames)
        (kept,) = await listed(cy, 1)
        assert kept["talker"]["name"] == "Ann" and 550 <= kept["duration_ms"] <= 650
        heard_live = [p.payload for p in await cy_peer.drain()]
        assert heard_live == sent

        bob = await member("Bob")
        joined = await bob.join("ops", "Bob")
        assert joined["replay"]["transmissions"] == [kept]
        bob_peer = await media_up(bob, "bob")
        peers.append(bob_peer)
        await bob.send({"type": "replay", "id": kept["id"]})
        assert (await bob.expect("replay_started", timeout=10))["id"] == kept["id"]
        assert (await bob.expect("replay_ended", timeout=10))["reason"] == "done"
        replayed = await bob_peer.drain(quiet=0.5)
        assert [p.payload for p in replayed] == sent
        seqs = [p.sequence for p in replayed]
        assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:]))
        assert await cy_peer.drain(quiet=0.3) == []
        # The worker's counters reach /healthz with its next stats report (every second).
        for _ in range(100):
            health = server.healthz()["media"]
            if health.get("replay_packets_sent") == len(sent):
                break
            await asyncio.sleep(0.1)
        assert health["replays_started"] == 1 and health["replay_packets_sent"] == len(sent)
        assert health["replay_kept"] == 1
    finally:
        for peer in peers:
            peer.close()
        for client in sockets:
            await client.ws.close()
