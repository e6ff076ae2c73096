"""The longest audio gap a listener hears, on synthetic arrival sequences.

A talker's packets go through the SFU's real per-packet parts (SRTP, read_uplink, the
room's DownlinkStream and the listener's ListenerHeader) and reach a listener's DownlinkMonitor at times the test chooses: a
steady path, a stalled server, a talker that pauses, loss, a talker change, a new media
session. Times are exact (an injected clock), so the figures are checked exactly.
"""

from __future__ import annotations

import os

import pytest

from bench.downlink import LONG_GAP_NS, DownlinkMonitor, audio_gap_ns
from bench.histogram import LatencyHistogram
from bench.uplink import UplinkStream
from sfu.rewriter import DownlinkStream, ListenerHeader
from sfu.rtp import read_uplink
from sfu.srtp import PROFILE_AEAD_AES_128_GCM, SrtpKeys, SrtpSession

MS = 1_000_000
FRAMES = [bytes([i]) * 60 for i in range(5)]


def _keys() -> SrtpKeys:
    return SrtpKeys(PROFILE_AEAD_AES_128_GCM, os.urandom(16), os.urandom(12),
                    os.urandom(16), os.urandom(12))


class Path:
    """Talkers -> the SFU's per-packet parts -> one listener. Times in ms."""

    def __init__(self, talkers: int = 1) -> None:
        self.now = 0
        self.logs = {}
        self.ups = []
        self.servers = []
        self.sessions = []
        for i in range(talkers):
            keys = _keys()
            self.sessions.append(client := SrtpSession(keys))
            up = UplinkStream(1000 + i, FRAMES, client.protect, lambda: self.now,
                              initial_seq=100 * i + 5)
            self.ups.append(up)
            self.servers.append(SrtpSession(keys.mirrored()))
            self.logs[1000 + i] = up.log
        keys = _keys()
        self.listener_srv = SrtpSession(keys.mirrored())
        self.stream = DownlinkStream(initial_seq=10)
        self.header = ListenerHeader(50_000, 111, 1, 4, "0")
        self.sessions.append(listener := SrtpSession(keys))
        self.mon = DownlinkMonitor(self.logs, LatencyHistogram(), 7, unprotect=listener.unprotect,
                                   expected_ssrc=50_000, sample_every=1)
        self.tick = 0

    def burst(self, talker: int = 0) -> None:
        self.ups[talker].start_burst()
        self.stream.new_burst()

    def send(self, at_ms: float, talker: int = 0) -> bytes:
        """The talker sends its next packet at ``at_ms``; returns what the SFU sends on."""
        self.now = int(at_ms * MS)
        self.tick += 1
        plain = self.servers[talker].unprotect(self.ups[talker].next_packet(self.tick))
        ssrc, seq, ts, level, start, end = read_uplink(plain, 1)
        payload = plain[start:end]
        marker, out_seq, out_ts = self.stream.next(ssrc, seq, ts, at_ms / 1000, len(payload))
        self.header.follow(ssrc)
        packet = bytes(self.header.header(marker, out_seq, out_ts, level)) + payload
        return self.listener_srv.protect(packet)

    def deliver(self, packet: bytes, at_ms: float) -> None:
        self.mon.feed(packet, int(at_ms * MS))

    def steady(self, start_ms: float, n: int, delay_ms: float = 1.0, talker: int = 0) -> float:
        """n packets every 20 ms from ``start_ms``, each delivered ``delay_ms`` later."""
        t = start_ms
        for _ in range(n):
            self.deliver(self.send(t, talker), t + delay_ms)
            t += 20
        return t

    def longest_ms(self) -> float:
        return self.mon.take_gaps()[0] / MS


def test_gap_formula() -> None:
    # consecutive packets, 20 ms apart at both ends: 20 ms
    assert audio_gap_ns(0, 20 * MS, 0, 20 * MS, 1, 2) == 20 * MS
    # the talker sent 300 ms late: its pause is not the path's
    assert audio_gap_ns(0, 321 * MS, 0, 320 * MS, 1, 2) == 21 * MS
    # two packets lost in between: the listener heard nothing for 60 ms
    assert audio_gap_ns(0, 60 * MS, 0, 60 * MS, 1, 4) == 60 * MS
    # a stalled path: sent 20 ms apart, received 400 ms apart
    assert audio_gap_ns(1 * MS, 401 * MS, 0, 20 * MS, 1, 2) == 400 * MS


def test_a_steady_path_gives_20_ms() -> None:
    path = Path()
    path.burst()
    path.steady(0, 100)
    gap, _at, long = path.mon.take_gaps()
    assert gap == 20 * MS and long == 0
    assert path.mon.packets == 100 and path.mon.verified == 100


def test_a_stalled_server_gives_the_stall() -> None:
    path = Path()
    path.burst()
    t = path.steady(0, 20)  # last one delivered at 381
    held = [path.send(t + 20 * i) for i in range(20)]  # sent on time, held by the server
    released = t + 20 * 19 + 1
    for packet in held:  # all released at once after the stall
        path.deliver(packet, released)
    path.steady(t + 20 * 20, 10)
    gap, at, long = path.mon.take_gaps()
    assert gap == (released - (t - 20 + 1)) * MS  # from the last packet before the stall
    assert at == released * MS and long == 1
    assert path.longest_ms() == 0  # taken: the next window starts empty


def test_a_talker_that_pauses_is_not_a_gap() -> None:
    path = Path()
    path.burst()
    t = path.steady(0, 20)
    path.steady(t + 300, 20)  # the talker's clock woke up 300 ms late: still one burst
    assert path.longest_ms() == 20
    assert path.mon.bursts == 1


def test_lost_packets_are_a_gap() -> None:
    path = Path()
    path.burst()
    t = path.steady(0, 20)
    for i in range(3):
        path.send(t + 20 * i)  # lost
    path.steady(t + 60, 10)
    assert path.longest_ms() == 80


def test_talker_changes_and_silences_are_not_gaps() -> None:
    path = Path(talkers=2)
    path.burst(0)
    t = path.steady(0, 20, talker=0)
    path.burst(1)
    t = path.steady(t + 500, 20, talker=1)  # half a second of silence between two talkers
    path.burst(0)
    path.steady(t + 2000, 20, talker=0)  # the first talker again, after two seconds
    assert path.longest_ms() == 20
    assert path.mon.bursts == 3 and path.mon.jumps_at_switch == 0


def test_a_new_media_session_resumes_without_a_gap_across_the_outage() -> None:
    path = Path()
    path.burst()
    t = path.steady(0, 20)
    path.mon.restart()
    for i in range(50):
        path.send(t + 20 * i)  # one second of outage: the listener's session was down
    # the new session: new keys, a new downlink stream (new SSRC, new sequence numbers)
    keys = _keys()
    path.listener_srv = SrtpSession(keys.mirrored())
    path.stream = DownlinkStream(initial_seq=3000)
    path.header = ListenerHeader(60_000, 111, 1, 4, "0")
    path.sessions.append(listener := SrtpSession(keys))
    path.mon.rekey(listener.unprotect, None, 60_000)
    back = t + 20 * 50
    path.steady(back, 20)
    mon = path.mon
    assert path.longest_ms() == 20  # the outage is not an audio gap
    assert mon.resumed_ns == [(back + 1) * MS]
    assert mon.jumps_in_burst == 0 and mon.jumps_at_switch == 0 and mon.marker_missing == 0
    assert mon.restarts == [1] and mon.runs[0][2] - mon.runs[0][1] == 19
    assert mon.verified == mon.packets == 40 and not mon.failures


def test_a_jump_the_ring_cannot_tell_apart_is_counted() -> None:
    path = Path()
    path.burst()
    t = path.steady(0, 10)
    for i in range(70):  # 70 packets lost in a row (1.4 s)
        path.send(t + 20 * i)
    path.steady(t + 20 * 70, 5)
    assert path.mon.ambiguous == 1
    assert path.longest_ms() == pytest.approx(71 * 20)
    assert path.mon.take_gaps()[2] == 0  # taken above
    assert LONG_GAP_NS == 100 * MS
