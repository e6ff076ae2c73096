"""The media core forwarding RED (RFC 2198): as-is to RED listeners, the primary block to the
others, plain Opus to everyone; malformed RED dropped and counted (tests/sfu/memnet.py)."""

from __future__ import annotations

import os

from sfu.red import build_red, split_red
from sfu.rtp import RtpPacket

from .memnet import Browser, Net
from .test_core import browser, make_core


def red_room() -> tuple[Net, Browser, Browser, Browser, Browser]:
    """A RED talker (Chromium's PTs), a RED listener like it, a RED listener with other PTs
    (Opus 109, RED 100) and a plain Opus listener (109), all connected in room r."""
    net = Net(make_core())
    talker = net.connect(browser("t", 1, red_pt=63))
    same = net.connect(browser("same", 2, red_pt=63))
    other = net.connect(browser("other", 3, opus_pt=109, red_pt=100))
    plain = net.connect(browser("plain", 4, opus_pt=109))
    return net, talker, same, other, plain


def talk_red(net: Net, talker: Browser, frames: list[bytes]) -> list[bytes]:
    """Send each frame as Chromium does: RED with the previous frame as redundancy."""
    payloads = []
    for k, frame in enumerate(frames):
        redundant = [(960, frames[k - 1])] if k else []
        payloads.append(talker.audio(build_red(111, frame, redundant), payload_type=63))
        net.pump()
        net.advance(0.02)
    return payloads


def check_stream(got: list[RtpPacket], pt: int, count: int, first_pt: int) -> None:
    """One burst under payload type ``pt`` (its first packet, plain Opus, under ``first_pt``):
    marker first, gapless, 960 ticks apart."""
    assert len(got) == count and [p.payload_type for p in got] == [first_pt] + [pt] * (count - 1)
    assert [p.marker for p in got] == [True] + [False] * (count - 1)
    assert all((b.sequence - a.sequence) % 65536 == 1 for a, b in zip(got, got[1:]))
    assert all((b.timestamp - a.timestamp) % 2**32 == 960 for a, b in zip(got, got[1:]))


def test_red_goes_as_is_to_red_listeners_and_as_its_primary_to_the_others() -> None:
    net, talker, same, other, plain = red_room()
    net.core.set_speaker("r", "t", net.now)
    frames = [os.urandom(60 + k) for k in range(6)]
    sent = talk_red(net, talker, frames)
    got_same, got_other, got_plain = same.take_received(), other.take_received(), plain.take_received()
    assert talker.take_received() == []
    check_stream(got_same, 63, 6, 111)
    check_stream(got_other, 100, 6, 109)
    check_stream(got_plain, 109, 6, 109)
    assert [p.payload for p in got_same] == [frames[0]] + sent[1:]  # then byte for byte
    # Same blocks for the listener whose Opus PT is 109: re-tagged, nothing else changed.
    assert [split_red(p.payload, 109) for p in got_other[1:]] == [
        split_red(s, 111) for s in sent[1:]]
    assert [p.payload for p in got_plain] == frames  # the primary block alone: plain Opus
    # The three listeners see the same numbering (the room's), so one timeline for all.
    assert [p.timestamp for p in got_same] == [p.timestamp for p in got_plain]
    assert net.core.stats()["packets_forwarded"] == 18
    payload_bytes = 2 * sum(map(len, sent[1:])) + sum(map(len, frames)) + 2 * len(frames[0])
    assert net.core.stats()["payload_bytes_forwarded"] == payload_bytes


def test_a_bursts_first_packet_goes_without_its_redundancy() -> None:
    """Its redundant block is what the talker sent before the burst (here: the end of its
    previous turn); the listeners heard that already, or must not hear it now."""
    net, talker, same, _other, plain = red_room()
    net.core.set_speaker("r", "t", net.now)
    talk_red(net, talker, [b"old" * 20])
    net.core.set_speaker("r", None, net.now)
    net.advance(0.4)  # past the tail: the next press is a new burst
    net.core.set_speaker("r", "t", net.now)
    first = talker.audio(build_red(111, b"new" * 20, [(960, b"old" * 20)]), payload_type=63)
    second = talker.audio(build_red(111, b"next" * 20, [(960, b"new" * 20)]), payload_type=63)
    net.pump()
    got = same.take_received()[1:]  # after the first turn's packet
    assert [(p.marker, p.payload_type, p.payload) for p in got] == [
        (True, 111, b"new" * 20), (False, 63, second)]
    assert first != got[0].payload
    assert [p.payload for p in plain.take_received()][1:] == [b"new" * 20, b"next" * 20]


def test_plain_opus_from_a_red_talker_or_a_plain_one_reaches_everyone_as_opus() -> None:
    net, talker, same, other, plain = red_room()
    net.core.set_speaker("r", "t", net.now)
    frame = talker.audio(payload_type=111)  # Chromium mixes in plain Opus when RED won't fit
    net.pump()
    got = [same.take_received(), other.take_received(), plain.take_received()]
    assert [[(p.payload_type, p.payload) for p in g] for g in got] == [
        [(111, frame)], [(109, frame)], [(109, frame)]]  # each listener's own Opus PT
    net.core.set_speaker("r", "plain", net.now)
    net.advance(0.4)
    spoken = [plain.audio() for _ in range(3)]
    net.pump()
    for listener, pt in ((talker, 111), (same, 111), (other, 109)):
        got_l = listener.take_received()
        assert [(p.payload_type, p.payload) for p in got_l] == [(pt, s) for s in spoken]


def test_a_burst_mixing_red_and_opus_stays_one_gapless_stream() -> None:
    net, talker, same, _other, plain = red_room()
    net.core.set_speaker("r", "t", net.now)
    talker.audio(build_red(111, b"A" * 40), payload_type=63)  # the burst's first
    b = talker.audio(b"B" * 40, payload_type=111)
    c = talker.audio(build_red(111, b"C" * 40, [(960, b"B" * 40)]), payload_type=63)
    net.pump()
    got_same, got_plain = same.take_received(), plain.take_received()
    assert [(p.payload_type, p.payload) for p in got_same] == [
        (111, b"A" * 40), (111, b), (63, c)]
    assert [p.payload for p in got_plain] == [b"A" * 40, b"B" * 40, b"C" * 40]
    for got in (got_same, got_plain):
        assert all((y.sequence - x.sequence) % 65536 == 1 for x, y in zip(got, got[1:]))


def test_malformed_red_is_dropped_counted_and_changes_nothing_else() -> None:
    net, talker, same, other, plain = red_room()
    net.core.set_speaker("r", "t", net.now)
    talk_red(net, talker, [b"start" * 10])  # the burst's first packet
    for listener in (same, other, plain):
        listener.take_received()
    bad = [
        bytes([0x80 | 111, 15, 0, 200, 111]) + b"short",  # block length past the end
        bytes([0x80 | 111, 15, 0, 1] * 5 + [111]) + b"x" * 9,  # five redundant blocks
        bytes([0x80 | 0, 15, 0, 1, 111]) + b"xy",  # PCMU inside
        bytes([0x80 | 111, 15, 0, 2, 111]) + b"ab",  # no primary
    ]
    for payload in bad:
        talker.audio(payload, payload_type=63)
    net.pump()
    assert same.take_received() == other.take_received() == plain.take_received() == []
    assert net.core.stats()["red_dropped"] == len(bad)
    assert net.core.peer_stats("t")["red_dropped"] == len(bad)  # type: ignore[index]
    good = talker.audio(build_red(111, b"ok" * 20), payload_type=63)
    net.pump()
    assert [p.payload for p in same.take_received()] == [good]
    assert [p.payload for p in plain.take_received()] == [b"ok" * 20]


def test_red_sent_before_the_grant_is_flushed_from_the_preroll_per_listener() -> None:
    net, talker, same, _other, plain = red_room()
    frames = [os.urandom(50) for _ in range(3)]
    early = talk_red(net, talker, frames)  # pressed: the floor request still travels
    assert same.take_received() == []
    net.core.set_speaker("r", "t", net.now)
    net.pump()
    assert [p.payload for p in same.take_received()] == frames[:1] + early[1:]
    assert [p.payload for p in plain.take_received()] == frames


def test_red_from_a_peer_that_did_not_negotiate_it_is_forwarded_as_it_came() -> None:
    """Without RED negotiated the payload type is not looked at (as before RED existed):
    a packet under another payload type is the peer's own business, never parsed as RED."""
    net = Net(make_core())
    talker = net.connect(browser("t", 1))
    listener = net.connect(browser("l", 2, red_pt=63))
    net.core.set_speaker("r", "t", net.now)
    junk = talker.audio(bytes([0x80 | 111, 15, 0, 200, 111]), payload_type=63)
    net.pump()
    assert [(p.payload_type, p.payload) for p in listener.take_received()] == [(111, junk)]
    assert net.core.stats()["red_dropped"] == 0
