"""Listener-side accounting, fed by the SFU's real rewriter and real SRTP sessions.

The "server" here is the SFU's own sans-IO parts (SrtpSession, read_uplink,
DownlinkStream, ListenerHeader) wired by hand, so the monitor sees byte-for-byte what the router sends.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.accounting import Accounting, account
from bench.downlink import DownlinkMonitor
from bench.histogram import LatencyHistogram
from bench.uplink import UplinkStream
from sfu.rewriter import DownlinkStream, ListenerHeader
from sfu.rtp import read_uplink
from sfu.srtp import PROFILE_AEAD_AES_128_GCM, SrtpKeys, SrtpSession

FRAMES = [bytes([i]) * (40 + i) for i in range(7)]


def _keys() -> SrtpKeys:
    return SrtpKeys(PROFILE_AEAD_AES_128_GCM, os.urandom(16), os.urandom(12),
                    os.urandom(16), os.urandom(12))


class FakeClock:
    """A clock the test advances: 1 ms per reading."""

    def __init__(self) -> None:
        self.t = 1_000_000_000

    def __call__(self) -> int:
        self.t += 1_000_000
        return self.t


class Room:
    """Talkers and listeners around the SFU's real per-packet parts."""

    def __init__(self, n: int, sample_every: int = 1) -> None:
        self.clock = FakeClock()
        self.talkers = {}
        self.hist = LatencyHistogram()
        self.members = []
        self.stream = DownlinkStream(initial_seq=65530)  # the room's numbering, shared
        self.skips = [0] * n  # packets each member talked itself (core: Peer.seq_skip)
        for i in range(n):
            keys = _keys()
            client = SrtpSession(keys)
            server = SrtpSession(keys.mirrored())
            ssrc = 1000 + i
            up = UplinkStream(ssrc, FRAMES, client.protect, self.clock, initial_seq=100 * i)
            self.talkers[ssrc] = up.log
            rewriter = ListenerHeader(50_000 + i, 111, 1, 4, "0")
            mon = DownlinkMonitor(self.talkers, self.hist, ssrc, unprotect=client.unprotect,
                                  unprotect_rtcp=client.unprotect_rtcp, expected_ssrc=50_000 + i,
                                  sample_every=sample_every)
            self.members.append((up, server, rewriter, mon))
        self.tick = 0

    def talk(self, talker: int, packets: int) -> list[list[bytes]]:
        """Talker sends ``packets``; returns, per member, the datagrams the SFU would send."""
        up, server, _, _ = self.members[talker]
        up.start_burst()
        self.stream.new_burst()
        out: list[list[bytes]] = [[] for _ in self.members]
        for _ in range(packets):
            self.tick += 1
            plain = server.unprotect(up.next_packet(self.tick))
            ssrc, seq, ts, level, start, end = read_uplink(plain, 1)
            payload = plain[start:end]
            marker, out_seq, out_ts = self.stream.next(ssrc, seq, ts, self.tick * 0.02,
                                                       len(payload))
            self.skips[talker] += 1
            for j, (_, listener_srv, header, _) in enumerate(self.members):
                if j == talker:
                    continue
                header.follow(ssrc)
                seq_j = (out_seq - self.skips[j]) & 0xFFFF
                packet = bytes(header.header(marker, seq_j, out_ts, level)) + payload
                out[j].append(listener_srv.protect(packet))
        return out

    def deliver(self, j: int, datagrams: list[bytes]) -> DownlinkMonitor:
        mon = self.members[j][3]
        for d in datagrams:
            mon.feed(d, self.clock())
        return mon


def test_everything_received_in_order_across_talker_changes() -> None:
    room = Room(3)
    turns = []
    for talker, n in ((0, 30), (1, 25), (0, 10), (2, 40)):
        first = room.members[talker][0].seq
        sent = room.talk(talker, n)
        turns.append((talker, first, first + n - 1))
        for j, datagrams in enumerate(sent):
            room.deliver(j, datagrams)
    for j, (_, _, _, mon) in enumerate(room.members):
        mon.finish()
        expected = [(1000 + t, a, b) for t, a, b in turns if t != j]
        acc = account(mon.runs, mon.late, expected)
        assert acc == Accounting(expected=acc.expected, received_expected=acc.expected)
        assert acc.expected == sum(b - a + 1 for _, a, b in expected)
        assert mon.jumps_at_switch == 0 and mon.jumps_in_burst == 0  # seq wraps at 65535 too
        assert mon.marker_missing == 0
        assert mon.own_audio == 0 and mon.unmatched == 0 and mon.malformed == 0
        assert mon.verified == mon.packets and not mon.failures
    assert room.hist.count() == sum(m.packets for *_, m in room.members)
    assert room.hist.percentile_ms(50) is not None


def test_loss_duplicate_and_reordering_are_told_apart() -> None:
    room = Room(2)
    first = room.members[0][0].seq
    sent = room.talk(0, 20)[1]
    # lose #5, duplicate #8, swap #12 and #13
    delivered = sent[:5] + sent[6:9] + [sent[8]] + sent[9:12] + [sent[13], sent[12]] + sent[14:]
    mon = room.deliver(1, delivered)
    mon.finish()
    acc = account(mon.runs, mon.late, [(1000, first, first + 19)])
    assert acc.missing == 1
    assert acc.duplicates == 1
    assert acc.out_of_order == 1
    assert acc.received_expected == 19
    assert mon.jumps_in_burst >= 2
    # SRTP replay protection: the duplicate fails authentication when verified
    assert mon.failures == {"srtp_auth": 1}


def test_own_audio_is_detected() -> None:
    room = Room(2)
    # The SFU wrongly sends talker 0's packets back to talker 0.
    up, server, _, _ = room.members[0]
    stream, header = DownlinkStream(), ListenerHeader(777, 111, 1, 4, "0")
    mon = room.members[0][3]
    listener_srv = room.members[0][1]
    up.start_burst()
    for tick in range(5):
        plain = server.unprotect(up.next_packet(tick))
        ssrc, seq, ts, level, start, end = read_uplink(plain, 1)
        marker, out_seq, out_ts = stream.next(ssrc, seq, ts, 0.0, end - start)
        header.follow(ssrc)
        packet = bytes(header.header(marker, out_seq, out_ts, level)) + plain[start:end]
        mon.feed(listener_srv.protect(packet), room.clock())
    assert mon.own_audio == 5


def test_tampered_payload_fails_verification() -> None:
    room = Room(2)
    sent = room.talk(0, 3)[1]
    bad = bytearray(sent[1])
    bad[-20] ^= 1  # flip a ciphertext bit: the auth tag no longer matches
    mon = room.deliver(1, [sent[0], bytes(bad), sent[2]])
    assert mon.failures == {"srtp_auth": 1}
    assert mon.verified == 2


def test_sampling_verifies_one_in_n() -> None:
    room = Room(2, sample_every=10)
    mon = room.deliver(1, room.talk(0, 100)[1])
    assert mon.packets == 100
    assert mon.verified == 10  # the 1st, 11th, ... 91st
    assert not mon.failures


def test_rtcp_is_counted_and_authenticated() -> None:
    room = Room(2)
    _, server, _, mon = room.members[1]
    rr = bytes([0x80, 201, 0, 1]) + (5).to_bytes(4, "big")
    mon.feed(server.protect_rtcp(rr), room.clock())
    mon.feed(b"\x80\xc9" + bytes(30), room.clock())
    assert mon.rtcp == 2 and mon.rtcp_bad == 1 and mon.packets == 0


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_feed_never_raises_on_arbitrary_datagrams(data: bytes) -> None:
    room = Room(2)
    mon = room.members[1][3]
    mon.feed(data, 5)
    mon.feed(bytes([0x91, 0x6F]) + data, 5)  # X=1, CC=1: the downlink layout, garbage after


def test_histogram_percentiles() -> None:
    h = LatencyHistogram()
    for us in range(1, 101):  # 1..100 µs... in 10 µs buckets
        h.add(us * 1000)
    h.add(250_000_000)  # one 250 ms outlier, above the bucket range
    assert h.count() == 101
    assert h.percentile_ms(50) == pytest.approx(0.06)
    assert h.percentile_ms(100) == pytest.approx(250.0)
    assert h.max_ns == 250_000_000
    xs, ys = h.cdf_ms()
    assert ys[-1] == 1.0 and xs == sorted(xs)
    empty = LatencyHistogram()
    assert empty.percentile_ms(99) is None
    empty.merge(h)
    assert empty.count() == 101


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, 5)), max_size=20),
       st.lists(st.tuples(st.integers(0, 3), st.integers(0, 70)), max_size=10))
def test_account_is_consistent(runs_raw: list[tuple[int, int, int]], late: list[tuple[int, int]]) -> None:
    runs = [(c, a, a + n) for c, a, n in runs_raw]
    # one expected range per talker (a talker's turns never overlap)
    expected = list({c: (c, a, b) for c, a, b in runs[:3]}.values())
    acc = account(runs, late, expected)
    received = sum(b - a + 1 for _, a, b in runs) + len(late)
    assert acc.received_expected + acc.missing == acc.expected
    assert acc.received_expected + acc.extra + acc.duplicates == received
    assert acc.duplicates >= 0 and acc.extra >= 0 and acc.out_of_order >= 0


def test_account_simple_cases() -> None:
    assert account([(1, 10, 19)], [], [(1, 10, 19)]) == Accounting(10, 10, 0, 0, 0, 0)
    assert account([(1, 8, 19)], [], [(1, 10, 19)]).extra == 2  # pre-roll
    assert account([(1, 10, 14), (1, 16, 19)], [(1, 15)], [(1, 10, 19)]) == Accounting(
        10, 10, 0, 0, 0, 1)
    assert account([(1, 10, 19)], [(1, 12)], [(1, 10, 19)]).duplicates == 1
    assert account([], [], [(2, 1, 3)]).missing == 3


def test_account_says_where_in_the_turns_the_missing_packets_were() -> None:
    """Loss at the ends of turns (a floor change overtaking the talker's last packets) and
    inside them (the path) have different causes: the accounting keeps them apart."""
    end = account([(1, 10, 16)], [], [(1, 10, 19)])
    assert (end.missing, end.missing_at_end, end.missing_at_start) == (3, 3, 0)
    start = account([(1, 12, 19)], [], [(1, 10, 19)])
    assert (start.missing, start.missing_at_end, start.missing_at_start) == (2, 0, 2)
    inside = account([(1, 10, 13), (1, 15, 19)], [], [(1, 10, 19)])
    assert (inside.missing, inside.missing_at_end, inside.missing_at_start) == (1, 0, 0)
    whole = account([], [], [(2, 1, 3)])
    assert (whole.missing_at_end, whole.missing_at_start) == (3, 0)
    both = account([(1, 12, 14)], [(1, 16)], [(1, 10, 19)])
    assert (both.missing, both.missing_at_end, both.missing_at_start) == (6, 3, 2)
    total = Accounting()
    for part in (end, start, inside):
        total.add(part)
    assert (total.missing, total.missing_at_end, total.missing_at_start) == (6, 3, 2)
    assert list(itertools.islice(iter(account([], [], []).__slots__), 1))  # a slotted dataclass
