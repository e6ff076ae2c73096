"""One browser's transport as the media core sees it: ICE, DTLS, SRTP and RTCP, glued.

A :class:`Peer` owns the sans-IO protocol objects of one member (ICE-lite session, DTLS
endpoint, SRTP session, uplink reception statistics, downlink rewriter, pre-roll buffer) and
answers the core in the core's terms: "here is a Binding request", "here is a DTLS
datagram", "it is now T", each returning the datagrams to send, plus a few facts (is media
up? was it lost, and why? when must I be woken next?). Nothing outside reaches into those
parts, so each rule about them lives here once.

Hot-path handles (``unprotect``, ``audio_level_id``, the fan-out route) are plain attributes,
set when they become valid, so the core's per-packet code does attribute loads, not calls.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .certificate import Certificate
from .dtls import DtlsEndpoint
from .ice import IceLiteSession
from .rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
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
from .srtp import SrtpError, SrtpSession
from .transmit import Destination

if TYPE_CHECKING:
    from collections.abc import Callable

    from .room import Room, Route

__all__ = ["DownlinkQuality", "Peer", "PREROLL_SECONDS", "PREROLL_MAX_PACKETS"]

#: How far back a non-speaker's packets are kept, so that a granted talker's first syllable,
#: sent while the floor request was in flight, is not lost.
PREROLL_SECONDS = 0.3
#: 20 ms Opus frames: 300 ms is 15 packets; keep a margin for 10 ms packetisation.
PREROLL_MAX_PACKETS = 32
#: RFC 3550 §6.2: one compound report per ~1 s for a two-party session; randomised in
#: [0.5, 1.5] x the interval (§6.3.5) so that peers do not report in lockstep.
RTCP_INTERVAL = 1.0

#: Pre-roll entry: (arrival, src_ssrc, seq, timestamp, level, payload).
PrerollEntry = tuple[float, int, int, int, int, bytes]

_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class DownlinkQuality:
    """What the listener's own receiver reports say about the stream we send it."""

    fraction_lost: float
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None


class Peer:
    """Protocol state of one member's single audio transport.

    Life cycle: created by an offer; bound when its first valid ICE check arrives; connected
    when DTLS completes (SRTP keys exist); lost when consent expires, DTLS fails or closes,
    or no DTLS-SRTP session exists within the consent timeout. :attr:`loss` says why.
    """

    __slots__ = (
        "peer_id",
        "room",
        "cname",
        "ice",
        "dtls",
        "srtp",
        "destination",
        "unprotect",
        "rewriter",
        "audio_level_id",
        "sends_audio",
        "receives_audio",
        "uplink_ssrc",
        "uplink_stats",
        "preroll",
        "created",
        "connected_at",
        "next_rtcp",
        "downlink",
        "loss",
        "scheduled",
        "consent_timeout",
        "_rng",
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
        dtls_role: str,
        now: float,
        *,
        consent_timeout: float,
        dtls_handshake_timeout: float,
        rng: random.Random,
    ) -> None:
        self.peer_id = peer_id
        self.room = room
        self.cname = f"walkie-{secrets.token_hex(4)}"
        self.ice = IceLiteSession(
            selection.ice_ufrag, selection.ice_pwd, consent_timeout=consent_timeout, created=now
        )
        self.dtls = DtlsEndpoint(
            certificate,
            dtls_role,  # type: ignore[arg-type]
            [(f.algorithm, f.value) for f in selection.fingerprints],
            handshake_timeout=dtls_handshake_timeout,
        )
        self.srtp: SrtpSession | None = None
        #: where this peer's datagrams go: set by its first valid ICE check, moved by a
        #: nominated check from a new address, cleared when another peer takes the address
        self.destination: Destination | None = None
        #: ``unprotect(srtp) -> rtp`` once connected, else None (hot path: one attribute load)
        self.unprotect: Callable[[bytes], bytes] | None = None
        self.rewriter = DownlinkRewriter(
            rng.getrandbits(32) or 1,
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
        self.next_rtcp = _NEVER
        self.downlink: DownlinkQuality | None = None
        #: (event kind, reason) once this peer must be dropped; None while it is alive
        self.loss: tuple[str, str] | None = None
        #: the deadline this peer is filed under in the core's timer heap
        self.scheduled = _NEVER
        self.consent_timeout = consent_timeout
        self._rng = rng
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

    # ------------------------------------------------------------------ what the core asks

    @property
    def local_ufrag(self) -> str:
        return self.ice.local_ufrag

    @property
    def local_pwd(self) -> str:
        return self.ice.local_pwd

    @property
    def local_ssrc(self) -> int:
        """The SSRC of this peer's downlink: also our sender SSRC in RTCP to this peer."""
        return self.rewriter.ssrc

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self.destination is None else self.destination.address

    @property
    def is_connected(self) -> bool:
        return self.srtp is not None and self.destination is not None

    def route(self) -> Route | None:
        """What the fan-out needs to send this peer the room's audio, or None if it cannot."""
        if self.srtp is None or self.destination is None or not self.receives_audio:
            return None
        return (self, self.rewriter.header, self.srtp.protect_context, self.destination)

    def deadline(self) -> float:
        """When :meth:`on_timeout` must run next (consent, DTLS timers, RTCP)."""
        due = self.ice.consent_deadline()
        if self.srtp is None:
            due = min(due, self.created + self.consent_timeout)
        dtls_due = self.dtls.next_timeout()
        if dtls_due is not None and dtls_due < due:
            due = dtls_due
        if self.next_rtcp < due:
            due = self.next_rtcp
        return due

    # ------------------------------------------------------------------ ICE

    def on_binding_request(
        self, data: bytes, source: tuple[str, int], now: float
    ) -> tuple[bytes, bool]:
        """Verify a connectivity check (StunError if it is not valid for this peer).

        Returns the signed response for ``source`` and whether this check (the first valid
        one, or a nominated one from a new address) points this peer's media at ``source``.
        """
        self.stun_requests += 1
        try:
            result = self.ice.handle(data, source, now)
        except ValueError:
            self.stun_errors += 1
            raise
        return result.response, result.address_changed

    def bind(self, destination: Destination, now: float) -> list[bytes]:
        """Media now goes to ``destination``. A DTLS client starts its handshake on the
        first binding: only now has the address passed a check, so only now may we send."""
        first = self.destination is None and self.dtls.state == "new"
        self.destination = destination
        if first and self.dtls.role == "client":
            return self.dtls.start(now)
        return []

    def unbind(self) -> None:
        """Another peer proved it owns our address (a NAT reused it for someone else).

        Our ICE session forgets the address too, so our own next valid check binds us again,
        wherever we are now; until then nothing is sent to us.
        """
        self.destination = None
        self.ice.forget_address()

    # ------------------------------------------------------------------ DTLS and timers

    def on_dtls(self, data: bytes, now: float) -> list[bytes]:
        """Feed one DTLS datagram; returns what to send. See :attr:`loss` afterwards."""
        out = self.dtls.receive(data, now)
        self._after_dtls()
        return out

    def take_connected(self, now: float) -> bool:
        """True exactly once: when DTLS has just completed and SRTP is ready."""
        if self.srtp is not None or self.dtls.state != "connected":
            return False
        self.srtp = SrtpSession(self.dtls.srtp_keys())
        self.unprotect = self.srtp.unprotect
        self.connected_at = now
        self.next_rtcp = now + 0.5 * RTCP_INTERVAL
        return True

    def on_timeout(self, now: float, wall: float) -> list[bytes]:
        """Run what is due at ``now``: consent and DTLS deadlines, retransmissions, RTCP."""
        if self.ice.consent_expired(now):
            self.loss = ("consent_lost", f"no ICE consent for {self.consent_timeout:g} s")
            return []
        if self.srtp is None and now - self.created >= self.consent_timeout:
            # ICE may be alive while DTLS never starts (or stalls before its own deadline
            # is armed): a peer that cannot carry media is not kept forever.
            self.loss = (
                "dtls_failed",
                f"no DTLS-SRTP session within {self.consent_timeout:g} s",
            )
            return []
        out = self.dtls.handle_timeout(now)
        self._after_dtls()
        if self.loss is None and self.srtp is not None and now >= self.next_rtcp:
            self.next_rtcp = now + RTCP_INTERVAL * self._rng.uniform(0.5, 1.5)
            report = self._rtcp_report(now, wall)
            if report is not None:
                out.append(report)
        return out

    def goodbye(self) -> list[bytes]:
        """DTLS close_notify if connected; the peer is finished either way."""
        return self.dtls.close()

    def _after_dtls(self) -> None:
        state = self.dtls.state
        if state == "failed":
            self.loss = ("dtls_failed", self.dtls.failure or "DTLS failed")
        elif state == "closed":
            self.loss = ("closed", "peer closed DTLS")

    # ------------------------------------------------------------------ RTP and RTCP

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

    def on_rtcp(self, data: bytes, now: float, wall: float) -> None:
        """Use a browser's SR/RR/BYE for statistics. Never forwarded: each leg has its own."""
        assert self.srtp is not None
        try:
            plain = self.srtp.unprotect_rtcp(data)
        except SrtpError:
            self.srtp_errors += 1
            return
        try:
            packets = parse_rtcp(plain)
        except RtcpError:
            self.rtcp_errors += 1
            return
        self.rtcp_received += 1
        for packet in packets:
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

    def _rtcp_report(self, now: float, wall: float) -> bytes | None:
        """Our protected compound RTCP report (RFC 3550 §6.1): SR or RR, then SDES CNAME.

        A sender report only once the downlink has carried RTP: its RTP timestamp must map
        to real media time, and browsers use it for A/V sync and RTT.
        """
        blocks: list[ReportBlock] = []
        if self.uplink_stats is not None:
            blocks.append(self.uplink_stats.report_block(now))
        rewriter = self.rewriter
        rtp_ts = rewriter.rtp_timestamp_at(now)
        try:
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
            report = self.srtp.protect_rtcp(head + build_sdes_cname(rewriter.ssrc, self.cname))  # type: ignore[union-attr]
        except (SrtpError, RtcpError, ValueError):
            self.rtcp_errors += 1
            return None
        self.rtcp_sent += 1
        return report

    # ------------------------------------------------------------------ stats

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
        address = self.address
        return {
            "peer_id": self.peer_id,
            "room_id": self.room.room_id,
            "address": list(address) if address else None,
            "ice": "connected" if address else "checking",
            "dtls": self.dtls.state,
            "srtp_profile": self.srtp.profile if self.srtp else None,
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
