"""The media core keeps each room's transmissions when asked (sfu/transmissions.py): which
packets belong to which turn (pre-roll, tail, hand-over, re-grant, leave), and nothing at all
when it is off. On a fake clock and in-memory datagrams (tests/sfu/memnet.py)."""

from __future__ import annotations

import random

import pytest

from sfu.capture import Transmission
from sfu.core import CoreConfig, MediaCore, PeerEvent
from sfu.pool.messages import Notice, decode, encode

from .memnet import Browser, Net
from .test_core import SERVER_CERT, browser

WALL = 1.7e9


def make_net(capture_seconds: float = 60.0, capture_bytes: int = 1 << 20) -> Net:
    core = MediaCore(
        CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000,
                   capture_seconds=capture_seconds, capture_bytes=capture_bytes),
        SERVER_CERT, wall_offset=WALL, rng=random.Random(7))
    return Net(core)


def room_of(net: Net, *names: str) -> list[Browser]:
    return [net.connect(browser(name, i)) for i, name in enumerate(names)]


def turns(net: Net) -> list[Transmission]:
    done = [e.transmission for e in net.events if e.kind == "transmission"]
    assert all(t is not None for t in done)
    return done  # type: ignore[return-value]


def payloads(t: Transmission) -> list[bytes]:
    return [p.payload for p in t.packets]


def test_a_turn_with_its_preroll_and_tail_is_one_transmission() -> None:
    net = make_net()
    a, b = room_of(net, "a", "b")
    early = [a.audio() for _ in range(2)]  # pressed: the request travels
    net.pump()
    started = net.now
    net.advance(0.04)
    net.core.set_speaker("r", "a", net.now)
    live = [a.audio() for _ in range(3)]
    net.pump()
    net.core.set_speaker("r", None, net.now)  # the release overtakes two packets
    net.advance(0.1)
    tail = [a.audio() for _ in range(2)]
    net.pump()
    assert turns(net) == []  # its tail may still bring packets
    net.advance(0.25)  # the tail is over: the turn ends
    (done,) = turns(net)
    assert (done.room_id, done.talker, done.truncated) == ("r", "a", False)
    assert payloads(done) == early + live + tail
    assert done.started_at == pytest.approx(started + WALL)  # the first pre-roll packet
    assert [p.sequence for p in done.packets] == sorted(p.sequence for p in done.packets)
    event = next(e for e in net.events if e.kind == "transmission")
    assert (event.peer_id, event.room_id) == ("a", "r")
    assert net.core.stats()["transmissions_kept"] == 1


def test_a_hand_over_ends_the_turn_when_the_next_talkers_audio_starts() -> None:
    net = make_net()
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    first = a.audio()
    net.pump()
    net.core.set_speaker("r", "b", net.now)
    late = a.audio()  # a's tail
    net.pump()
    fresh = b.audio()  # b's audio starts: a's turn is over
    net.pump()
    assert [(t.talker, payloads(t)) for t in turns(net)] == [("a", [first, late])]
    net.core.set_speaker("r", None, net.now)
    net.advance(0.5)
    assert [(t.talker, payloads(t)) for t in turns(net)] == [("a", [first, late]),
                                                              ("b", [fresh])]


def test_granted_again_during_its_tail_a_talker_starts_a_new_transmission() -> None:
    net = make_net()
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    one = a.audio()
    net.pump()
    net.core.set_speaker("r", None, net.now)
    net.advance(0.05)
    net.core.set_speaker("r", "a", net.now)
    two = a.audio()
    net.pump()
    net.core.set_speaker("r", None, net.now)
    net.advance(0.5)
    assert [payloads(t) for t in turns(net)] == [[one], [two]]


def test_a_talker_who_leaves_while_talking_is_recorded_all_the_same() -> None:
    net = make_net()
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    sent = [a.audio() for _ in range(3)]
    net.pump()
    net.core.remove_peer("a")
    net.pump()
    assert [(t.talker, payloads(t)) for t in turns(net)] == [("a", sent)]
    net.core.remove_peer("b")  # the room goes; nothing is left behind
    net.advance(1.0)
    assert len(turns(net)) == 1


def test_a_grant_without_audio_keeps_nothing() -> None:
    net = make_net()
    room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    net.core.set_speaker("r", None, net.now)
    net.advance(1.0)
    assert turns(net) == []


def test_the_bound_cuts_a_turn_and_says_so() -> None:
    net = make_net(capture_seconds=0.1)  # 5 packets of 20 ms past the first
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    sent = [a.audio() for _ in range(10)]
    net.pump()
    assert len(b.take_received()) == 10  # forwarding is untouched by the bound
    net.core.set_speaker("r", None, net.now)
    net.advance(0.5)
    (done,) = turns(net)
    assert done.truncated and payloads(done) == sent[:6]
    assert net.core.stats()["transmissions_cut"] == 1


def test_off_by_default_nothing_is_kept_and_no_timer_is_added() -> None:
    net = Net(MediaCore(CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000),
                        SERVER_CERT, rng=random.Random(7)))
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    a.audio()
    net.pump()
    net.core.set_speaker("r", None, net.now)
    net.advance(1.0)
    assert turns(net) == []
    assert "transmissions_kept" not in net.core.stats()
    assert net.core._rooms["r"].capture is None  # the hot path's one check


def test_a_transmission_crosses_the_control_channel() -> None:
    """The worker sends it to the signaling process inside a Notice (sfu/pool/messages.py)."""
    net = make_net()
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    for _ in range(50):
        a.audio()
    net.pump()
    net.core.set_speaker("r", None, net.now)
    net.advance(0.5)
    (event,) = [e for e in net.events if e.kind == "transmission"]
    frame = encode(Notice(event, 0))
    message = decode(frame[4:])
    assert isinstance(message, Notice) and isinstance(message.event, PeerEvent)
    assert message.event.transmission == event.transmission
    assert len(frame) < event.transmission.size + 50 * 40 + 500  # type: ignore[union-attr]
