"""Issue 12, network handover: a member's source address changes mid-talk (a NAT rebinding,
Wi-Fi to mobile data), sans-IO on the in-memory network (tests/sfu/memnet.py).

The member keeps its ICE session, DTLS association and SRTP keys; only the address its
datagrams come from changes. The rules (sfu/ice.py, ``IceLiteSession``): a nominated check
moves media at once; a plain valid check from the new address makes it the peer's
candidate path, and the peer's first authenticated SRTP or SRTCP from there moves media;
a plain check moves it at once when the bound address has gone quiet. Nothing
unauthenticated (a spoofed check, a replayed check, forged SRTP) moves anything, and no
move ever costs consent (no ``consent_lost``: no churn for the others).
"""

from __future__ import annotations

import os

from sfu.ice import QUIET_PATH_SECONDS
from sfu.rtcp import ReceiverReport, build_receiver_report

from .memnet import Browser, Net
from .test_core import browser, make_core, room_of

ROOM = "r"


def moved_to(net: Net, old: Browser, n: int, host: str = "127.0.0.2") -> Browser:
    """The same member (same ICE, DTLS and SRTP state) sending from a new address now; the
    old address is gone (whatever the core sends there is lost)."""
    new = browser(old.name, n)
    new.address = (host, new.address[1])
    new.local, new.srtp, new.ufrag, new.pwd = old.local, old.srtp, old.ufrag, old.pwd
    new.ssrc, new.seq, new.timestamp = old.ssrc, old.seq, old.timestamp
    del net.browsers[old.address]
    net.browsers[new.address] = new
    return new


def address_of(net: Net, peer_id: str) -> tuple[str, int] | None:
    stats = net.core.peer_stats(peer_id)
    assert stats is not None
    address = stats["address"]
    return None if address is None else tuple(address)  # type: ignore[arg-type, return-value]


def receiver_report(member: Browser) -> bytes:
    assert member.srtp is not None
    return member.srtp.protect_rtcp(build_receiver_report(ReceiverReport(member.ssrc)))


def no_churn(net: Net) -> None:
    lost = [e for e in net.events if e.kind in ("consent_lost", "dtls_failed", "closed")]
    assert lost == []


def test_a_talker_whose_address_changes_is_heard_again_on_its_first_packet_after_a_check() -> None:
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    a.audio()
    net.pump()
    assert len(b.take_received()) == 1

    a2 = moved_to(net, a, 9)
    a2.audio()  # from the new address, before any check there: not forwarded, nothing sent
    net.pump()
    assert b.take_received() == []
    net.send(a2, a2.binding_request(use_candidate=False))  # a plain consent check (RFC 7675)
    net.pump()
    assert address_of(net, "a") == a.address  # a check alone, not nominated, moves nothing
    sent = a2.audio()  # the first authenticated packet from there: forwarded, and media moves
    net.pump()
    assert [p.payload for p in b.take_received()] == [sent]
    assert address_of(net, "a") == a2.address
    no_churn(net)


def test_a_listener_whose_address_changes_follows_on_its_receiver_report() -> None:
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    b2 = moved_to(net, b, 9)
    net.send(b2, b2.binding_request(use_candidate=False))
    a.audio()
    net.pump()
    assert b2.take_received() == []  # still sent to the old address (lost)
    net.send(b2, receiver_report(b2))  # its SRTCP from the new address: it listens there
    net.pump()
    assert address_of(net, "b") == b2.address
    sent = a.audio()
    net.pump()
    assert [p.payload for p in b2.take_received()] == [sent]
    no_churn(net)


def test_a_nominated_check_from_the_new_address_moves_media_at_once() -> None:
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    b2 = moved_to(net, b, 9)
    net.send(b2, b2.binding_request(use_candidate=True))  # Chromium: its selected pair
    sent = a.audio()
    net.pump()
    assert [p.payload for p in b2.take_received()] == [sent]
    no_churn(net)


def test_a_plain_check_moves_media_once_the_bound_address_went_quiet() -> None:
    """A listener that only sends consent checks (no RTCP, no nomination) is followed as
    soon as its old address has been silent for QUIET_PATH_SECONDS, long before consent
    (30 s) would end its session."""
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    b2 = moved_to(net, b, 9)
    net.advance(QUIET_PATH_SECONDS / 2)
    net.send(b2, b2.binding_request(use_candidate=False))  # the old path may still be live
    net.pump()
    assert address_of(net, "b") == b.address
    net.advance(QUIET_PATH_SECONDS / 2)
    net.send(b2, b2.binding_request(use_candidate=False))  # now it has been quiet too long
    sent = a.audio()
    net.pump()
    assert address_of(net, "b") == b2.address
    assert [p.payload for p in b2.take_received()] == [sent]
    for _ in range(3):  # consent now runs from the new address
        net.advance(15.0)
        net.send(a, a.binding_request())
        net.send(b2, b2.binding_request(use_candidate=False))
    net.pump()
    assert address_of(net, "b") == b2.address
    no_churn(net)


def test_a_backup_path_check_does_not_pull_media_off_a_live_path() -> None:
    """A full agent (Chromium) also checks pairs it does not use, without USE-CANDIDATE:
    while the bound path lives, media stays there, and stays even when that backup path
    then carries nothing authentic."""
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    backup = browser("b-backup", 9)
    backup.local, backup.srtp, backup.ufrag = b.local, b.srtp, b.ufrag
    net.browsers[backup.address] = backup
    for _ in range(3):
        net.send(b, b.binding_request())  # its selected pair, nominated, every 2.5 s
        net.send(backup, backup.binding_request(use_candidate=False))
        net.advance(2.5)
    net.send(backup, bytes([0x80, 111]) + os.urandom(100))  # garbage from the backup path
    sent = a.audio()
    net.pump()
    assert address_of(net, "b") == b.address
    assert [p.payload for p in b.take_received()] == [sent] and backup.received == []
    no_churn(net)


def test_nothing_unauthenticated_moves_media() -> None:
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    thief = ("203.0.113.9", 4444)
    net.send(b, b.binding_request(use_candidate=True, pwd="w" * 24), source=thief)  # bad MAC
    net.send(b, bytes([0x80, 111]) + os.urandom(100), source=thief)  # forged SRTP
    net.pump()
    assert address_of(net, "b") == b.address

    # A valid check copied and sent again from elsewhere: dropped, not answered, no move
    # (even nominated, and even after the bound address went quiet).
    check = b.binding_request(use_candidate=True)
    net.send(b, check)
    net.pump()
    answered = len(b.stun_responses)
    net.advance(QUIET_PATH_SECONDS + 1)
    net.send(b, check, source=thief)
    net.pump()
    assert address_of(net, "b") == b.address
    assert len(b.stun_responses) == answered
    assert not [d for d, where in net.lost if where == thief]
    no_churn(net)


def test_forged_media_from_a_candidate_path_moves_nothing() -> None:
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    other = ("127.0.0.2", 50009)
    net.send(b, b.binding_request(use_candidate=False), source=other)  # b's candidate now
    net.send(b, bytes([0x80, 111]) + os.urandom(100), source=other)  # not b's SRTP
    net.send(b, bytes([0x80, 201]) + os.urandom(60), source=other)  # nor its SRTCP
    sent = a.audio()
    net.pump()
    assert address_of(net, "b") == b.address
    assert [p.payload for p in b.take_received()] == [sent]
    no_churn(net)


def test_an_address_bound_to_another_peer_is_not_a_candidate() -> None:
    """b checks (plainly) from a's address: it is not filed as b's candidate, so a's own
    media from there keeps going to a, and b's forged-looking packets change nothing."""
    net = Net(make_core())
    a, b = room_of(net, "a", "b")
    net.core.set_speaker(ROOM, "a", net.now)
    net.send(b, b.binding_request(use_candidate=False), source=a.address)
    sent = a.audio()
    net.pump()
    assert [p.payload for p in b.take_received()] == [sent]
    assert address_of(net, "a") == a.address and address_of(net, "b") == b.address
    no_churn(net)
