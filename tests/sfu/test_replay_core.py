"""Say-again in the media core, sans-IO (sfu/replayer.py), on a fake clock and in-memory
datagrams (tests/sfu/memnet.py): a finished transmission is listed, a replay goes to the
member who asked and nobody else, paced as it arrived, with gapless numbering through that
member's own rewriter (and its SRTP), and live audio always stops it."""

from __future__ import annotations

import random

import pytest

from sfu.core import CoreConfig, MediaCore
from sfu.replay import ReplayEvent, ReplayLimits
from sfu.rtp import RtpPacket

from .memnet import Browser, Net
from .test_core import SERVER_CERT, browser

#: A 20 ms CELT frame's TOC byte, so that a transmission's length comes out exact.
TOC = bytes([31 << 3])


def make_core(seconds: float = 60.0, max_bytes: int = 1 << 20) -> MediaCore:
    return MediaCore(
        CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000,
                   replay=ReplayLimits(seconds, max_bytes)),
        SERVER_CERT, wall_offset=1.7e9, rng=random.Random(3),
    )


def room(net: Net, *names: str) -> list[Browser]:
    return [net.connect(browser(name, i)) for i, name in enumerate(names)]


def talk(net: Net, talker: Browser, frames: int) -> list[bytes]:
    """``talker`` holds the floor and sends ``frames`` 20 ms packets, in real pace."""
    net.core.set_speaker("r", talker.name, net.now)
    payloads = []
    for n in range(frames):
        payloads.append(talker.audio(TOC + bytes([n % 256]) * 60))
        net.pump()
        net.advance(0.02)
    return payloads


def release(net: Net) -> ReplayEvent:
    """The floor goes idle; once the turn's tail is over the transmission is kept: the
    room's list event."""
    net.core.set_speaker("r", None, net.now)
    net.advance(0.5)
    lists = replay_events(net, "replay_list")
    assert lists, "no transmission was kept"
    return lists[-1]


def replay_events(net: Net, kind: str | None = None) -> list[ReplayEvent]:
    return [e for e in net.events if isinstance(e, ReplayEvent) and (kind is None or e.kind == kind)]


def play_out(net: Net, seconds: float, step: float = 0.02) -> None:
    for _ in range(round(seconds / step)):
        net.advance(step)


def assert_gapless(packets: list[RtpPacket]) -> None:
    seqs = [p.sequence for p in packets]
    assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:])), seqs
    stamps = [p.timestamp for p in packets]
    assert all(0 < (y - x) % 2**32 < 2**31 for x, y in zip(stamps, stamps[1:])), stamps


def test_a_finished_transmission_is_listed_with_its_talker_time_and_length() -> None:
    net = Net(make_core())
    a, b = room(net, "a", "b")
    start = net.now
    talk(net, a, 25)
    listed = release(net)
    (item,) = listed.items
    assert listed.room_id == "r" and listed.peer_id == ""
    assert item.talker == "a" and item.duration == pytest.approx(0.5)
    assert item.started_at == pytest.approx(start + 1.7e9, abs=0.05)
    stats = net.core.stats()
    assert stats["replay_kept"] == 1 and stats["replay_bytes_kept"] == 25 * 61


def test_a_replay_reaches_only_the_member_who_asked_paced_and_numbered_on_its_stream() -> None:
    net = Net(make_core())
    a, b, c = room(net, "a", "b", "c")
    sent = talk(net, a, 30)
    (item,) = release(net).items
    live_b, live_c = b.take_received(), c.take_received()
    assert [p.payload for p in live_b] == sent == [p.payload for p in live_c]

    net.core.start_replay("r", "b", item.id, net.now)
    net.pump()
    (started,) = replay_events(net, "replay_started")
    assert (started.peer_id, started.transmission_id, started.items) == ("b", item.id, (item,))
    assert len(b.received) == 1  # the first packet at once, the rest at their pace
    net.advance(0.1)
    assert len(b.received) == 6  # 20 ms apart, as they arrived
    play_out(net, 1.0)
    assert [p.payload for p in b.take_received()] == sent
    assert [e.reason for e in replay_events(net, "replay_ended")] == ["done"]
    assert c.take_received() == [] and a.take_received() == []  # nobody else hears it


def test_replay_numbering_continues_the_listeners_stream_and_live_talk_continues_it() -> None:
    net = Net(make_core())
    a, b, c = room(net, "a", "b", "c")
    sent = talk(net, a, 20)
    (item,) = release(net).items
    live = b.take_received()
    c.take_received()
    net.core.start_replay("r", "b", item.id, net.now)
    play_out(net, 0.6)
    replayed = b.take_received()
    assert [p.payload for p in replayed] == sent  # the same Opus packets, never decoded
    assert [p.marker for p in replayed] == [True] + [False] * 19  # a talk burst of its own
    assert all(p.csrcs == [] for p in replayed)  # no CSRC: nobody seems to talk live
    assert all(1 not in p.extensions for p in replayed)  # no audio level either
    assert all(p.ssrc == live[0].ssrc for p in replayed)  # b's one downlink stream
    steps = {(y.timestamp - x.timestamp) % 2**32 for x, y in zip(replayed, replayed[1:])}
    assert steps == {960}  # the talker's own spacing
    assert_gapless(live + replayed)
    assert b.undecryptable == 0  # its SRTP context followed

    more = talk(net, a, 5)  # live again: b's and c's streams go on without a gap
    after_b, after_c = b.take_received(), c.take_received()
    assert [p.payload for p in after_b] == more == [p.payload for p in after_c]
    assert after_b[0].marker and after_b[0].csrcs == [a.ssrc]
    assert_gapless(live + replayed + after_b)
    assert_gapless(after_c)
    stats = net.core.peer_stats("b")
    assert stats is not None and stats["rtp_replayed"] == 20


def test_other_listeners_see_no_gap_from_someone_elses_replay() -> None:
    net = Net(make_core())
    a, b, c = room(net, "a", "b", "c")
    talk(net, a, 10)
    (item,) = release(net).items
    before = c.take_received()
    net.core.start_replay("r", "b", item.id, net.now)
    play_out(net, 0.4)
    talk(net, a, 5)
    after = c.take_received()
    assert_gapless(before + after)
    assert after[0].timestamp != before[-1].timestamp


def test_live_talk_stops_a_replay_at_once_and_the_member_is_told() -> None:
    net = Net(make_core())
    a, b = room(net, "a", "b")
    talk(net, a, 50)
    (item,) = release(net).items
    live = b.take_received()
    net.core.start_replay("r", "b", item.id, net.now)
    play_out(net, 0.2)
    replayed = b.take_received()
    assert 5 <= len(replayed) < 50
    net.core.set_speaker("r", "a", net.now)  # granted: live wins even before its audio
    net.pump()
    assert [(e.peer_id, e.reason) for e in replay_events(net, "replay_ended")] == [("b", "live")]
    play_out(net, 0.2)
    assert b.take_received() == []  # nothing more of the replay
    again = talk(net, a, 3)
    after = b.take_received()
    assert [p.payload for p in after] == again
    assert_gapless(live + replayed + after)


def test_a_tail_packet_is_live_audio_too() -> None:
    net = Net(make_core())
    a, b = room(net, "a", "b")
    talk(net, a, 10)
    (item,) = release(net).items
    b.take_received()
    talk(net, a, 10)
    net.core.set_speaker("r", None, net.now)  # released; a's last packets may still come
    net.core.start_replay("r", "b", item.id, net.now)
    net.advance(0.04)
    before = b.take_received()
    assert 10 + 2 <= len(before) <= 10 + 3
    late = a.audio(TOC + b"late")  # within the tail: forwarded, so live
    net.pump()
    assert replay_events(net, "replay_ended")[-1].reason == "live"
    after = b.take_received()
    assert [p.payload for p in after] == [late] and after[0].marker
    assert_gapless(before + after)


def test_unknown_or_expired_ids_end_at_once_as_gone() -> None:
    net = Net(make_core(seconds=5.0))
    a, b = room(net, "a", "b")
    talk(net, a, 5)
    (item,) = release(net).items
    net.core.start_replay("r", "b", "nosuchid", net.now)
    net.pump()
    assert [(e.transmission_id, e.reason) for e in replay_events(net, "replay_ended")] == [
        ("nosuchid", "gone")]
    net.advance(6.0)  # kept 5 s after it ended: dropped, and the room is told
    assert replay_events(net, "replay_list")[-1].items == ()
    net.core.start_replay("r", "b", item.id, net.now)
    net.pump()
    assert replay_events(net, "replay_ended")[-1].reason == "gone"
    assert net.core.stats()["replay_kept"] == 0


def test_a_request_while_someone_talks_is_refused_as_live() -> None:
    net = Net(make_core())
    a, b, c = room(net, "a", "b", "c")
    talk(net, a, 5)
    (item,) = release(net).items
    net.core.set_speaker("r", "c", net.now)
    net.core.start_replay("r", "b", item.id, net.now)
    net.pump()
    assert replay_events(net, "replay_ended")[-1].reason == "live"
    assert not replay_events(net, "replay_started")


def test_stop_a_new_request_and_leaving_end_a_replay() -> None:
    net = Net(make_core())
    a, b = room(net, "a", "b")
    talk(net, a, 20)
    first = release(net).items[0]
    talk(net, a, 20)
    second = release(net).items[-1]
    net.core.start_replay("r", "b", first.id, net.now)
    net.core.start_replay("r", "b", second.id, net.now)  # replaces the first
    net.core.stop_replay("r", "b")
    net.core.stop_replay("r", "b")  # nothing plays: nothing happens
    net.pump()
    ended = [(e.transmission_id, e.reason) for e in replay_events(net, "replay_ended")]
    assert ended == [(first.id, "stopped"), (second.id, "stopped")]
    net.core.start_replay("r", "b", first.id, net.now)
    net.core.remove_peer("b")  # gone: nobody to tell, nothing more sent
    net.pump()
    net.events.clear()
    play_out(net, 0.5)
    assert replay_events(net) == []
    with pytest.raises(KeyError):
        net.core.start_replay("r", "b", first.id, net.now)


def test_the_room_keeps_nothing_once_its_last_member_left() -> None:
    net = Net(make_core())
    (a,) = room(net, "a")
    talk(net, a, 5)  # alone: still kept, for whoever comes
    release(net)
    assert net.core.stats()["replay_kept"] == 1
    net.core.remove_peer("a")
    assert net.core.stats()["replay_kept"] == 0 and net.core.stats()["replay_rooms"] == 0


def test_replay_off_keeps_nothing_and_refuses_requests() -> None:
    core = MediaCore(CoreConfig(candidate_ip="127.0.0.1", candidate_port=40000), SERVER_CERT)
    net = Net(core)
    a, b = room(net, "a", "b")
    talk(net, a, 5)
    core.set_speaker("r", None, net.now)
    net.advance(0.5)
    assert replay_events(net) == [] and "replay_kept" not in core.stats()
    with pytest.raises(ValueError, match="replay is off"):
        core.start_replay("r", "b", "x", net.now)
