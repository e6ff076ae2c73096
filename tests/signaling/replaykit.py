"""Say-again in protocol tests: a member's media as a synthetic peer, and a talk turn.

A :class:`~tests.sfu.peerclient.PeerClient` (our own ICE, DTLS client and SRTP) offers on a
member's signaling socket, so the member hears the room and may talk, as a page would.
"""

from __future__ import annotations

import asyncio

from tests.sfu.peerclient import PeerClient

from .conftest import WsClient

#: A 20 ms CELT frame's TOC byte: a transmission's length comes out exact.
TOC = bytes([31 << 3])


async def media_up(client: WsClient, name: str) -> PeerClient:
    """``client`` offers; its synthetic peer connects; ``media`` ``connected`` arrives."""
    peer = PeerClient(name)
    await peer.open()
    await client.send({"type": "offer", "sdp": peer.offer()})
    answer = await client.expect("answer")
    peer.take_answer(answer["sdp"])
    await peer.connect()
    await client.expect("media", state="connected")
    return peer


async def talk_turn(client: WsClient, peer: PeerClient, frames: list[bytes] | int
                    ) -> list[bytes]:
    """Take the floor, send the frames 20 ms apart, release; returns the payloads sent."""
    if isinstance(frames, int):
        frames = [TOC + bytes([n]) * 40 for n in range(frames)]
    await client.send({"type": "floor_request"})
    await client.expect("floor_granted")
    sent = []
    for frame in frames:
        sent.append(peer.send_audio(frame))
        await asyncio.sleep(0.02)
    await client.send({"type": "floor_release"})
    await client.expect("floor_released")
    return sent


async def listed(client: WsClient, count: int) -> list[dict[str, object]]:
    """The room's list once it holds ``count`` transmissions (``replay_list`` updates)."""
    while True:
        message = await client.expect("replay_list", timeout=10.0)
        if len(message["transmissions"]) >= count:
            return message["transmissions"]
