"""Signaling with real media: aiortc (an independent WebRTC stack) as the browser.

The offer is aiortc's own (``addTransceiver("audio")``, ``createOffer``,
``setLocalDescription``); the answer comes from the real router through the server, ICE
and DTLS run over loopback, and the media plane's events reach the client as ``media``
messages. Loss of media (DTLS closed, consent lost) ends the session and frees the floor; a
new offer replaces the media session; with media workers (``sfu.WorkerPool``) a killed
worker means ``media`` ``reset`` and a re-offer, with membership and floor kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

aiortc = pytest.importorskip("aiortc")
import aioice.ice  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402

import sfu  # noqa: E402
from signaling.server import ServerConfig, SignalingServer  # noqa: E402

from tests.sfu.poolkit import stopped, until  # noqa: E402

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


async def test_peer_closing_its_connection_ends_its_media_not_its_membership(
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

    await bob.ping()  # the floor broadcast of Bob's queueing has arrived
    seen = len(bob.seen)
    await pc.close()  # DTLS close_notify: the router drops the peer and says "closed"
    # As a page does when it replaces its peer connection (a network handover): the media
    # session ends, the membership and the floor do not, and a new offer brings media back.
    await asyncio.sleep(0.5)
    await bob.ping()
    assert [m["type"] for m in bob.seen[seen:]] == ["pong"]
    await ann.ping()
    assert ann.seen[-1] == {"type": "pong"}  # nothing about media: the client knows
    pc2, offer2 = await aiortc_offer(pcs)
    await ann.send({"type": "offer", "sdp": offer2})
    answer2 = await ann.expect("answer")
    await pc2.setRemoteDescription(RTCSessionDescription(answer2["sdp"], "answer"))
    await ann.expect("media", state="connected", timeout=10)
    # Without audio the floor still moves on (the end-of-media timer), to the queued Bob.
    await bob.expect("floor_granted", timeout=20)
    assert {"type": "member_left", "id": a["id"]} not in bob.seen
    assert b["id"] != a["id"]


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
            assert server.hub._speaker[room] == me["id"]  # noqa: SLF001 - told to the pool
        assert ports == {port for _, port in pool.addresses}  # one room on each worker
    finally:
        await server.close()
        await pool.close()


async def media_up(client: WsClient, pcs: list[RTCPeerConnection]) -> tuple[RTCPeerConnection, str]:
    """What a page does after ``joined`` or ``media`` ``reset``: offer, apply the answer, wait
    for ``media`` ``connected``. Returns the connection and the answer."""
    pc, offer = await aiortc_offer(pcs)
    await client.send({"type": "offer", "sdp": offer})
    answer = (await client.expect("answer"))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await client.expect("media", state="connected", timeout=10)
    return pc, answer


def ufrag(sdp: str) -> str:
    return next(line for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))


async def test_a_new_offer_replaces_the_media_session_quietly(
    media_server: SignalingServer, client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    ann, bob = await client_factory(media_server), await client_factory(media_server)
    a = (await ann.join("air", "Ann"))["you"]
    await bob.join("air", "Bob")
    old_pc, first = await media_up(ann, pcs)
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.expect("floor", holder=a)
    router = media_server.media

    await ann.ping()
    mark = len(ann.seen)
    # Offer again first, close the old connection once answered: audio never stops (closing
    # it first ends the media session until the new one is up; the membership stays).
    _, second = await media_up(ann, pcs)
    await old_pc.close()
    assert ufrag(second) != ufrag(first)
    assert router.peer_stats(a["id"])["connected"]  # type: ignore[attr-defined,index]
    assert router.room_stats("air")["speaker"] == a["id"]  # type: ignore[attr-defined,index]
    await ann.ping()
    await bob.ping()
    await bob.nothing_more()  # no presence or floor change for the others
    assert [(m["type"], m.get("state")) for m in ann.seen[mark:]] == [
        ("answer", None), ("media", "connected"), ("pong", None)
    ]


@contextlib.asynccontextmanager
async def _pool_served() -> AsyncIterator[tuple[sfu.WorkerPool, SignalingServer]]:
    """The server as ``walkie serve`` runs it: media in one worker process."""
    pool = await sfu.WorkerPool.start(1, sfu.RouterConfig(host="127.0.0.1", port=0))
    server = await SignalingServer.start(
        ServerConfig(host="127.0.0.1", port=0, tick_interval=0.05), pool
    )
    try:
        yield pool, server
    finally:
        await server.close()
        await pool.close()


async def test_an_offer_while_one_is_answered_is_a_bad_message(
    client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    async with _pool_served() as (pool, server):
        ann = await client_factory(server)
        await ann.join("air", "Ann")
        pc, offer = await aiortc_offer(pcs)
        with stopped(pool.workers[0].pid):
            await ann.send({"type": "offer", "sdp": offer})  # waits for the stopped worker
            await ann.send({"type": "offer", "sdp": offer})
            error = await ann.expect("error")
            assert error == {"type": "error", "code": "bad_message", "fatal": False,
                             "message": "an offer is already being answered"}
            await ann.ping()  # the session, and the server, go on meanwhile
        answer = (await ann.expect("answer"))["sdp"]  # the first offer's
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await ann.expect("media", state="connected", timeout=10)


async def test_an_answer_for_a_member_who_left_meanwhile_frees_its_media_peer(
    client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    async with _pool_served() as (pool, server):
        ann = await client_factory(server)
        await ann.join("air", "Ann")
        _, offer = await aiortc_offer(pcs)
        worker = pool.workers[0]
        with stopped(worker.pid):
            await ann.send({"type": "offer", "sdp": offer})
            await ann.ping()  # the offer is being answered
            await ann.ws.close()
            await until(lambda: server.hub.client_count == 0, "the server noticed the close")
            assert pool.stats()["workers"][0]["placed_peers"] == 1  # type: ignore[index]
        # The answer came back to nobody: the hub removed the peer again.
        await until(lambda: pool.stats()["workers"][0]["placed_peers"] == 0, "the removal")  # type: ignore[index]
        seen = worker.report
        await until(lambda: worker.report is not seen and worker.report.router["peers"] == 0,  # type: ignore[union-attr]
                     "a report from the worker without the peer")


async def test_a_killed_worker_resets_media_and_keeps_members_floor_and_queue(
    client_factory: ClientOf, pcs: list[RTCPeerConnection]
) -> None:
    async with _pool_served() as (pool, server):
        ann, bob = await client_factory(server), await client_factory(server)
        a = (await ann.join("air", "Ann"))["you"]
        await bob.join("air", "Bob")
        pcs_a = [(await media_up(ann, pcs))[0]]
        pcs_b = [(await media_up(bob, pcs))[0]]
        await ann.send({"type": "floor_request"})
        await ann.expect("floor_granted")
        await bob.send({"type": "floor_request"})
        await bob.expect("floor_queued", position=1)
        await ann.ping()
        await bob.ping()
        assert server.hub._speaker["air"] == a["id"]  # noqa: SLF001
        mark_a, mark_b = len(ann.seen), len(bob.seen)
        await until(lambda: pool.stats()["spare_ready"], "the warm spare")

        os.kill(pool.workers[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
        for client, mine in ((ann, pcs_a), (bob, pcs_b)):
            reset = await client.expect("media", state="reset")
            assert reset["reason"] == "media worker restarted"
            await mine[-1].close()
        assert server.hub._speaker["air"] is None  # noqa: SLF001 - the media plane forgot it
        # Re-establish media, without leaving: the holder speaks again once it is back.
        pcs_b.append((await media_up(bob, pcs))[0])
        assert server.hub._speaker["air"] is None  # noqa: SLF001 - bob only waits in the queue
        pcs_a.append((await media_up(ann, pcs))[0])
        assert server.hub._speaker["air"] == a["id"]  # noqa: SLF001
        await bob.send({"type": "floor_request"})
        await bob.expect("floor_queued", position=1)  # still next in the queue
        await ann.ping()
        await bob.ping()
        for client, mark in ((ann, mark_a), (bob, mark_b)):
            kinds = [(m["type"], m.get("state")) for m in client.seen[mark:]]
            assert ("member_left", None) not in kinds and ("floor", None) not in kinds
            assert kinds.count(("media", "reset")) == 1
        worker = pool.stats()["workers"][0]  # type: ignore[index]
        assert worker["restarts"] == 1 and worker["alive"]

