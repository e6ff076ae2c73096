"""The RTCP of one peer's transport: what its reports tell us, and the reports we send it.

Each peer gets, about once a second (RFC 3550 §6.2; randomised in [0.5, 1.5] x the interval,
§6.3.5, so that peers do not report in lockstep), one compound report (§6.1): a sender
report for its downlink once that has carried RTP (its RTP timestamp must map to real media
time; browsers use it for A/V sync and RTT), else a receiver report, with a reception report
block about its uplink, then an SDES CNAME. Its own reports give us its uplink's sender
clock (for LSR/DLSR) and, in their blocks about our downlink, loss, jitter and RTT.

Sans-IO: plaintext RTCP in and out; SRTCP protection is the peer's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .reception import ReceptionStats
from .rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    build_receiver_report,
    build_sdes_cname,
    build_sender_report,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)

__all__ = ["DownlinkQuality", "RTCP_INTERVAL", "RtcpReports"]

#: Seconds between two of our reports to a peer, on average.
RTCP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class DownlinkQuality:
    """What the listener's own receiver reports say about the stream we send it."""

    fraction_lost: float
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None


class RtcpReports:
    """Reports in and out for one peer whose downlink SSRC is ``ssrc``."""

    __slots__ = ("ssrc", "cname", "due", "uplink_ssrc", "uplink", "downlink", "_rng")

    def __init__(self, ssrc: int, cname: str, rng: random.Random) -> None:
        self.ssrc = ssrc
        self.cname = cname
        #: when our next report is due (never before media is up)
        self.due = float("inf")
        self.uplink_ssrc: int | None = None
        self.uplink: ReceptionStats | None = None
        self.downlink: DownlinkQuality | None = None
        self._rng = rng

    def start(self, now: float) -> None:
        """Media is up: the first report goes out half an interval from now."""
        self.due = now + 0.5 * RTCP_INTERVAL

    def track_uplink(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        """HOT PATH: account one uplink RTP packet; a new SSRC (rare) restarts the stats."""
        stats = self.uplink
        if ssrc != self.uplink_ssrc or stats is None:
            self.uplink_ssrc = ssrc
            stats = self.uplink = ReceptionStats(ssrc)
        stats.update(seq, timestamp, arrival)

    def receive(self, plain: bytes, now: float, wall: float) -> None:
        """Use a peer's (decrypted) compound report; RtcpError if it is malformed."""
        for packet in parse_rtcp(plain):
            if isinstance(packet, SenderReport):
                if self.uplink is not None and packet.ssrc == self.uplink_ssrc:
                    self.uplink.on_sender_report(packet.ntp_timestamp, now)
                self._on_blocks(packet.reports, wall)
            elif isinstance(packet, ReceiverReport):
                self._on_blocks(packet.reports, wall)
            elif isinstance(packet, Bye):
                pass  # leaving is signaled over the WebSocket; a BYE alone changes nothing

    def _on_blocks(self, blocks: list[ReportBlock], wall: float) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            rtt = round_trip_time(block, wall)
            self.downlink = DownlinkQuality(
                fraction_lost=block.fraction_lost / 256.0,
                packets_lost=block.packets_lost,
                jitter_ms=block.jitter * 1000.0 / 48000.0,
                rtt_ms=None if rtt is None else rtt * 1000.0,
            )

    def build(
        self, now: float, wall: float, sent: tuple[int, int], rtp_timestamp: int | None
    ) -> bytes | None:
        """Our next compound report (plaintext), or None when there is nothing to report.

        ``sent`` is (packets, payload octets) sent on the downlink so far; ``rtp_timestamp``
        the downlink's RTP time at ``now``. Schedules the report after this one.
        """
        self.due = now + RTCP_INTERVAL * self._rng.uniform(0.5, 1.5)
        blocks: list[ReportBlock] = []
        if self.uplink is not None:
            blocks.append(self.uplink.report_block(now))
        packets, octets = sent
        if packets > 0 and rtp_timestamp is not None:
            head = build_sender_report(
                SenderReport(
                    ssrc=self.ssrc,
                    ntp_timestamp=ntp_timestamp(wall),
                    rtp_timestamp=rtp_timestamp,
                    packet_count=packets & 0xFFFFFFFF,
                    octet_count=octets & 0xFFFFFFFF,
                    reports=blocks,
                )
            )
        elif blocks:
            head = build_receiver_report(ReceiverReport(ssrc=self.ssrc, reports=blocks))
        else:
            return None
        return head + build_sdes_cname(self.ssrc, self.cname)

    def uplink_stats(self) -> dict[str, object] | None:
        s = self.uplink
        if s is None:
            return None
        return {
            "ssrc": self.uplink_ssrc,
            "packets_received": s.packets_received,
            "packets_lost": s.cumulative_lost(),
            "jitter_ms": s.jitter_seconds() * 1000.0,
        }

    def downlink_stats(self) -> dict[str, object]:
        q = self.downlink
        if q is None:
            return {}
        return {
            "fraction_lost": q.fraction_lost,
            "packets_lost": q.packets_lost,
            "jitter_ms": q.jitter_ms,
            "rtt_ms": q.rtt_ms,
        }
