"""Signaling with real media: aiortc (an independent WebRTC stack) as the browser.

The offer is aiortc's own (``addTransceiver("audio")``, ``createOffer``,
``setLocalDescription``); the answer comes from the real router through the server, ICE
and DTLS run over loopback, and the media plane's events reach the client as ``media``
messages. Loss of media (DTLS closed, consent lost) ends the session and frees the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

aiortc = pytest.importorskip("aiortc")
import aioice.ice  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402

import sfu  # noqa: E402
from signaling.server import ServerConfig, SignalingServer  # noqa: E402

from .conftest import WsClient  # noqa: E402

ClientOf = Callable[[SignalingServer], Awaitable[WsClient]]


async def _start(consent_timeout: float) -> tuple[sfu.Router, SignalingServer]:
    router = await sfu.Router.start(
        sfu.RouterConfig(host="127.0.0.1", port=0, consent_timeout=consent_timeout)
    )
    server = await SignalingServer.start(
        ServerConfig(host="127.0.0.1", port=0, tick_interval=0.05), router
    )
    return router, server


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice skips 127.0.0.1 when gathering; give it loopback so ICE stays on this machine.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@contextlib.asynccontextmanager
async def _served(consent_timeout: float) -> AsyncIterator[SignalingServer]:
    router, server = await _start(consent_timeout)
    try:
        yield server
    finally:
        await server.close()
        await router.close()


@pytest.fixture
async def media_server() -> AsyncIterator[SignalingServer]:
    async with _served(consent_timeout=30.0) as server:
        yield server


@pytest.fixture
async def impatient_server() -> AsyncIterator[SignalingServer]:
    """Consent is lost after 1.5 s without a valid ICE check (30 s in production)."""
    async with _served(consent_timeout=1.5) as server:
        yield server


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


async def aiortc_offer(pcs: list[RTCPeerConnection]) -> tuple[RTCPeerConnection, str]:
    # iceServers=[]: aiortc would otherwise add a public STUN server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs.append(pc)
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_offer_answer_media_connected_and_speaker(
    media_server: SignalingServer, client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    ann = await client_factory(media_server)
    me = (await ann.join("air", "Ann"))["you"]
    pc, offer = await aiortc_offer(pcs)
    await ann.send({"type": "offer", "sdp": offer})
    answer = await ann.expect("answer")
    assert answer["sdp"].startswith("v=0")
    assert "a=ice-lite" in answer["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await ann.expect("media", state="connected", timeout=10)

    router = media_server.media
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    assert router.room_stats("air")["speaker"] == me["id"]  # type: ignore[attr-defined,index]
    await ann.send({"type": "floor_release"})
    await ann.expect("floor_released")
    await ann.ping()
    assert router.room_stats("air")["speaker"] is None  # type: ignore[attr-defined,index]

    # Leaving frees the media plane's peer.
    await ann.ws.close()
    for _ in range(100):
        if router.peer_stats(me["id"]) is None:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    assert router.peer_stats(me["id"]) is None  # type: ignore[attr-defined]


async def test_peer_closing_its_connection_ends_the_session(
    media_server: SignalingServer, client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    ann, bob = await client_factory(media_server), await client_factory(media_server)
    a = (await ann.join("air", "Ann"))["you"]
    b = (await bob.join("air", "Bob"))["you"]
    pc, offer = await aiortc_offer(pcs)
    await ann.send({"type": "offer", "sdp": offer})
    answer = await ann.expect("answer")
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await ann.expect("media", state="connected", timeout=10)
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_queued")

    await pc.close()  # DTLS close_notify: the router drops the peer and says "closed"
    failed = await ann.expect("media", state="failed", timeout=10)
    assert failed["reason"]
    assert await ann.closed() == 1011
    # The floor moved on at once and the others were told.
    await bob.expect("floor_granted")
    await bob.expect("member_left", id=a["id"])
    await bob.ping()
    assert bob.seen[-3:-1] == [
        {"type": "floor", "holder": b, "queue_length": 0},
        {"type": "member_left", "id": a["id"]},
    ]


async def test_a_peer_that_never_connects_loses_consent(
    impatient_server: SignalingServer, client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    ann, bob = await client_factory(impatient_server), await client_factory(impatient_server)
    a = (await ann.join("air", "Ann"))["you"]
    await bob.join("air", "Bob")
    _, offer = await aiortc_offer(pcs)
    await ann.send({"type": "offer", "sdp": offer})
    await ann.expect("answer")  # ... and never applied: no ICE check ever arrives
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    failed = await ann.expect("media", state="failed", timeout=10)
    assert "consent" in failed["reason"]
    assert await ann.closed() == 1011
    await bob.expect("floor", holder=a, queue_length=0)
    await bob.expect("floor", holder=None, queue_length=0)
    await bob.expect("member_left", id=a["id"])


async def test_rooms_spread_over_media_workers(
    client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    """walkie serve --workers 2: the hub drives a WorkerPool exactly as it drives a Router."""
    pool = await sfu.WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=0))
    server = await SignalingServer.start(
        ServerConfig(host="127.0.0.1", port=0, tick_interval=0.05), pool
    )
    try:
        ports = set()
        for room, name in (("north", "Ann"), ("south", "Bob")):
            client = await client_factory(server)
            me = (await client.join(room, name))["you"]
            pc, offer = await aiortc_offer(pcs)
            await client.send({"type": "offer", "sdp": offer})
            answer = (await client.expect("answer"))["sdp"]
            ports.add(int(answer.split(" typ host")[0].rsplit(" ", 1)[1]))
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await client.expect("media", state="connected", timeout=10)
            await client.send({"type": "floor_request"})
            await client.expect("floor_granted")
            assert pool.room_stats(room)["speaker"] == me["id"]  # type: ignore[index]
        assert ports == {port for _, port in pool.addresses}  # one room on each worker
    finally:
        await server.close()
        await pool.close()
