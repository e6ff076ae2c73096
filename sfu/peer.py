"""One WebRTC peer as the router sees it: the per-peer protocol state machines, glued.

A :class:`Peer` owns the sans-IO pieces for one browser (ICE-lite session, DTLS endpoint, SRTP
session, uplink reception statistics, downlink rewriter, pre-roll buffer). It never touches a
socket: the router feeds it datagrams and sends what it returns. Keeping the glue here keeps
the router's hot loop short and lets tests drive a peer without any I/O.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dtls import Certificate, DtlsEndpoint
from .ice import IceLiteSession
from .rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    build_receiver_report,
    build_sdes_cname,
    build_sender_report,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)
from .rtp import DownlinkRewriter
from .sdp import AudioSelection
from .srtp import SrtpSession

if TYPE_CHECKING:
    from .room import Room
    from .udp import PeerLink

#: How far back a non-speaker's packets are kept, so that a granted talker's first syllable,
#: sent while the floor request was in flight, is not lost (DESIGN.md, "pre-roll").
PREROLL_SECONDS = 0.3
#: 20 ms Opus frames: 300 ms is 15 packets; keep a margin for 10 ms packetisation.
PREROLL_MAX_PACKETS = 32

#: Pre-roll entry: (arrival, src_ssrc, seq, timestamp, level, payload).
PrerollEntry = tuple[float, int, int, int, int, bytes]


@dataclass(frozen=True, slots=True)
class DownlinkQuality:
    """What the listener's own receiver reports say about the stream we send it."""

    fraction_lost: float
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None


class Peer:
    """Protocol state of one member's single audio transport."""

    __slots__ = (
        "peer_id",
        "room",
        "selection",
        "ice",
        "dtls",
        "srtp",
        "address",
        "link",
        "rewriter",
        "audio_level_id",
        "sends_audio",
        "receives_audio",
        "uplink_ssrc",
        "uplink_stats",
        "preroll",
        "created",
        "connected_at",
        "dtls_timer",
        "next_rtcp",
        "cname",
        "downlink",
        # counters
        "rtp_received",
        "rtp_forwarded_in",
        "rtp_dropped_not_speaker",
        "srtp_errors",
        "rtp_errors",
        "rtcp_received",
        "rtcp_errors",
        "rtcp_sent",
        "stun_requests",
        "stun_errors",
    )

    def __init__(
        self,
        peer_id: str,
        room: Room,
        selection: AudioSelection,
        certificate: Certificate,
        now: float,
        consent_timeout: float,
        dtls_handshake_timeout: float,
    ) -> None:
        self.peer_id = peer_id
        self.room = room
        self.selection = selection
        self.ice = IceLiteSession(
            selection.ice_ufrag,
            selection.ice_pwd,
            consent_timeout=consent_timeout,
            created=now,
        )
        # RFC 5763 §5: the answerer to an 'actpass' offer picks its role; we take the passive
        # (server) side, so the browser starts the handshake as soon as its ICE check succeeds
        # and we never send a ClientHello to an address before it has passed a check. Only an
        # offer that insists on 'passive' makes us the client.
        role = "client" if selection.setup == "passive" else "server"
        self.dtls = DtlsEndpoint(
            certificate,
            role,
            [(f.algorithm, f.value) for f in selection.fingerprints],
            handshake_timeout=dtls_handshake_timeout,
        )
        self.srtp: SrtpSession | None = None
        self.address: tuple[str, int] | None = None
        self.link: PeerLink | None = None  # how we send to `address` (set by the router)
        self.rewriter = DownlinkRewriter(
            secrets.randbits(32) or 1,
            selection.opus_pt,
            selection.audio_level_id,
            selection.mid_ext_id,
            selection.mid,
        )
        self.audio_level_id = selection.audio_level_id or 0
        self.sends_audio = selection.direction in ("sendrecv", "sendonly")
        self.receives_audio = selection.direction in ("sendrecv", "recvonly")
        self.uplink_ssrc: int | None = None
        self.uplink_stats: ReceptionStats | None = None
        self.preroll: deque[PrerollEntry] = deque(maxlen=PREROLL_MAX_PACKETS)
        self.created = now
        self.connected_at: float | None = None
        self.dtls_timer: object | None = None
        self.next_rtcp = 0.0
        self.cname = "walkie"
        self.downlink: DownlinkQuality | None = None
        self.rtp_received = 0
        self.rtp_forwarded_in = 0
        self.rtp_dropped_not_speaker = 0
        self.srtp_errors = 0
        self.rtp_errors = 0
        self.rtcp_received = 0
        self.rtcp_errors = 0
        self.rtcp_sent = 0
        self.stun_requests = 0
        self.stun_errors = 0

    @property
    def local_ssrc(self) -> int:
        """The SSRC of this peer's downlink: also our sender SSRC in RTCP to this peer."""
        return self.rewriter.ssrc

    @property
    def is_connected(self) -> bool:
        return self.srtp is not None and self.address is not None

    def on_dtls_connected(self, now: float) -> None:
        """Derive SRTP contexts from the finished handshake (RFC 5764 §4.2)."""
        self.srtp = SrtpSession(self.dtls.srtp_keys())
        self.connected_at = now
        self.next_rtcp = now + 0.5

    def track_uplink(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        """Per-packet reception statistics; a new SSRC (rare) restarts them."""
        stats = self.uplink_stats
        if ssrc != self.uplink_ssrc or stats is None:
            self.uplink_ssrc = ssrc
            stats = self.uplink_stats = ReceptionStats(ssrc)
        stats.update(seq, timestamp, arrival)

    def take_preroll(self, now: float) -> list[PrerollEntry]:
        """The buffered packets young enough to be worth flushing, oldest first; empties the buffer."""
        fresh = [entry for entry in self.preroll if now - entry[0] <= PREROLL_SECONDS]
        self.preroll.clear()
        return fresh

    def on_rtcp(self, plain: bytes, now: float, wall: float) -> None:
        """Use a browser's SR/RR/BYE for statistics. Never forwarded (DESIGN.md)."""
        for packet in parse_rtcp(plain):
            if isinstance(packet, SenderReport):
                if self.uplink_stats is not None and packet.ssrc == self.uplink_ssrc:
                    self.uplink_stats.on_sender_report(packet.ntp_timestamp, now)
                self._on_report_blocks(packet.reports, wall)
            elif isinstance(packet, ReceiverReport):
                self._on_report_blocks(packet.reports, wall)
            elif isinstance(packet, Bye):
                pass  # leaving is signaled over the WebSocket; a BYE alone changes nothing

    def _on_report_blocks(self, blocks: list[ReportBlock], wall: float) -> None:
        for block in blocks:
            if block.ssrc != self.rewriter.ssrc:
                continue
            rtt = round_trip_time(block, wall)
            self.downlink = DownlinkQuality(
                fraction_lost=block.fraction_lost / 256.0,
                packets_lost=block.packets_lost,
                jitter_ms=block.jitter * 1000.0 / 48000.0,
                rtt_ms=None if rtt is None else rtt * 1000.0,
            )

    def build_rtcp(self, now: float, wall: float) -> bytes | None:
        """Our compound RTCP report for this peer (RFC 3550 §6.1): SR or RR, then SDES CNAME.

        A sender report only once the downlink has carried RTP: its RTP timestamp must map to
        real media time, and browsers use it for A/V sync and RTT.
        """
        blocks: list[ReportBlock] = []
        if self.uplink_stats is not None:
            blocks.append(self.uplink_stats.report_block(now))
        rewriter = self.rewriter
        rtp_ts = rewriter.rtp_timestamp_at(now)
        if rtp_ts is not None:
            head = build_sender_report(
                SenderReport(
                    ssrc=rewriter.ssrc,
                    ntp_timestamp=ntp_timestamp(wall),
                    rtp_timestamp=rtp_ts,
                    packet_count=rewriter.packets_sent,
                    octet_count=rewriter.octets_sent,
                    reports=blocks,
                )
            )
        elif blocks:
            head = build_receiver_report(ReceiverReport(ssrc=rewriter.ssrc, reports=blocks))
        else:
            return None
        return head + build_sdes_cname(rewriter.ssrc, self.cname)

    def stats(self) -> dict[str, object]:
        """A JSON-friendly snapshot for operators and tests."""
        uplink: dict[str, object] | None = None
        if self.uplink_stats is not None:
            s = self.uplink_stats
            uplink = {
                "ssrc": self.uplink_ssrc,
                "packets_received": s.packets_received,
                "packets_lost": s.cumulative_lost(),
                "jitter_ms": s.jitter_seconds() * 1000.0,
            }
        downlink: dict[str, object] = {
            "ssrc": self.rewriter.ssrc,
            "packets_sent": self.rewriter.packets_sent,
            "octets_sent": self.rewriter.octets_sent,
        }
        if self.downlink is not None:
            downlink.update(
                fraction_lost=self.downlink.fraction_lost,
                packets_lost=self.downlink.packets_lost,
                jitter_ms=self.downlink.jitter_ms,
                rtt_ms=self.downlink.rtt_ms,
            )
        return {
            "peer_id": self.peer_id,
            "room_id": self.room.room_id,
            "address": list(self.address) if self.address else None,
            "ice": "connected" if self.address else "checking",
            "dtls": self.dtls.state,
            "srtp_profile": self.dtls.srtp_keys().profile if self.srtp else None,
            "connected": self.is_connected,
            "rtp_received": self.rtp_received,
            "rtp_forwarded_in": self.rtp_forwarded_in,
            "rtp_sent": self.rewriter.packets_sent,
            "rtp_dropped_not_speaker": self.rtp_dropped_not_speaker,
            "srtp_errors": self.srtp_errors,
            "rtp_errors": self.rtp_errors,
            "rtcp_received": self.rtcp_received,
            "rtcp_sent": self.rtcp_sent,
            "rtcp_errors": self.rtcp_errors,
            "stun_requests": self.stun_requests,
            "stun_errors": self.stun_errors,
            "uplink": uplink,
            "downlink": downlink,
        }
