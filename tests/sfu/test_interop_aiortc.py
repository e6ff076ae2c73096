"""Interop: aiortc, an independent WebRTC stack, talks through the router on loopback.

Three aiortc peers join one room through the control API (offer -> answer, ICE against our
ICE-lite port, DTLS, SRTP). One talks: the others receive its Opus payloads byte for byte and
the talker receives nothing of its own. Then the floor moves: sequence numbers at a listener
stay continuous across the change, the marker bit starts each burst and CSRC names the talker.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

aiortc = pytest.importorskip("aiortc")
import aioice.ice  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from av import AudioFrame  # noqa: E402

import sfu  # noqa: E402
from sfu.demux import Kind, classify  # noqa: E402
from sfu.rtp import parse_rtp  # noqa: E402

ROOM = "interop"


class NoiseTrack(MediaStreamTrack):
    """20 ms frames of quiet random noise: every Opus packet differs, so payloads are unique."""

    kind = "audio"

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._pts / 48000
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        samples = (self._rng.standard_normal(960) * 3000).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


@dataclass
class Member:
    name: str
    pc: RTCPeerConnection
    sent: list[tuple[int, bytes]] = field(default_factory=list)  # (ssrc, payload) as sent
    received: list = field(default_factory=list)  # sfu.rtp.RtpPacket as received (decrypted)
    ssrc: int = 0


def _hook(member: Member) -> None:
    """Record plaintext RTP as the member's stack sends and receives it."""
    (transceiver,) = member.pc.getTransceivers()
    dtls = transceiver.sender.transport
    original_send = dtls._send_rtp

    async def send_rtp(data: bytes) -> None:
        if classify(data) is Kind.RTP:
            packet = parse_rtp(data)
            member.sent.append((packet.ssrc, packet.payload))
            member.ssrc = packet.ssrc
        await original_send(data)

    dtls._send_rtp = send_rtp
    receiver = transceiver.receiver
    original_handle = receiver._handle_rtp_packet

    async def handle_rtp(packet, arrival_time_ms: int) -> None:
        member.received.append(parse_rtp(packet.serialize()))
        await original_handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp


@pytest.fixture
async def router(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[sfu.Router]:
    # aioice leaves loopback out when it gathers; on this test's loopback-only path we want it.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    r = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    yield r
    await r.close()


async def _join(router: sfu.Router, name: str, seed: int, events: asyncio.Queue) -> Member:
    # iceServers=[]: aiortc would otherwise add a public STUN server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(NoiseTrack(seed), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    answer = router.add_peer(name, ROOM, pc.localDescription.sdp)
    assert "a=ice-lite" in answer and "a=setup:passive" in answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    member = Member(name, pc)
    _hook(member)
    return member


async def _wait_connected(events: asyncio.Queue, names: set[str]) -> None:
    pending = set(names)
    while pending:
        event = await asyncio.wait_for(events.get(), 10)
        assert event.kind == "connected", event
        pending.discard(event.peer_id)


def _from(member: Member, talker: Member) -> list:
    return [p for p in member.received if p.csrcs == [talker.ssrc]]


def _assert_intact(listener: Member, talker: Member) -> None:
    """What the listener got from the talker is a contiguous run of what the talker sent."""
    got = [p.payload for p in _from(listener, talker)]
    assert len(got) >= 20, f"{listener.name} got only {len(got)} packets from {talker.name}"
    sent = [payload for _, payload in talker.sent]
    start = sent.index(got[0])
    assert got == sent[start : start + len(got)]


async def test_three_aiortc_peers_talk_through_the_router(router: sfu.Router) -> None:
    events: asyncio.Queue = asyncio.Queue()
    router.add_listener(events.put_nowait)
    a = await _join(router, "a", 1, events)
    b = await _join(router, "b", 2, events)
    c = await _join(router, "c", 3, events)
    members = (a, b, c)
    try:
        await _wait_connected(events, {"a", "b", "c"})
        # Everyone sends all the time, but nobody has the floor yet: nothing is forwarded.
        await asyncio.sleep(0.5)
        assert all(not m.received for m in members)

        router.set_speaker(ROOM, "a")
        await asyncio.sleep(1.5)
        router.set_speaker(ROOM, "b")
        await asyncio.sleep(1.5)
        router.set_speaker(ROOM, None)
        await asyncio.sleep(0.3)

        for listener in (b, c):
            _assert_intact(listener, a)
        for listener in (a, c):
            _assert_intact(listener, b)
        # The talker never hears itself.
        assert not _from(a, a) and not _from(b, b)

        # c saw both bursts on one downlink stream: one SSRC, sequence numbers with no gap or
        # repeat across the talker change, a marker bit exactly at each burst start.
        stream = c.received
        assert len({p.ssrc for p in stream}) == 1
        seqs = [p.sequence for p in stream]
        assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:])), seqs
        csrc_changes = [i for i in range(1, len(stream)) if stream[i].csrcs != stream[i - 1].csrcs]
        assert len(csrc_changes) == 1
        switch = csrc_changes[0]
        assert stream[0].marker and stream[switch].marker
        assert sum(p.marker for p in stream) == 2
        # The timestamp moved forward across the switch (by the wall-clock gap, >= one frame).
        gap = (stream[switch].timestamp - stream[switch - 1].timestamp) % 2**32
        assert 960 <= gap < 48000

        stats = router.peer_stats("c")
        assert stats is not None and stats["connected"] and stats["dtls"] == "connected"
        assert stats["srtp_errors"] == 0
        room = router.room_stats(ROOM)
        assert room is not None and room["packets_forwarded"] > 0
    finally:
        for m in members:
            await m.pc.close()


async def test_rtcp_reports_flow_both_ways(router: sfu.Router) -> None:
    """Our SR/RR reach aiortc and aiortc's reports are parsed into downlink quality."""
    events: asyncio.Queue = asyncio.Queue()
    router.add_listener(events.put_nowait)
    a = await _join(router, "a", 4, events)
    b = await _join(router, "b", 5, events)
    try:
        await _wait_connected(events, {"a", "b"})
        router.set_speaker(ROOM, "a")
        # aiortc sends RTCP every ~1-2 s (randomised); wait for a report on our downlink.
        for _ in range(60):
            await asyncio.sleep(0.1)
            stats = router.peer_stats("b")
            if stats and stats["downlink"].get("rtt_ms") is not None:
                break
        stats = router.peer_stats("b")
        assert stats is not None
        assert stats["rtcp_sent"] >= 1 and stats["rtcp_received"] >= 1
        assert stats["downlink"]["packets_sent"] > 0
        assert stats["downlink"].get("rtt_ms") is not None
        a_stats = router.peer_stats("a")
        assert a_stats is not None and a_stats["uplink"]["packets_received"] > 0
    finally:
        for m in (a, b):
            await m.pc.close()
