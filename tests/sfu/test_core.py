"""The media core's policies, without sockets: fed bytes on a fake clock (tests/sfu/memnet.py).

Each test names the rule it checks: demultiplexing, address binding and moves, consent,
reaping, DTLS driving (both roles), the speaker gate and pre-roll, fan-out, RTCP timing,
removal, and that hostile input of every kind changes nothing for anyone else.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.certificate import Certificate
from sfu.core import CoreConfig, MediaCore, OfferError
from sfu.rtcp import ReceiverReport, SenderReport, parse_rtcp
from sfu.sdp import parse_offer, select_audio
from sfu.transmit import MAX_PAYLOAD

from .memnet import Browser, Net
from .peerclient import assert_one_burst

SERVER_CERT = Certificate.generate("core-test")


def make_core(**config: float) -> MediaCore:
    return MediaCore(
        CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000, **config),  # type: ignore[arg-type]
        SERVER_CERT,
        wall_offset=1.7e9,
        rng=random.Random(7),
    )


def browser(name: str, n: int, **kwargs: object) -> Browser:
    return Browser(name, ("127.0.0.1", 50000 + n), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def net() -> Net:
    return Net(make_core())


def room_of(net: Net, *names: str) -> list[Browser]:
    return [net.connect(browser(name, i)) for i, name in enumerate(names)]


# ---------------------------------------------------------------------- ICE and DTLS


def test_a_valid_check_is_answered_and_dtls_connects(net: Net) -> None:
    a = net.join(browser("a", 1))
    net.send(a, a.binding_request())
    net.pump()
    (response,) = a.stun_responses
    assert response.message_class.name == "RESPONSE"
    assert response.attributes["XOR-MAPPED-ADDRESS"] == a.address
    a.start_dtls(net.now)
    net.pump()
    assert a.srtp is not None
    assert [(e.kind, e.peer_id, e.room_id) for e in net.events] == [("connected", "a", "r")]
    stats = net.core.peer_stats("a")
    assert stats is not None and stats["connected"] and stats["srtp_profile"] == "AEAD_AES_128_GCM"


def test_nothing_is_ever_sent_to_an_address_that_did_not_pass_a_check(net: Net) -> None:
    a = net.join(browser("a", 1))
    a.start_dtls(net.now)  # DTLS before any ICE check: from an unbound address
    net.pump()
    assert a.raw == [] and net.lost == []
    net.send(a, a.binding_request(pwd="w" * 24))  # wrongly signed check
    net.pump()
    assert a.raw == []
    assert net.core.stats()["dropped_unknown_source"] >= 1


def test_offer_insisting_on_passive_makes_the_core_the_dtls_client(net: Net) -> None:
    a = net.join(browser("a", 1, setup="passive"))
    assert a.local is not None and a.local.setup == "active"
    net.pump()
    assert a.raw == []  # no ClientHello before a valid check
    net.send(a, a.binding_request())
    net.pump()
    assert a.srtp is not None  # ClientHello went to the checked address; handshake done
    assert [e.kind for e in net.events] == ["connected"]


def test_wrong_dtls_fingerprint_fails_and_removes_the_peer(net: Net) -> None:
    liar = Certificate.generate("someone-else").fingerprint_text("sha-256")
    a = net.join(browser("a", 1, fingerprint=liar))
    net.send(a, a.binding_request())
    a.start_dtls(net.now)
    net.pump()
    assert [(e.kind, e.peer_id) for e in net.events] == [("dtls_failed", "a")]
    assert "fingerprint" in net.events[0].reason
    assert net.core.peer_stats("a") is None
    assert net.core.room_stats("r") is None  # the room went with its last member


def test_consent_expires_without_checks_and_the_deadline_says_when() -> None:
    net = Net(make_core(consent_timeout=30.0))
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    last_check = net.now
    assert net.core.poll_timeout() is not None
    for _ in range(7):  # b keeps consent alive every 5 s, a stays silent
        net.advance(5.0)
        net.send(b, b.binding_request(use_candidate=False))
        net.pump()
    lost = [e for e in net.events if e.kind == "consent_lost"]
    assert [(e.peer_id, e.reason) for e in lost] == [("a", "no ICE consent for 30 s")]
    assert net.now - last_check >= 30.0
    assert net.core.peer_stats("a") is None and net.core.peer_stats("b") is not None
    assert net.core.room_stats("r")["speaker"] is None  # type: ignore[index]


def test_a_peer_that_checks_but_never_does_dtls_is_reaped() -> None:
    net = Net(make_core(consent_timeout=10.0))
    a = net.join(browser("a", 1))
    for _ in range(4):
        net.send(a, a.binding_request())
        net.advance(3.0)
    assert [(e.kind, e.peer_id) for e in net.events] == [("dtls_failed", "a")]
    assert "DTLS" in net.events[0].reason


def test_poll_timeout_is_none_without_peers_and_timers_survive_removal(net: Net) -> None:
    assert net.core.poll_timeout() is None
    (a,) = room_of(net, "a")
    assert net.core.poll_timeout() is not None
    net.core.remove_peer("a")
    assert net.core.poll_timeout() is None  # stale heap entries are skipped
    net.core.handle_timeout(net.now + 100)  # and firing them changes nothing


# ---------------------------------------------------------------------- addresses


def test_a_nominated_check_from_a_new_address_moves_media(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    moved = browser("b", 9)
    moved.local, moved.srtp, moved.ufrag = b.local, b.srtp, b.ufrag
    net.browsers[moved.address] = moved
    net.send(moved, moved.binding_request(use_candidate=False))  # a plain check: no move
    a.audio()
    net.pump()
    assert len(b.take_received()) == 1 and moved.received == []
    net.send(moved, moved.binding_request(use_candidate=True))  # nomination moves media
    a.audio()
    net.pump()
    assert len(moved.take_received()) == 1 and b.received == []
    assert net.core.peer_stats("b")["address"] == list(moved.address)  # type: ignore[index]


def test_an_address_taken_by_another_peer_is_won_back_by_its_owner_next_check(net: Net) -> None:
    """A NAT hands a's address to b: b's valid check takes it; a's own next check (from
    wherever a is now) binds a again, and a hears the room again."""
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "c", net.now)
    net.send(b, b.binding_request(), source=a.address)  # b now checks from a's old address
    net.pump()
    assert net.core.peer_stats("a")["address"] is None  # type: ignore[index]
    a_now = browser("a", 7)
    a_now.local, a_now.srtp, a_now.ufrag = a.local, a.srtp, a.ufrag
    net.browsers[a_now.address] = a_now
    net.send(a_now, a_now.binding_request(use_candidate=False))  # even without nomination
    c.audio()
    net.pump()
    assert len(a_now.take_received()) == 1
    assert net.core.peer_stats("a")["address"] == list(a_now.address)  # type: ignore[index]


# ---------------------------------------------------------------------- the floor gate


def test_only_the_speaker_is_forwarded_with_rewritten_headers(net: Net) -> None:
    a, b, c = room_of(net, "a", "b", "c")
    b.audio()  # nobody has the floor: dropped (kept only as pre-roll)
    net.pump()
    net.advance(0.35)  # ... and aged out of the pre-roll
    net.core.set_speaker("r", "a", net.now)
    sent = [a.audio(level=0x80 | i) for i in range(5)]
    b.audio()  # not the speaker
    net.pump()
    assert a.take_received() == []  # the talker never hears itself
    got_b, got_c = b.take_received(), c.take_received()
    for got in (got_b, got_c):
        assert_one_burst(got, sent, a.ssrc, [0x80 | i for i in range(5)])
    assert got_b[0].ssrc != got_c[0].ssrc  # one downlink SSRC per listener
    assert net.core.stats()["packets_forwarded"] == 10


def test_a_listen_only_peer_hears_the_room_and_its_rtp_is_dropped_unread(net: Net) -> None:
    """Its answer let it only listen: whatever it sends anyway is dropped before SRTP and
    counted, never kept as pre-roll, never forwarded, even if it were made the speaker."""
    a = net.connect(browser("a", 1))
    lee = net.connect(browser("lee", 2), listen_only=True)  # its offer says sendrecv
    for _ in range(3):
        lee.audio()
    net.pump()
    net.core.set_speaker("r", "lee", net.now)  # signaling never does this; nothing leaks
    lee.audio()
    net.pump()
    assert a.take_received() == []
    stats = net.core.peer_stats("lee")
    assert stats is not None and stats["rtp_dropped_not_sending"] == 4
    assert stats["rtp_received"] == 0 and stats["srtp_errors"] == 0
    assert stats["uplink_dropped_packet_rate"] == 0  # not the cap: the permission
    assert net.core.stats()["rtp_not_sending"] == 4
    net.core.set_speaker("r", "a", net.now)
    sent = [a.audio(level=0x90) for _ in range(3)]
    net.pump()
    assert_one_burst(lee.take_received(), sent, a.ssrc, [0x90] * 3)  # it hears the talker
    assert net.core.peer_stats("a")["rtp_dropped_not_sending"] == 0  # type: ignore[index]


def test_every_downlink_stays_gapless_across_talker_changes(net: Net) -> None:
    """Talkers never get their own packets back, yet their downlink numbering has no hole."""
    members = room_of(net, "a", "b", "c")
    for turn, talker in enumerate("abcab"):
        net.core.set_speaker("r", talker, net.now)
        speaker = members["abc".index(talker)]
        for _ in range(3 + turn):
            speaker.audio()
            net.pump()
            net.advance(0.02)
        net.core.set_speaker("r", None, net.now)
        net.advance(0.5)
    for m in members:
        got = m.take_received()
        seqs = [p.sequence for p in got]
        assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:])), (m.name, seqs)
        assert sum(p.marker for p in got) == sum(t != m.name for t in "abcab")  # turns heard
        stats = net.core.peer_stats(m.name)
        assert stats["downlink"]["packets_sent"] == len(got)  # type: ignore[index]


def test_preroll_is_flushed_on_grant_but_not_when_stale(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    early = [a.audio() for _ in range(4)]  # pressed; the floor request still travels
    net.pump()
    net.advance(0.05)
    net.core.set_speaker("r", "a", net.now)
    live = a.audio()
    net.pump()
    got = b.take_received()
    assert [p.payload for p in got] == early + [live]
    assert got[0].marker and not any(p.marker for p in got[1:])
    net.core.set_speaker("r", None, net.now)
    net.advance(0.31)  # past the tail of that turn (sfu/room.py TAIL_SECONDS)
    a.audio()
    net.pump()
    net.advance(0.31)  # older than the pre-roll window when the grant comes
    net.core.set_speaker("r", "a", net.now)
    net.pump()
    assert b.take_received() == []


def test_the_last_packets_of_a_turn_that_arrive_after_its_release_are_forwarded(net: Net) -> None:
    """The release travels on the WebSocket and may overtake the talker's last packets: they
    are the end of its last word (the tail, sfu/room.py TAIL_SECONDS)."""
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    sent = [a.audio() for _ in range(3)]
    net.pump()
    net.core.set_speaker("r", None, net.now)  # the release, ahead of the last two packets
    net.advance(0.1)
    sent += [a.audio() for _ in range(2)]
    net.pump()
    got = b.take_received()
    assert [p.payload for p in got] == sent
    assert got[0].marker and not any(p.marker for p in got[1:])  # one burst, continued
    seqs = [p.sequence for p in got]
    assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:]))
    assert net.core.peer_stats("a")["rtp_tail_forwarded"] == 2  # type: ignore[index]
    net.advance(0.25)  # 0.35 s after the release: the tail is over
    a.audio()
    net.pump()
    assert b.take_received() == [] and c.take_received() != []  # c got the 5 of the turn
    assert net.core.room_stats("r")["speaker"] is None  # type: ignore[index]


def test_a_tail_ends_when_the_next_speakers_audio_starts(net: Net) -> None:
    """Handing the floor over (a queue): the old talker's tail goes on until the new one's
    first packet, then stops; the new talker's turn is a new burst."""
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    first = a.audio()
    net.pump()
    net.core.set_speaker("r", "b", net.now)  # a released, b granted from the queue
    late = a.audio()  # still a's: forwarded
    net.pump()
    net.advance(0.02)
    fresh = b.audio()
    net.pump()
    stray = a.audio()  # after b's audio started: dropped
    net.pump()
    got = c.take_received()
    assert [p.payload for p in got] == [first, late, fresh]
    assert [bool(p.marker) for p in got] == [True, False, True]
    assert stray not in [p.payload for p in got]


def test_a_tail_ends_when_the_next_speakers_preroll_is_flushed(net: Net) -> None:
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    first = a.audio()
    net.pump()
    early = b.audio()  # b pressed; its request travels while a still talks
    net.pump()
    net.core.set_speaker("r", "b", net.now)  # b's pre-roll goes out: its audio has started
    stray = a.audio()
    net.pump()
    assert [p.payload for p in c.take_received()] == [first, early]
    assert stray is not None


def test_granted_again_during_its_own_tail_the_talker_starts_a_new_burst(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    a.audio()
    net.pump()
    net.core.set_speaker("r", None, net.now)
    net.advance(0.05)
    net.core.set_speaker("r", "a", net.now)  # a quick press again
    a.audio()
    net.pump()
    assert [bool(p.marker) for p in b.take_received()] == [True, True]


def test_a_payload_too_long_to_forward_is_dropped_and_the_next_goes_through(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    a.audio(payload=os.urandom(MAX_PAYLOAD + 1))
    fine = a.audio(payload=os.urandom(MAX_PAYLOAD))
    net.pump()
    assert [p.payload for p in b.take_received()] == [fine]
    assert net.core.peer_stats("a")["rtp_errors"] == 1  # type: ignore[index]


def test_speaker_changes_are_checked(net: Net) -> None:
    room_of(net, "a")
    with pytest.raises(KeyError):
        net.core.set_speaker("r", "nobody", net.now)
    with pytest.raises(KeyError):
        net.core.set_speaker("no-room", "a", net.now)
    net.core.set_speaker("no-room", None, net.now)  # nobody in an unknown room: fine


def test_a_room_of_fifteen_fans_out_to_fourteen(net: Net) -> None:
    members = room_of(net, *(f"m{i}" for i in range(15)))
    net.core.set_speaker("r", "m0", net.now)
    members[0].audio()
    net.pump()
    assert sum(len(m.take_received()) for m in members) == 14


# ---------------------------------------------------------------------- RTCP


def test_rtcp_sender_reports_only_after_rtp(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    for _ in range(3):
        a.audio()
        net.pump()
        net.advance(0.02)
    net.advance(1.6)  # more than one randomised 0.5-1.5 s interval
    b_reports = [p for raw in b.rtcp for p in parse_rtcp(raw)]
    a_reports = [p for raw in a.rtcp for p in parse_rtcp(raw)]
    assert any(isinstance(p, SenderReport) and p.packet_count == 3 for p in b_reports)
    assert not any(isinstance(p, SenderReport) for p in a_reports)
    rr = [p for p in a_reports if isinstance(p, ReceiverReport)]
    assert rr and rr[0].reports[0].ssrc == a.ssrc


def test_rtcp_reports_keep_coming_about_once_a_second(net: Net) -> None:
    (a,) = room_of(net, "a")
    a.audio()
    net.pump()
    a.rtcp.clear()
    net.advance(20.0)
    assert 12 <= len(a.rtcp) <= 40  # randomised 0.5-1.5 s intervals over 20 s


# ---------------------------------------------------------------------- removal and bad input


def test_remove_says_goodbye_and_is_idempotent(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.remove_peer("a")
    net.pump()
    assert a.dtls is not None and a.dtls.state == "closed"  # close_notify arrived
    net.core.remove_peer("a")
    assert net.core.peer_stats("a") is None
    assert net.core.room_stats("r")["members"] == ["b"]  # type: ignore[index]
    assert not [e for e in net.events if e.kind != "connected"]  # asked for: no event


def test_close_says_goodbye_to_everyone_and_refuses_new_peers(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.close()
    net.pump()
    assert a.dtls.state == "closed" and b.dtls.state == "closed"  # type: ignore[union-attr]
    c = browser("c", 3)
    with pytest.raises(OfferError):
        net.join(c)


def test_duplicate_peer_ids_and_bad_credentials_are_refused(net: Net) -> None:
    room_of(net, "a")
    with pytest.raises(ValueError):
        net.join(browser("a", 5))
    bad = browser("b", 6)
    selection = select_audio(parse_offer(bad.offer()))
    object.__setattr__(selection, "ice_ufrag", "bad ufrag!")
    with pytest.raises(OfferError):
        net.core.open_peer("b", "r", selection, net.now)
    assert net.core.peer_stats("b") is None
    long_mid = select_audio(parse_offer(bad.offer().replace("a=mid:0", "a=mid:" + "m" * 40)
                                        .replace("BUNDLE 0", "BUNDLE " + "m" * 40)))
    with pytest.raises(OfferError, match="MID"):
        net.core.open_peer("b", "r", long_mid, net.now)


def test_garbage_of_every_kind_changes_nothing(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    stranger = ("127.0.0.1", 9)
    garbage = [
        b"",
        b"\x00",
        b"\x00\x01\x00\x00" + os.urandom(16),  # STUN-ish, no cookie
        bytes([22, 254, 253]) + os.urandom(40),  # DTLS-ish
        bytes([0x80, 111]) + os.urandom(60),  # SRTP-ish
        bytes([0x80, 200]) + os.urandom(30),  # SRTCP-ish
        bytes([0xFF]) * 100,  # outside every RFC 7983 range
        os.urandom(1500),
    ]
    for g in garbage:
        net.core.handle_datagram(net.now, stranger, g)
        net.send(a, g)  # from a bound address too: SRTP auth / DTLS must reject it
    net.pump()
    assert net.lost == []
    payload = a.audio()
    net.pump()
    assert [p.payload for p in b.take_received()] == [payload]
    assert net.core.peer_stats("a")["srtp_errors"] >= 1  # type: ignore[index]
    stats = net.core.stats()
    assert stats["dropped_unknown_source"] >= 1 and stats["dropped_unknown_kind"] >= 2
    lifecycle = [e.kind for e in net.events if not e.kind.startswith("speaker_")]
    assert lifecycle == ["connected", "connected"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=1600), from_bound=st.booleans(), first=st.integers(0, 255))
def test_any_datagram_is_survived(net: Net, data: bytes, from_bound: bool, first: int) -> None:
    """Straight into the demultiplexer, every first byte: nothing raises, the peer stays."""
    if net.core.peer_stats("fuzz") is None:
        net.connect(browser("fuzz", 1))
    source = ("127.0.0.1", 50001) if from_bound else ("127.0.0.1", 9)
    net.core.handle_datagram(net.now, source, bytes([first]) + data)
    while net.core.poll_transmit() is not None:
        pass
    assert net.core.peer_stats("fuzz") is not None
