"""Say-again across nodes: the room's node keeps its audio; a member whose socket is on
another node asks for a replay through the bridge and hears it from the room's node (two
walkie nodes on one real redis-server, synthetic media peers)."""

from __future__ import annotations

from tests.signaling.conftest import WsClient
from tests.signaling.replaykit import listed, media_up, talk_turn

from .nodes import running_nodes
from .test_bridge import owners, ws_client


async def test_a_bridged_member_replays_a_transmission_kept_by_the_rooms_node(
        redis_url: str, clients: list[WsClient]) -> None:
    async for nodes in running_nodes(redis_url, 2, replay_seconds=60,
                                     media={"replay_seconds": 60}):
        ann = await ws_client(nodes[0], clients)
        assert (await ann.join("ops", "Ann"))["replay"]["seconds"] == 60
        assert owners(nodes, "ops") == [nodes[0].id]
        ann_peer = await media_up(ann, "ann")
        peers = [ann_peer]
        try:
            sent = await talk_turn(ann, ann_peer, 20)
            (kept,) = await listed(ann, 1)
            bob = await ws_client(nodes[1], clients)  # bridged to the room's node
            joined = await bob.join("ops", "Bob")
            assert joined["replay"]["transmissions"] == [kept]
            bob_peer = await media_up(bob, "bob")  # media straight to the room's node
            peers.append(bob_peer)
            await bob.send({"type": "replay", "id": kept["id"]})
            assert (await bob.expect("replay_started"))["talker"]["name"] == "Ann"
            assert (await bob.expect("replay_ended", timeout=10.0))["reason"] == "done"
            assert [p.payload for p in await bob_peer.drain()] == sent
            await bob.send({"type": "replay", "id": "x"})  # unknown there too
            assert (await bob.expect("replay_ended"))["reason"] == "gone"
            assert await ann_peer.drain() == []
        finally:
            for peer in peers:
                peer.close()
