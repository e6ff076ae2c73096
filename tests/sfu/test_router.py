"""The router (the I/O driver of the media core) over real UDP on 127.0.0.1.

The core's policies are tested without sockets in test_core.py; here synthetic peers
(tests/sfu/peerclient.py) check that the driver carries them onto the wire: batched and
plain socket I/O, timers (consent, RTCP) on the real clock, events, control calls that send
(goodbyes, pre-roll), and that bad datagrams sent over UDP change nothing for anyone else.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest

import sfu
from sfu.certificate import Certificate

from .peerclient import PeerClient, assert_one_burst

ROOM = "r"


@pytest.fixture(params=[True, False], ids=["batched", "plain"])
async def router(request: pytest.FixtureRequest) -> AsyncIterator[sfu.Router]:
    config = sfu.RouterConfig(host="127.0.0.1", port=0, batch_syscalls=request.param)
    r = await sfu.Router.start(config)
    assert r.stats()["batched_io"] is (request.param and sys.platform == "linux")
    yield r
    await r.close()


@pytest.fixture
def events(router: sfu.Router) -> list[sfu.PeerEvent]:
    got: list[sfu.PeerEvent] = []
    router.add_listener(got.append)
    return got


async def _members(router: sfu.Router, *names: str) -> list[PeerClient]:
    clients = []
    for name in names:
        c = PeerClient(name)
        await c.join(router, ROOM)
        await c.connect()
        assert c.srtp is not None
        clients.append(c)
    return clients


async def test_connect_emits_event_and_answers_checks(
    router: sfu.Router, events: list[sfu.PeerEvent]
) -> None:
    (a,) = await _members(router, "a")
    try:
        assert [(e.kind, e.peer_id, e.room_id) for e in events] == [("connected", "a", ROOM)]
        response = await a.check(use_candidate=False)  # consent check after connect
        assert response.message_class.name == "RESPONSE"
        assert response.attributes["XOR-MAPPED-ADDRESS"] == ("127.0.0.1", a.port)
        stats = router.peer_stats("a")
        assert stats is not None and stats["connected"]
        assert stats["srtp_profile"] == "AEAD_AES_128_GCM"
    finally:
        a.close()


async def test_only_the_speaker_is_forwarded_with_rewritten_headers(router: sfu.Router) -> None:
    a, b, c = await _members(router, "a", "b", "c")
    try:
        b.send_audio()  # nobody has the floor: dropped (kept only as pre-roll)
        await asyncio.sleep(0.35)  # ... and aged out of the pre-roll
        router.set_speaker(ROOM, "a")
        sent = [a.send_audio(level=0x80 | i) for i in range(5)]
        b.send_audio()  # not the speaker
        got_b, got_c, got_a = await b.drain(), await c.drain(), await a.drain()
        assert got_a == []  # the talker never hears itself
        for got in (got_b, got_c):
            assert_one_burst(got, sent, a.ssrc, [0x80 | i for i in range(5)])
        assert got_b[0].ssrc != got_c[0].ssrc  # one downlink SSRC per listener
    finally:
        for x in (a, b, c):
            x.close()


async def test_a_listen_only_peer_is_answered_sendonly_and_never_heard(
        router: sfu.Router) -> None:
    (a,) = await _members(router, "a")
    lee = PeerClient("lee")
    try:
        answer = await lee.join(router, ROOM, listen_only=True)  # it offered sendrecv
        assert "a=sendonly" in answer.split("\r\n") and "a=sendrecv" not in answer
        await lee.connect()
        router.set_speaker(ROOM, "lee")  # signaling never does this; nothing leaks anyway
        for _ in range(4):
            lee.send_audio()
        assert await a.drain() == []
        stats = router.peer_stats("lee")
        assert stats is not None and stats["rtp_dropped_not_sending"] == 4
        assert router.stats()["rtp_not_sending"] == 4
        router.set_speaker(ROOM, "a")
        sent = [a.send_audio() for _ in range(3)]
        assert [p.payload for p in await lee.drain()] == sent  # it hears the room
    finally:
        a.close()
        lee.close()


async def test_preroll_is_flushed_on_grant(router: sfu.Router) -> None:
    a, b = await _members(router, "a", "b")
    try:
        early = [a.send_audio() for _ in range(4)]  # pressed; floor request still travelling
        await asyncio.sleep(0.05)
        router.set_speaker(ROOM, "a")
        live = a.send_audio()
        got = await b.drain()
        assert [p.payload for p in got] == early + [live]
        assert got[0].marker and not any(p.marker for p in got[1:])
    finally:
        a.close()
        b.close()


async def test_a_release_does_not_overtake_the_packets_already_queued(
    router: sfu.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy worker finds its control channel and its socket readable at once: the speaker
    change reads the socket first, so the talker's packets queued before it go out as the
    speaker's, not as a tail (which is off here, to see this rule alone)."""
    monkeypatch.setattr(sfu.room, "TAIL_SECONDS", 0.0)
    a, b = await _members(router, "a", "b")
    try:
        router.set_speaker(ROOM, "a")
        sent = [a.send_audio() for _ in range(5)]  # in the router's socket, not read yet
        time.sleep(0.05)  # the loop is busy elsewhere (deliberately blocked)
        router.set_speaker(ROOM, None)
        got = await b.drain()
        assert [p.payload for p in got] == sent
    finally:
        a.close()
        b.close()


async def test_garbage_datagrams_change_nothing(router: sfu.Router) -> None:
    a, b = await _members(router, "a", "b")
    router.set_speaker(ROOM, "a")
    stranger = PeerClient("stranger")
    await stranger.open()
    stranger.server = a.server
    try:
        garbage = [
            b"",
            b"\x00",
            b"\x00\x01\x00\x00" + os.urandom(16),  # STUN-ish, no cookie
            bytes([22, 254, 253]) + os.urandom(40),  # DTLS from an unbound address
            bytes([0x80, 111]) + os.urandom(60),  # SRTP from an unbound address
            bytes([0x80, 200]) + os.urandom(30),  # SRTCP from an unbound address
            bytes([0xFF]) * 100,  # outside every RFC 7983 range
            os.urandom(1500),
        ]
        for g in garbage:
            stranger.send(g)
            a.send(g)  # from a bound address too: SRTP auth / DTLS must reject it
        # a wrongly signed check gets no answer at all
        stranger.server_ufrag, stranger.server_pwd = a.server_ufrag, "x" * 24
        stranger.ufrag = a.ufrag
        stranger.send(stranger.binding_request(pwd="y" * 24))
        with pytest.raises(TimeoutError):
            await stranger.recv(timeout=0.3)
        # the room still works
        payload = a.send_audio()
        got = await b.drain()
        assert [p.payload for p in got] == [payload]
        stats = router.peer_stats("a")
        assert stats is not None and stats["srtp_errors"] >= 1
        assert router.stats()["dropped_unknown_source"] >= 1
    finally:
        for x in (a, b, stranger):
            x.close()


async def test_wrong_dtls_fingerprint_fails_the_peer(
    router: sfu.Router, events: list[sfu.PeerEvent]
) -> None:
    other = Certificate.generate("someone-else").fingerprint_text("sha-256")
    c = PeerClient("liar", fingerprint=other)
    await c.join(router, ROOM)
    try:
        await c.connect()
        for _ in range(50):
            if events:
                break
            await asyncio.sleep(0.02)
        assert [(e.kind, e.peer_id) for e in events] == [("dtls_failed", "liar")]
        assert "fingerprint" in events[0].reason
        assert router.peer_stats("liar") is None
        assert router.room_stats(ROOM) is None  # the room went with its last member
    finally:
        c.close()


async def test_consent_loss_removes_the_peer() -> None:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0, consent_timeout=0.6))
    events: list[sfu.PeerEvent] = []
    router.add_listener(events.append)
    try:
        a, b = await _members(router, "a", "b")
        router.set_speaker(ROOM, "a")
        for _ in range(8):  # b keeps consent alive, a goes silent
            await asyncio.sleep(0.15)
            await b.check(use_candidate=False)
        assert ("consent_lost", "a") in [(e.kind, e.peer_id) for e in events]
        assert router.peer_stats("a") is None
        assert router.peer_stats("b") is not None
        assert router.room_stats(ROOM)["speaker"] is None  # type: ignore[index]
        a.close()
        b.close()
    finally:
        await router.close()


async def test_nominated_check_from_new_address_moves_media(router: sfu.Router) -> None:
    a, b = await _members(router, "a", "b")
    router.set_speaker(ROOM, "a")
    moved = PeerClient("b-new-network")
    await moved.open()
    try:
        # b's network changes: same ICE credentials and SRTP keys, new socket.
        for attr in ("ufrag", "pwd", "server", "server_ufrag", "server_pwd", "srtp", "dtls"):
            setattr(moved, attr, getattr(b, attr))
        await moved.check(use_candidate=False)  # a plain check does not move media
        first = a.send_audio()
        assert [p.payload for p in await b.drain()] == [first]
        await moved.check(use_candidate=True)  # nomination does
        second = a.send_audio()
        assert [p.payload for p in await moved.drain()] == [second]
        assert await b.drain() == []
    finally:
        for x in (a, b, moved):
            x.close()


async def test_bad_offers_are_refused_cleanly(router: sfu.Router) -> None:
    c = PeerClient("c")
    await c.open()
    try:
        for bad, why in (
            ("not sdp at all", ""),
            (c.offer().replace("a=rtcp-mux\r\n", ""), "rtcp-mux"),
            (c.offer().replace("opus/48000/2", "PCMU/8000"), "Opus"),
            (c.offer().replace("a=fingerprint", "a=x-fingerprint"), "fingerprint"),
        ):
            with pytest.raises(sfu.OfferError) as info:
                router.add_peer("c", ROOM, bad)
            assert why.lower() in str(info.value).lower()
        assert router.stats()["peers"] == 0 and router.stats()["rooms"] == 0
        router.add_peer("c", ROOM, c.offer())
        with pytest.raises(ValueError):
            router.add_peer("c", ROOM, c.offer())  # duplicate id
        router.remove_peer("c")
        router.remove_peer("c")  # idempotent
        assert router.stats()["rooms"] == 0
    finally:
        c.close()


async def test_rtcp_sender_reports_only_after_rtp(router: sfu.Router) -> None:
    from sfu.rtcp import ReceiverReport, SenderReport, parse_rtcp

    a, b = await _members(router, "a", "b")
    try:
        router.set_speaker(ROOM, "a")
        for _ in range(3):
            a.send_audio()
            await asyncio.sleep(0.02)
        await b.drain()
        b.rtcp.clear()
        a.rtcp.clear()
        await asyncio.sleep(1.7)  # at least one randomised (0.5-1.5 s) report interval
        await a.drain(quiet=0.05)
        await b.drain(quiet=0.05)
        b_reports = [p for raw in b.rtcp for p in parse_rtcp(raw)]
        a_reports = [p for raw in a.rtcp for p in parse_rtcp(raw)]
        # b got RTP on its downlink: a sender report; a sent but received nothing: a receiver
        # report about its uplink, and no sender report (no RTP went down to it).
        assert any(isinstance(p, SenderReport) and p.packet_count == 3 for p in b_reports)
        assert not any(isinstance(p, SenderReport) for p in a_reports)
        rr = [p for p in a_reports if isinstance(p, ReceiverReport)]
        assert rr and rr[0].reports[0].ssrc == a.ssrc
    finally:
        a.close()
        b.close()


async def test_any_room_name_gets_a_valid_answer(router: sfu.Router) -> None:
    """Room ids are the caller's business: spaces, slashes or emoji must not break the SDP."""
    c = PeerClient("c")
    await c.open()
    try:
        answer = router.add_peer("c", "Café / room @ 🎙", c.offer())
        assert "a=msid:walkie-" in answer
    finally:
        c.close()


async def test_a_second_router_cannot_take_a_busy_port(router: sfu.Router) -> None:
    """Two servers must never split one port's traffic between them."""
    host, port = router.address
    with pytest.raises(OSError):
        await sfu.Router.start(sfu.RouterConfig(host=host, port=port))


async def test_a_peer_that_checks_but_never_does_dtls_is_dropped() -> None:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0, consent_timeout=0.6))
    events: list[sfu.PeerEvent] = []
    router.add_listener(events.append)
    c = PeerClient("mute")
    try:
        await c.join(router, ROOM)
        for _ in range(10):  # ICE consent stays fresh, but no DTLS handshake ever starts
            if events:
                break
            await c.check(use_candidate=True)
            await asyncio.sleep(0.15)
        assert [(e.kind, e.peer_id) for e in events] == [("dtls_failed", "mute")]
        assert "DTLS" in events[0].reason
        assert router.peer_stats("mute") is None
    finally:
        c.close()
        await router.close()


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"host": "127.0.0.1", "announced_ip": "media.example.org"}, "not an IP address"),
        ({"host": "0.0.0.0"}, "set announced_ip"),
        ({"host": "127.0.0.1", "port": 70000}, "out of range"),
    ],
)
def test_router_config_refuses_what_would_break_every_answer(
    config: dict[str, object], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        sfu.RouterConfig(**config)  # type: ignore[arg-type]
