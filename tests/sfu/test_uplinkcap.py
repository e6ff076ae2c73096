"""Per-peer uplink caps (sfu/uplinkcap.py) and how the media core applies them.

On the in-memory network of tests/sfu/memnet.py with a fake clock: a floor holder that
floods its uplink is held to the cap at every listener, a browser's own rate (even at 10 ms
packets, with RTCP) is never touched, drops are counted by reason, packets that fail SRTP
authentication never use a peer's budget, and a capped talker is heard normally again
once the flood ends.
"""

from __future__ import annotations

import math
import os

import pytest

import sfu
from sfu.red import build_red
from sfu.rtcp import ReceiverReport, build_receiver_report, build_sdes_cname
from sfu.transmit import MAX_PAYLOAD
from sfu.uplinkcap import UplinkCap, UplinkDrops, UplinkLimits

from .memnet import Browser, Net
from .test_core import browser, make_core, room_of

LIMITS = UplinkLimits()


def flood(net: Net, talker: Browser, count: int, interval: float, payload: bytes | None = None) -> None:
    """``count`` packets from ``talker``, one every ``interval`` seconds of the fake clock."""
    for _ in range(count):
        talker.audio(payload)
        net.pump()
        net.now += interval


def test_a_flooding_floor_holder_is_held_to_the_packet_cap_at_every_listener(net: Net) -> None:
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    flood(net, a, 4000, 0.0005)  # 2,000 packets/s for 2 s
    allowed = LIMITS.packet_burst + 2 * LIMITS.packets_per_second  # 400
    for listener in (b, c):
        got = len(listener.take_received())
        assert allowed - 2 <= got <= allowed + 1
    stats = net.core.peer_stats("a")
    assert stats is not None
    forwarded = stats["rtp_forwarded_in"]
    assert stats["uplink_dropped_packet_rate"] == 4000 - forwarded  # type: ignore[operator]
    assert stats["uplink_dropped_byte_rate"] == 0
    assert net.core.stats()["uplink_dropped_packet_rate"] == 4000 - forwarded  # type: ignore[operator]
    # the flood was dropped before SRTP: nothing over the cap was even unprotected
    assert stats["rtp_received"] == forwarded and stats["srtp_errors"] == 0


def test_large_packets_are_held_to_the_byte_cap(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    # 140 packets/s (under the packet cap) of 1.3 kB: 187 kB/s for 2 s
    flood(net, a, 280, 1 / 140, payload=os.urandom(1300))
    got = len(b.take_received())
    datagram = 1300 + 12 + 8 + 16  # payload, header, extensions, GCM tag
    allowed = (LIMITS.byte_burst + 2 * LIMITS.bytes_per_second) / datagram  # ~240
    assert allowed - 2 <= got <= allowed + 1
    stats = net.core.peer_stats("a")
    assert stats is not None and stats["uplink_dropped_byte_rate"] == 280 - got
    assert stats["uplink_dropped_packet_rate"] == 0


def test_a_browser_at_10_ms_packets_with_rtcp_is_never_capped(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    report = build_receiver_report(ReceiverReport(a.ssrc, [])) + build_sdes_cname(a.ssrc, "a")
    for i in range(1000):  # 10 s of 10 ms Opus, with the largest Opus frames
        a.audio(os.urandom(640))
        if i % 50 == 0:  # and RTCP twice a second
            a.outbox.append(a.srtp.protect_rtcp(report))  # type: ignore[union-attr]
        net.pump()
        net.now += 0.01
    assert len(b.take_received()) == 1000
    stats = net.core.peer_stats("a")
    assert stats is not None and stats["rtcp_received"] == 20
    assert stats["uplink_dropped_packet_rate"] == stats["uplink_dropped_byte_rate"] == 0


def test_a_red_talker_at_20_ms_with_the_largest_red_we_forward_is_never_capped() -> None:
    """RED (RFC 2198) doubles a packet, not the packet rate: 20 ms packets of the longest
    RED payload the core forwards (two 693-byte Opus frames, ~277 kbit/s of Opus, where
    browsers send ~32) with RTCP use 56 % of the byte cap and a third of the packet cap."""
    net = Net(make_core())
    a = net.connect(browser("a", 1, red_pt=63))
    b = net.connect(browser("b", 2))
    net.core.set_speaker("r", "a", net.now)
    report = build_receiver_report(ReceiverReport(a.ssrc, [])) + build_sdes_cname(a.ssrc, "a")
    frame = os.urandom(693)
    payload = build_red(111, frame, [(960, frame)])
    assert len(payload) == MAX_PAYLOAD - 1
    for i in range(500):  # 10 s
        a.audio(payload, payload_type=63)
        if i % 25 == 0:
            a.outbox.append(a.srtp.protect_rtcp(report))  # type: ignore[union-attr]
        net.pump()
        net.now += 0.02
    assert [p.payload for p in b.take_received()] == [frame] * 500  # the primary, every one
    stats = net.core.peer_stats("a")
    assert stats is not None
    assert stats["uplink_dropped_packet_rate"] == stats["uplink_dropped_byte_rate"] == 0


def test_packets_failing_srtp_never_use_the_peers_budget(net: Net) -> None:
    """A spoofer sending from a's address cannot silence a by draining its buckets."""
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    for _ in range(1000):  # all at one instant: far more than a bucket holds
        net.send(a, bytes([0x80, 111]) + os.urandom(90))
    payloads = [a.audio() for _ in range(50)]
    net.pump()
    assert [p.payload for p in b.take_received()] == payloads
    stats = net.core.peer_stats("a")
    assert stats is not None and stats["srtp_errors"] == 1000
    assert stats["uplink_dropped_packet_rate"] == 0


def test_a_capped_talker_is_heard_normally_once_the_flood_ends(net: Net) -> None:
    a, b = room_of(net, "a", "b")
    net.core.set_speaker("r", "a", net.now)
    flood(net, a, 1000, 0.0005)
    b.take_received()
    net.now += 1.0
    sent = [a.audio() for _ in range(1)]
    net.pump()
    for _ in range(99):  # 2 s of 20 ms audio
        net.now += 0.02
        sent.append(a.audio())
        net.pump()
    assert [p.payload for p in b.take_received()] == sent


def test_every_peer_has_its_own_buckets(net: Net) -> None:
    a, b, c = room_of(net, "a", "b", "c")
    net.core.set_speaker("r", "a", net.now)
    flood(net, b, 1000, 0.0)  # b floods (into its pre-roll) and exhausts its own budget
    sent = [a.audio() for _ in range(50)]
    net.pump()
    assert [p.payload for p in c.take_received()] == sent
    assert net.core.peer_stats("b")["uplink_dropped_packet_rate"] == 900  # type: ignore[index]
    assert net.core.peer_stats("a")["uplink_dropped_packet_rate"] == 0  # type: ignore[index]


def test_the_caps_come_from_the_config() -> None:
    limits = UplinkLimits(packets_per_second=10, packet_burst=5)
    net = Net(make_core(uplink=limits))  # type: ignore[arg-type]
    a, b = (net.connect(browser(n, i)) for i, n in enumerate("ab"))
    net.core.set_speaker("r", "a", net.now)
    flood(net, a, 100, 0.01)  # 1 s at 100 packets/s
    assert 14 <= len(b.take_received()) <= 16  # 5 at once, then 10/s


def test_bucket_refills_and_charges_only_what_it_is_told() -> None:
    total = UplinkDrops()
    cap = UplinkCap(UplinkLimits(packets_per_second=2, packet_burst=2, bytes_per_second=100,
                                 byte_burst=100), 0.0, total)
    assert cap.admit(0.0, 60) and cap.admit(0.0, 60)  # admitting alone charges nothing
    cap.charge(60)
    assert not cap.admit(0.0, 60)  # 40 bytes left
    assert (cap.dropped.byte_rate, total.byte_rate) == (1, 1)
    cap.charge(10)
    assert not cap.admit(0.0, 10)  # no packet left
    assert (cap.dropped.packet_rate, total.packet_rate) == (1, 1)
    assert cap.admit(0.5, 10)  # half a second: one packet, 50 bytes back
    assert (cap.packets, cap.octets) == (pytest.approx(1.0), pytest.approx(80.0))
    cap.admit(0.4, 10)  # a clock that went backwards refills nothing
    assert (cap.packets, cap.octets) == (pytest.approx(1.0), pytest.approx(80.0))


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_limits_must_be_positive_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="uplink"):
        UplinkLimits(bytes_per_second=bad)
    with pytest.raises(ValueError, match="uplink"):
        sfu.RouterConfig(uplink_packets_per_second=bad)


@pytest.fixture
def net() -> Net:
    return Net(make_core())
