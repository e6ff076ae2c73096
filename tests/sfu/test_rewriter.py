"""Tests for sfu/rewriter.py: the room's stream numbering and each listener's header.

The core composes the two per packet (``DownlinkStream.next`` once, ``ListenerHeader`` per
listener); ``Listener`` below does the same for one listener, so every rule is checked on
the packets a browser would receive. Cross-checked against aiortc's independent codec.
"""

from __future__ import annotations

import random

import pytest
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.rewriter import DownlinkStream, ListenerHeader
from sfu.rtp import RtpPacket, parse_rtp, read_uplink

from .test_rtp import ALICE, BOB, CHROME_LATER, LISTENER, _ext_map


class Listener:
    """One listener's downlink as the core builds it: the room's stream, its own header."""

    def __init__(self, stream: DownlinkStream, header: ListenerHeader) -> None:
        self.stream = stream
        self.header = header

    def write(self, src: int, seq: int, ts: int, level: int, payload: bytes | memoryview,
              arrival: float) -> bytes:
        marker, out_seq, out_ts = self.stream.next(src, seq, ts, arrival, len(payload))
        if marker:
            self.header.follow(src)
        return bytes(self.header.header(marker, out_seq, out_ts, level)) + bytes(payload)

    def new_burst(self) -> None:
        self.stream.new_burst()

    def rtp_timestamp_at(self, now: float) -> int | None:
        return self.stream.rtp_timestamp_at(now)

    @property
    def packets_sent(self) -> int:
        return self.stream.packets

    @property
    def octets_sent(self) -> int:
        return self.stream.octets


# --------------------------------------------------------------------------- rewriter


def _rewriter(
    audio_level_id: int | None = 1,
    mid_ext_id: int | None = 4,
    mid: str | None = "0",
    *,
    initial_seq: int = 1000,
    initial_timestamp: int = 500_000,
) -> Listener:
    return Listener(
        DownlinkStream(initial_seq=initial_seq, initial_timestamp=initial_timestamp),
        ListenerHeader(LISTENER, 111, audio_level_id, mid_ext_id, mid),
    )


class Talker:
    """A source stream: 20 ms Opus frames with its own random numbering."""

    def __init__(self, ssrc: int, seq: int, ts: int) -> None:
        self.ssrc, self.seq, self.ts = ssrc, seq, ts

    def next(self, skip: int = 0) -> tuple[int, int, int]:
        self.seq = (self.seq + 1 + skip) & 0xFFFF
        self.ts = (self.ts + 960 * (1 + skip)) & 0xFFFFFFFF
        return self.ssrc, self.seq, self.ts


def _send(rw: Listener, src: int, seq: int, ts: int, arrival: float,
          level: int = 0x85, payload: bytes = b"opus-frame") -> RtpPacket:
    return parse_rtp(rw.write(src, seq, ts, level, payload, arrival))


def test_first_packet_header() -> None:
    rw = _rewriter()
    assert rw.rtp_timestamp_at(5.0) is None
    out = _send(rw, ALICE, 40000, 123456, 10.0, payload=b"\x01\x02\x03")
    assert out.ssrc == LISTENER and out.payload_type == 111 and out.marker
    assert (out.sequence, out.timestamp) == (1000, 500_000)
    assert out.csrcs == [ALICE]
    assert out.extensions == {1: b"\x85", 4: b"0"}
    assert out.payload == b"\x01\x02\x03" and out.padding == 0
    assert (rw.packets_sent, rw.octets_sent) == (1, 3)


def test_talker_changes_keep_the_stream_continuous() -> None:
    rw = _rewriter()
    a, b = Talker(ALICE, 30000, 7_000_000), Talker(BOB, 100, 42)
    t = 100.0
    outs = []
    for _ in range(5):  # Alice talks
        outs.append((_send(rw, *a.next(), t), t))
        t += 0.02
    t += 1.2345  # silence, then Bob
    for _ in range(4):
        outs.append((_send(rw, *b.next(), t), t))
        t += 0.02
    t += 0.5  # then Alice again
    for _ in range(3):
        outs.append((_send(rw, *a.next(), t), t))
        t += 0.02
    seqs = [p.sequence for p, _ in outs]
    assert seqs == [(1000 + k) & 0xFFFF for k in range(12)]
    assert [p.marker for p, _ in outs] == [True, False, False, False, False,
                                         True, False, False, False, True, False, False]
    assert [p.csrcs for p, _ in outs] == [[ALICE]] * 5 + [[BOB]] * 4 + [[ALICE]] * 3
    ts = [p.timestamp for p, _ in outs]
    # Within a burst: the talker's 20 ms spacing.
    for i in (1, 2, 3, 4, 6, 7, 8, 10, 11):
        assert ts[i] - ts[i - 1] == 960
    # At a switch: the wall-clock gap since the previous packet, in 48 kHz units.
    for i in (5, 9):
        gap = outs[i][1] - outs[i - 1][1]
        assert abs((ts[i] - ts[i - 1]) - gap * 48000) <= 1
    assert all(p.payload == b"opus-frame" for p, _ in outs)
    assert rw.packets_sent == 12 and rw.octets_sent == 12 * len(b"opus-frame")


def test_gaps_and_reordering_within_a_burst_are_preserved() -> None:
    rw = _rewriter()
    base_seq, base_ts = 500, 96000
    order = [0, 1, 3, 2, 4, 7, 8]  # 5 and 6 lost, 2 and 3 swapped
    outs = [_send(rw, ALICE, base_seq + k, base_ts + 960 * k, 1.0 + 0.02 * n)
            for n, k in enumerate(order)]
    assert [o.sequence - 1000 for o in outs] == order
    assert [(o.timestamp - 500_000) // 960 for o in outs] == order
    assert [o.marker for o in outs] == [True] + [False] * 6


def test_next_burst_continues_after_the_highest_not_the_last() -> None:
    rw = _rewriter()
    _send(rw, ALICE, 10, 9600, 1.00)
    _send(rw, ALICE, 12, 9600 + 1920, 1.02)  # out 1002
    _send(rw, ALICE, 11, 9600 + 960, 1.03)  # late: out 1001
    first_b = _send(rw, BOB, 7, 70, 2.02)
    assert first_b.sequence == 1003
    # The gap is measured from the packet that carried the highest timestamp (arrived 1.02).
    assert first_b.timestamp == 500_000 + 1920 + 48000


def test_min_one_frame_between_bursts() -> None:
    rw = _rewriter()
    last = _send(rw, ALICE, 1, 1, 5.0)
    nxt = _send(rw, BOB, 1, 1, 5.001)  # Bob's first packet 1 ms after Alice's last
    assert nxt.timestamp - last.timestamp == 960
    same_instant = _send(rw, ALICE, 2, 961, 5.001)
    assert same_instant.timestamp - nxt.timestamp == 960


def test_new_burst_for_the_same_talker_after_silence() -> None:
    rw = _rewriter()
    a = Talker(ALICE, 65530, 4294967295 - 3000)
    t = 0.0
    for _ in range(3):
        last = _send(rw, *a.next(), t)
        t += 0.02
    # Without new_burst, silence in the talker's own stream (DTX) keeps its timestamps.
    t += 0.4
    dtx = _send(rw, *a.next(skip=0), t)
    assert not dtx.marker and dtx.timestamp == (last.timestamp + 960) & 0xFFFFFFFF
    # Released, then granted again 3 s later: the talker's numbering did not jump, ours does.
    rw.new_burst()
    t += 3.0
    again = _send(rw, *a.next(), t)
    assert again.marker
    assert again.sequence == (dtx.sequence + 1) & 0xFFFF
    assert again.timestamp == (dtx.timestamp + 3 * 48000) & 0xFFFFFFFF
    follow = _send(rw, *a.next(), t + 0.02)
    assert not follow.marker and follow.timestamp == (again.timestamp + 960) & 0xFFFFFFFF


def test_sequence_and_timestamp_wrap() -> None:
    rw = _rewriter(initial_seq=65534, initial_timestamp=0xFFFFFFFF - 959)
    a = Talker(ALICE, 65533, 0xFFFFFFFF - 1000)  # the source wraps too, at other moments
    outs = [_send(rw, *a.next(), 0.02 * k) for k in range(6)]
    assert [o.sequence for o in outs] == [65534, 65535, 0, 1, 2, 3]
    assert [o.timestamp for o in outs] == [
        (0xFFFFFFFF - 959 + 960 * k) & 0xFFFFFFFF for k in range(6)]
    assert outs[1].timestamp == 0  # wrapped past 2^32
    b = _send(rw, BOB, 9, 9, 0.02 * 5 + 1.0)
    assert b.sequence == 4 and b.timestamp == (outs[-1].timestamp + 48000) & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("level_id", "mid_id", "mid"),
    [(1, 4, "0"), (5, 3, "audio"), (14, 1, "a-mid-of-16bytes"), (1, None, None),
     (None, 2, "1"), (20, 4, "0"), (3, 200, "x"), (2, 9, "a-mid-longer-than-16-bytes")],
)
def test_extensions_use_each_listeners_ids(level_id: int | None, mid_id: int | None,
                                           mid: str | None) -> None:
    rw = _rewriter(level_id, mid_id, mid)
    m = _ext_map(level_id, mid_id)
    for level in (0x85, 0x00, 0xFF, -1, 0x7F):
        data = rw.write(ALICE, 1, 1, level, b"frame", 1.0)
        pkt = parse_rtp(data)
        expected: dict[int, bytes] = {}
        if level_id and level >= 0:
            expected[level_id] = bytes((level,))
        if mid_id and mid:
            expected[mid_id] = mid.encode()
        assert pkt.extensions == expected
        assert pkt.payload == b"frame" and pkt.csrcs == [ALICE]
        # Level first, then MID, in the form the ids allow.
        if expected:
            one_byte = all(i <= 14 and 1 <= len(v) <= 16 for i, v in expected.items())
            assert data[16:18] == (b"\xbe\xde" if one_byte else b"\x10\x00")
            first_id, first_value = next(iter(expected.items()))
            head = (first_id << 4 | (len(first_value) - 1),) if one_byte else (
                first_id, len(first_value))
            assert data[20 : 20 + len(head)] == bytes(head)
        else:
            assert data[0] == 0x81 and len(data) == 16 + 5
        # aiortc, configured with this listener's ids, reads the same.
        theirs = AiortcRtpPacket.parse(data, m)
        want_level = (bool(level & 0x80), level & 0x7F) if (level_id and level >= 0) else None
        assert theirs.extensions.audio_level == want_level
        assert theirs.extensions.mid == (mid if mid_id else None)
        assert theirs.csrc == [ALICE]


def test_level_element_written_only_when_negotiated() -> None:
    rw = _rewriter(None, None, None)
    pkt = parse_rtp(rw.write(ALICE, 1, 1, 0x90, b"x", 0.0))
    assert pkt.extensions == {}
    rw0 = _rewriter(0, 0, "0")  # 0 means not negotiated as well
    assert parse_rtp(rw0.write(ALICE, 1, 1, 0x90, b"x", 0.0)).extensions == {}


def test_payload_accepts_memoryview_and_is_copied() -> None:
    rw = _rewriter()
    src = bytearray(CHROME_LATER)
    ssrc, seq, ts, level, start, end = read_uplink(src, 1)
    out = rw.write(ssrc, seq, ts, level, memoryview(src)[start:end], 3.0)
    assert isinstance(out, bytes)
    src[start:end] = bytes(end - start)  # the caller reuses its buffer
    pkt = parse_rtp(out)
    assert pkt.payload == CHROME_LATER[20:] and pkt.extensions[1] == b"\xb0"
    assert pkt.csrcs == [0xBF3B8429]


def test_rtp_timestamp_at_follows_the_wall_clock() -> None:
    rw = _rewriter()
    _send(rw, ALICE, 1, 100, 10.0)
    _send(rw, ALICE, 2, 1060, 10.02)
    assert rw.rtp_timestamp_at(10.02) == 500_000 + 960
    assert rw.rtp_timestamp_at(11.02) == 500_000 + 960 + 48000
    assert rw.rtp_timestamp_at(10.52) == 500_000 + 960 + 24000


def test_random_initial_values() -> None:
    rws = [Listener(DownlinkStream(), ListenerHeader(1, 111, 1, 4, "0")) for _ in range(8)]
    firsts = [(parse_rtp(rw.write(ALICE, 1, 1, -1, b"x", 0.0))) for rw in rws]
    assert len({(p.sequence, p.timestamp) for p in firsts}) > 1
    assert all(p.marker for p in firsts)


def test_constructor_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        ListenerHeader(1 << 32, 111, 1, 4, "0")
    with pytest.raises(ValueError):
        ListenerHeader(1, 128, 1, 4, "0")
    with pytest.raises(ValueError):
        ListenerHeader(1, 111, 256, 4, "0")
    with pytest.raises(ValueError):
        ListenerHeader(1, 111, 1, 4, "m" * 256)


def test_listeners_of_one_stream_share_numbering_under_their_own_ssrc_and_ids() -> None:
    stream = DownlinkStream(initial_seq=10, initial_timestamp=20)
    chrome = ListenerHeader(0x1111, 111, 1, 4, "0")
    firefox = ListenerHeader(0x2222, 109, 1, 3, "audio")
    marker, seq, ts = stream.next(ALICE, 500, 9000, 1.0, 3)
    for h in (chrome, firefox):
        h.follow(ALICE)
    a = parse_rtp(bytes(chrome.header(marker, seq, ts, 0x85)) + b"abc")
    b = parse_rtp(bytes(firefox.header(marker, seq, ts, 0x85)) + b"abc")
    assert (a.sequence, a.timestamp, a.marker) == (b.sequence, b.timestamp, b.marker) == (
        10, 20, True)
    assert (a.ssrc, a.payload_type, a.extensions) == (0x1111, 111, {1: b"\x85", 4: b"0"})
    assert (b.ssrc, b.payload_type, b.extensions) == (0x2222, 109, {1: b"\x85", 3: b"audio"})
    assert a.csrcs == b.csrcs == [ALICE]


# One step of a random session: a talker's packet (source index, skip/reorder) or new_burst.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("pkt"), st.integers(0, 2), st.integers(-2, 3), st.floats(0.0, 2.0)),
        st.tuples(st.just("burst"), st.just(0), st.just(0), st.just(0.0)),
    ),
    min_size=1,
    max_size=60,
)


@given(steps, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.randoms())
@settings(max_examples=200, deadline=None)
def test_rewriter_properties(plan: list, init_seq: int, init_ts: int, rnd: random.Random) -> None:
    """Whatever the talkers do: markers exactly on burst starts, burst starts continue from
    the highest number sent, in-burst differences equal the talker's, payload untouched."""
    rw = _rewriter(initial_seq=init_seq, initial_timestamp=init_ts)
    sources = [[ssrc, rnd.getrandbits(16), rnd.getrandbits(32)] for ssrc in (ALICE, BOB, 77)]
    now = 0.0
    current = None  # the source of the open burst
    anchor = None  # (src seq, src ts, out seq, out ts) of the burst's first packet
    high_seq = high_ts = None
    high_arrival = 0.0
    pending_burst = True
    for kind, who, delta, dt in plan:
        if kind == "burst":
            rw.new_burst()
            pending_burst = True
            continue
        now += dt
        src = sources[who]
        src[1] = (src[1] + delta) & 0xFFFF
        src[2] = (src[2] + 960 * delta) & 0xFFFFFFFF
        payload = rnd.randbytes(rnd.randrange(1, 40))
        pkt = _send(rw, src[0], src[1], src[2], now, level=-1, payload=payload)
        assert pkt.payload == payload and pkt.csrcs == [src[0]]
        starts = pending_burst or current != src[0]
        assert pkt.marker == starts
        if starts:
            if high_seq is None:
                assert (pkt.sequence, pkt.timestamp) == (init_seq, init_ts)
            else:
                assert pkt.sequence == (high_seq + 1) & 0xFFFF
                step = (pkt.timestamp - high_ts) & 0xFFFFFFFF
                assert step == max(960, round((now - high_arrival) * 48000))
            anchor = (src[1], src[2], pkt.sequence, pkt.timestamp)
            current, pending_burst = src[0], False
            high_seq, high_ts, high_arrival = pkt.sequence, pkt.timestamp, now
        else:
            assert anchor is not None
            assert (pkt.sequence - anchor[2]) & 0xFFFF == (src[1] - anchor[0]) & 0xFFFF
            assert (pkt.timestamp - anchor[3]) & 0xFFFFFFFF == (src[2] - anchor[1]) & 0xFFFFFFFF
            if (pkt.sequence - high_seq) & 0xFFFF < 0x8000:
                high_seq = pkt.sequence
            if (pkt.timestamp - high_ts) & 0xFFFFFFFF < 0x80000000:
                high_ts, high_arrival = pkt.timestamp, now
