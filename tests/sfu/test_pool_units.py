"""The pool's parts without worker processes: placement, the wire format, the channel bound,
the back-off."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sfu
from sfu.pool.channel import CHANNEL_EOF, Channel
from sfu.pool.messages import (
    MAX_FRAME,
    ChannelError,
    Failed,
    FrameDecoder,
    Idle,
    Message,
    Notice,
    OpenPeer,
    PeerOpened,
    Ready,
    RemovePeer,
    Serve,
    SetSpeaker,
    Shutdown,
    StartFailed,
    StartReplay,
    StatsReport,
    StopReplay,
    encode,
)
from sfu.pool.placement import Placement
from sfu.replay import ReplayEvent, ReplayItem
from sfu.pool.supervisor import backoff_delay
from sfu.sdp import Fingerprint, LocalParams, parse_offer, select_audio

from .peerclient import CLIENT_CERT, make_offer

OFFER = make_offer("abcd", "p" * 22, CLIENT_CERT.fingerprint_text("sha-256"), 7, 9)

# -- placement --------------------------------------------------------------------------


def test_a_new_room_goes_to_the_least_loaded_candidate_and_stays_whole() -> None:
    placement = Placement(3)
    assert placement.choose("x", [0, 1, 2]) == 0  # all empty: the lowest index
    placement.book("a", "x", 0, opened_by=1)
    placement.book("b", "x", 0, opened_by=2)
    assert placement.choose("y", [0, 1, 2]) == 1
    placement.book("c", "y", 1, opened_by=3)
    assert placement.choose("z", [0, 1, 2]) == 2
    assert placement.choose("z", [0, 1]) == 1  # only the candidates (the ready workers)
    assert placement.choose("x", [1, 2]) == 0  # a room stays where it lives
    assert placement.choose("w", []) is None
    with pytest.raises(ValueError, match="lives on worker 0"):
        placement.book("d", "x", 1, opened_by=4)  # a room never spans workers
    with pytest.raises(ValueError, match="already exists"):
        placement.book("a", "y", 1, opened_by=5)
    assert [placement.load(i) for i in range(3)] == [2, 1, 0]
    assert [placement.room_count(i) for i in range(3)] == [1, 1, 0]


def test_ties_in_peers_go_to_fewer_rooms() -> None:
    placement = Placement(2)
    placement.book("a", "x", 0, 1)
    placement.book("b", "y", 1, 2)
    placement.book("c", "z", 1, 3)
    placement.forget("c")
    placement.book("d", "y", 1, 4)  # 1 has two peers in one room; 0 one peer
    placement.book("e", "x", 0, 5)  # now both have two peers, one room each
    placement.book("f", "v", 1, 6)
    placement.book("g", "u", 0, 7)  # three peers each; 0 has two rooms, 1 has two rooms
    assert placement.choose("new", [0, 1]) == 0  # full tie: the lowest index
    placement.forget("g")
    placement.book("h", "x", 0, 8)  # three peers each; 0: one room, 1: two rooms
    assert placement.choose("new", [0, 1]) == 0


def test_forgetting_the_last_member_frees_the_room() -> None:
    placement = Placement(2)
    placement.book("a", "x", 1, 1)
    placement.book("b", "x", 1, 2)
    assert placement.members("x") == {"a", "b"}
    assert placement.forget("a") is not None and placement.slot_of_room("x") == 1
    assert placement.forget("a") is None  # idempotent
    placement.forget("b")
    assert placement.slot_of_room("x") is None and placement.members("x") == frozenset()
    assert placement.load(1) == 0 and placement.room_count(1) == 0
    placement.book("c", "x", 0, 3)  # the room can live elsewhere now
    assert placement.slot_of_room("x") == 0


def test_incarnations_tell_a_re_offered_peer_from_the_old_one() -> None:
    placement = Placement(2)
    placement.book("a", "x", 0, opened_by=1)
    assert placement.is_current("a", 0, 1)
    assert not placement.is_current("a", 1, 1)  # another worker
    placement.forget("a")
    placement.book("a", "x", 0, opened_by=9)
    assert not placement.is_current("a", 0, 1) and placement.is_current("a", 0, 9)
    assert not placement.is_current("nobody", 0, 9)


# -- messages and frames ----------------------------------------------------------------


def _every_message() -> list[Message]:
    offer = parse_offer(OFFER)
    selection = select_audio(offer)
    local = LocalParams(
        ice_ufrag="abcd", ice_pwd="q" * 22,
        fingerprint=Fingerprint.of_certificate(b"certificate"), setup="passive",
        candidate_ip="127.0.0.1", candidate_port=40000, ssrc=5, cname="walkie-1",
        msid_stream="s", msid_track="t",
    )
    return [
        Serve(sfu.RouterConfig(port=0), 20, 1.0),
        OpenPeer(1, "a", "x", selection),
        RemovePeer("a"),
        SetSpeaker("x", None),
        SetSpeaker("x", "a"),
        Shutdown(),
        Idle(123),
        Ready(("127.0.0.1", 40000), 123),
        StartFailed("OSError", "[Errno 98] Address already in use"),
        PeerOpened(1, local),
        Failed(2, "offer", "no Opus"),
        Notice(sfu.PeerEvent("connected", "a", "x"), 1),
        StartReplay("x", "a", "5f0c9a3e21b7"),  # say-again (sfu/replayer.py)
        StopReplay("x", "a"),
        Notice(ReplayEvent("replay_list", "x", items=(
            ReplayItem("5f0c9a3e21b7", "a", 1.7e9, 4.18, False),)), 0),
        Notice(ReplayEvent("replay_ended", "x", "a", "5f0c9a3e21b7", "live"), 1),
        StatsReport(123, 0.5, {"rooms": 1, "address": ["127.0.0.1", 40000]}),
    ]


def test_every_message_survives_the_wire_in_any_chunking() -> None:
    messages = _every_message()
    stream = b"".join(encode(m) for m in messages)
    for chunk in (1, 7, 100, len(stream)):
        decoder = FrameDecoder()
        got: list[Message] = []
        for i in range(0, len(stream), chunk):
            got += decoder.feed(stream[i:i + chunk])
        assert got == messages


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


@pytest.mark.parametrize("payload", [
    _Evil(),  # a classic pickle exploit: must not even be looked up
    {"not": "a message"},
    sfu.PeerEvent("connected", "a", "x"),  # a wire type, but not a message on its own
    socket.AddressFamily.AF_INET,  # an importable class outside the list
])
def test_the_decoder_builds_control_messages_and_nothing_else(payload: object) -> None:
    body = pickle.dumps(payload, protocol=5)
    with pytest.raises(ChannelError):
        FrameDecoder().feed(struct.pack("!I", len(body)) + body)


@given(st.binary(max_size=300))
def test_garbage_is_a_channel_error_or_an_incomplete_frame(data: bytes) -> None:
    try:
        messages = FrameDecoder().feed(data)
    except ChannelError:
        return
    assert all(isinstance(m, (Serve, OpenPeer, RemovePeer, SetSpeaker, Shutdown, Idle, Ready,
                              StartFailed, PeerOpened, Failed, Notice, StatsReport))
               for m in messages)


def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    with pytest.raises(ChannelError, match="over"):
        FrameDecoder().feed(struct.pack("!I", MAX_FRAME + 1))
    with pytest.raises(ChannelError):
        encode(StatsReport(1, 0.0, {"big": "x" * MAX_FRAME}))


# -- the channel ------------------------------------------------------------------------


async def test_a_channel_carries_messages_both_ways() -> None:
    a_sock, b_sock = socket.socketpair()
    got_a: list[Message] = []
    got_b: list[Message] = []
    lost: list[str] = []
    a = await Channel.connect(a_sock, got_a.append, lost.append, 1 << 20)
    b = await Channel.connect(b_sock, got_b.append, lost.append, 1 << 20)
    messages = _every_message()
    for message in messages:
        assert a.send(message)
    assert b.send(Idle(1))
    for _ in range(200):
        if len(got_b) == len(messages) and got_a:
            break
        await asyncio.sleep(0.01)
    assert got_b == messages and got_a == [Idle(1)]
    b.close()
    for _ in range(200):
        if lost:
            break
        await asyncio.sleep(0.01)
    assert lost == [CHANNEL_EOF] and a.lost == CHANNEL_EOF and not a.send(Idle(1))


async def test_a_reader_that_never_reads_costs_the_writer_nothing_but_the_bound() -> None:
    """The other end never reads (as a SIGSTOPped worker): every send returns at once, and
    past the bound the channel reports itself broken, once."""
    ours, theirs = socket.socketpair()
    lost: list[str] = []
    channel = await Channel.connect(ours, lambda m: None, lost.append, 256 * 1024)
    sent = 0
    while channel.send(SetSpeaker("room", "peer-with-a-long-name" * 4)):
        sent += 1
        assert sent < 1_000_000
    assert len(lost) == 1 and "does not read" in lost[0]
    assert not channel.send(Idle(1)) and len(lost) == 1
    assert sent > 1000  # the kernel's buffer and our bound both filled
    theirs.close()


# -- back-off ---------------------------------------------------------------------------


def test_back_off_starts_at_once_then_doubles_to_a_cap() -> None:
    delays = [backoff_delay(n, 0.5, 30.0) for n in range(1, 10)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
