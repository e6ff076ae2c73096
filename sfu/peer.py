"""One browser's transport as the media core sees it: ICE, DTLS, SRTP and RTCP, glued.

A :class:`Peer` owns the sans-IO protocol objects of one member (ICE-lite session, DTLS
endpoint, SRTP session, RTCP reports, downlink header, pre-roll buffer) and
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
from typing import TYPE_CHECKING

from .certificate import Certificate
from .dtls import DtlsEndpoint
from .ice import IceLiteSession
from .reports import RtcpReports
from .rewriter import DownlinkStream, ListenerHeader
from .rtcp import RtcpError
from .sdp import AudioSelection, answer_direction
from .srtp import SrtpError, SrtpSession
from .transmit import Destination
from .uplinkcap import UplinkCap

if TYPE_CHECKING:
    from collections.abc import Callable

    from .room import Room, Route

__all__ = ["Peer", "PREROLL_SECONDS", "PREROLL_MAX_PACKETS"]

#: How far back a non-speaker's packets are kept, so that a granted talker's first syllable,
#: sent while the floor request was in flight, is not lost.
PREROLL_SECONDS = 0.3
#: 20 ms Opus frames: 300 ms is 15 packets; keep a margin for 10 ms packetisation.
PREROLL_MAX_PACKETS = 32
#: Pre-roll entry: (arrival, src_ssrc, seq, timestamp, level, payload, RED layout or None).
PrerollEntry = tuple[float, int, int, int, int, bytes, "tuple[int, int] | None"]

_NEVER = math.inf


class Peer:
    """Protocol state of one member's single audio transport.

    Life cycle: created by an offer; bound when its first valid ICE check arrives; connected
    when DTLS completes (SRTP keys exist); lost when consent expires, DTLS fails or closes,
    or no DTLS-SRTP session exists within the consent timeout. :attr:`loss` says why.
    """

    __slots__ = (
        "peer_id",
        "room",
        "ice",
        "dtls",
        "srtp",
        "destination",
        "unprotect",
        "header",
        "audio_level_id",
        "opus_pt",
        "red_pt",
        "sends_audio",
        "receives_audio",
        "rtcp",
        "track_uplink",
        "preroll",
        "created",
        "connected_at",
        "loss",
        "scheduled",
        "consent_timeout",
        "uplink_cap",
        # counters
        "rtp_received",
        "rtp_forwarded_in",
        "octets_forwarded_in",
        "seq_skip",
        "replayed_packets",
        "replayed_octets",
        "_heard",
        "_listening_since",
        "rtp_dropped_not_speaker",
        "rtp_dropped_not_sending",
        "rtp_tail_forwarded",
        "srtp_errors",
        "rtp_errors",
        "red_dropped",
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
        uplink_cap: UplinkCap,
    ) -> None:
        self.peer_id = peer_id
        self.room = room
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
        #: this peer's downlink header: its own SSRC, payload type and extension ids
        self.header = ListenerHeader(
            rng.getrandbits(32) or 1,
            selection.opus_pt,
            selection.audio_level_id,
            selection.mid_ext_id,
            selection.mid,
        )
        self.audio_level_id = selection.audio_level_id or 0
        # What our answer allows (sfu/sdp/answer.py): a peer that may not send (a listen-only
        # member, or an offer that sends nothing) has its RTP dropped before SRTP.
        direction = answer_direction(selection)
        self.sends_audio = direction in ("sendrecv", "recvonly")
        self.receives_audio = direction in ("sendrecv", "sendonly")
        #: its Opus payload type, and its RED one (-1: not negotiated): a RED peer sends RED
        #: and is sent RED; the others get the primary block only (sfu/red.py)
        self.opus_pt = selection.opus_pt
        self.red_pt = -1 if selection.red_pt is None else selection.red_pt
        #: RTCP in and out (sfu/reports.py); ``track_uplink`` is its per-packet entry
        self.rtcp = RtcpReports(self.header.ssrc, f"walkie-{secrets.token_hex(4)}", rng)
        self.track_uplink = self.rtcp.track_uplink
        self.preroll: deque[PrerollEntry] = deque(maxlen=PREROLL_MAX_PACKETS)
        self.created = now
        self.connected_at: float | None = None
        #: (event kind, reason) once this peer must be dropped; None while it is alive
        self.loss: tuple[str, str] | None = None
        #: the deadline this peer is filed under in the core's timer heap
        self.scheduled = _NEVER
        self.consent_timeout = consent_timeout
        self.uplink_cap = uplink_cap  # packets/s and bytes/s of its uplink (sfu/uplinkcap.py)
        self.rtp_received = 0
        self.rtp_forwarded_in = 0
        self.octets_forwarded_in = 0
        #: room-stream packets this peer never received because it was their talker: its
        #: downlink numbers them out, so its sequence stays gapless (sfu/rewriter.py)
        self.seq_skip = 0
        #: say-again packets sent to this peer alone (sfu/replayer.py): its downlink carried
        #: them on top of the room's stream (its ``seq_skip`` stepped back once for each)
        self.replayed_packets = 0
        self.replayed_octets = 0
        # What the room's stream carried while this peer listened (see downlink_sent).
        self._heard = (0, 0)
        self._listening_since: tuple[int, int] | None = None
        self.rtp_dropped_not_speaker = 0
        self.rtp_dropped_not_sending = 0  # RTP although our answer did not let it send
        self.rtp_tail_forwarded = 0  # forwarded after its floor ended (sfu/room.py TAIL_SECONDS)
        self.srtp_errors = 0
        self.rtp_errors = 0
        self.red_dropped = 0  # malformed RED from this peer, never forwarded (sfu/red.py)
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
    def cname(self) -> str:
        return self.rtcp.cname

    @property
    def local_ssrc(self) -> int:
        """The SSRC of this peer's downlink: also our sender SSRC in RTCP to this peer."""
        return self.header.ssrc

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
        h = self.header
        return (self, h.plain, h.leveled, h.level_pos, h.payload_type,
                self.srtp.protect_context, self.destination)

    def listen(self, stream: DownlinkStream, listening: bool) -> None:
        """The room's routes were rebuilt: this peer now does (or does not) get its stream.

        The fan-out keeps no per-listener counters; what a listener was sent is what the
        room's stream carried while it listened, minus its own talk (never sent back).
        """
        since = self._listening_since
        if listening:
            if since is None:
                self._listening_since = (stream.packets, stream.octets)
                if stream.csrc >= 0:
                    self.header.follow(stream.csrc)
        elif since is not None:
            self._heard = (self._heard[0] + stream.packets - since[0],
                           self._heard[1] + stream.octets - since[1])
            self._listening_since = None

    def downlink_sent(self) -> tuple[int, int]:
        """RTP packets and payload octets sent on this peer's downlink (for its SR)."""
        packets, octets = self._heard
        packets += self.replayed_packets
        octets += self.replayed_octets
        since = self._listening_since
        if since is not None:
            stream = self.room.stream
            packets += stream.packets - since[0]
            octets += stream.octets - since[1]
        if self.receives_audio:  # the talker was listening while its own packets went out
            packets -= self.rtp_forwarded_in
            octets -= self.octets_forwarded_in
        return packets, octets

    def deadline(self) -> float:
        """When :meth:`on_timeout` must run next (consent, DTLS timers, RTCP)."""
        due = self.ice.consent_deadline()
        if self.srtp is None:
            due = min(due, self.created + self.consent_timeout)
        dtls_due = self.dtls.next_timeout()
        if dtls_due is not None and dtls_due < due:
            due = dtls_due
        if self.rtcp.due < due:
            due = self.rtcp.due
        return due

    # ------------------------------------------------------------------ ICE

    def on_binding_request(
        self, data: bytes, source: tuple[str, int], now: float
    ) -> tuple[bytes, bool, bool]:
        """Verify a connectivity check (StunError if it is not valid for this peer).

        Returns the signed response for ``source``, whether this check points this peer's
        media at ``source`` (the first valid one, a nominated one, or any once the bound
        address went quiet: sfu/ice.py), and whether ``source`` became its candidate path
        (media moves there on the peer's first authenticated packet from it).
        """
        self.stun_requests += 1
        try:
            result = self.ice.handle(data, source, now)
        except ValueError:
            self.stun_errors += 1
            raise
        return result.response, result.address_changed, result.candidate

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
        self.rtcp.start(now)
        return True

    def on_timeout(self, now: float, wall: float) -> list[bytes]:
        """Run what is due at ``now``: consent and DTLS deadlines, retransmissions, RTCP."""
        if self.ice.consent_expired(now):
            self.loss = ("consent_lost", f"no ICE consent for {self.consent_timeout:g} s")
            return []
        if self.srtp is None and now >= self.created + self.consent_timeout:  # = deadline()
            # ICE may be alive while DTLS never starts (or stalls before its own deadline
            # is armed): a peer that cannot carry media is not kept forever.
            self.loss = (
                "dtls_failed",
                f"no DTLS-SRTP session within {self.consent_timeout:g} s",
            )
            return []
        out = self.dtls.handle_timeout(now)
        self._after_dtls()
        if self.loss is None and self.srtp is not None and now >= self.rtcp.due:
            report = self.rtcp.build(
                now, wall, self.downlink_sent(), self.room.stream.rtp_timestamp_at(now)
            )
            if report is not None:
                try:
                    out.append(self.srtp.protect_rtcp(report))
                except SrtpError:
                    self.rtcp_errors += 1
                else:
                    self.rtcp_sent += 1
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

    def take_preroll(self, now: float) -> list[PrerollEntry]:
        """The buffered packets young enough to be worth flushing, oldest first; empties the buffer."""
        fresh = [entry for entry in self.preroll if now - entry[0] <= PREROLL_SECONDS]
        self.preroll.clear()
        return fresh

    def on_rtcp(self, data: bytes, now: float, wall: float) -> bool:
        """An SRTCP datagram from this peer, for statistics (never forwarded); True if it
        passed SRTP authentication (then it counts against the uplink cap)."""
        assert self.srtp is not None
        try:
            plain = self.srtp.unprotect_rtcp(data)
        except SrtpError:
            self.srtp_errors += 1
            return False
        try:
            self.rtcp.receive(plain, now, wall)
        except RtcpError:
            self.rtcp_errors += 1
            return True
        self.rtcp_received += 1
        return True

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, object]:
        """A JSON-friendly snapshot for operators and tests."""
        packets, octets = self.downlink_sent()
        downlink: dict[str, object] = {
            "ssrc": self.header.ssrc,
            "packets_sent": packets,
            "octets_sent": octets,
            **self.rtcp.downlink_stats(),
        }
        address = self.address
        drops = self.uplink_cap.dropped
        return {
            "peer_id": self.peer_id,
            "room_id": self.room.room_id,
            "address": list(address) if address else None,
            "ice": "connected" if address else "checking",
            "dtls": self.dtls.state,
            "dtls_cipher": self.dtls.cipher,
            "srtp_profile": self.srtp.profile if self.srtp else None,
            "connected": self.is_connected,
            "rtp_received": self.rtp_received,
            "rtp_forwarded_in": self.rtp_forwarded_in,
            "rtp_sent": packets,
            "rtp_dropped_not_speaker": self.rtp_dropped_not_speaker,
            "rtp_dropped_not_sending": self.rtp_dropped_not_sending,
            "rtp_tail_forwarded": self.rtp_tail_forwarded,
            "rtp_replayed": self.replayed_packets,
            "uplink_dropped_packet_rate": drops.packet_rate,
            "uplink_dropped_byte_rate": drops.byte_rate,
            "srtp_errors": self.srtp_errors,
            "rtp_errors": self.rtp_errors,
            "red": self.red_pt >= 0,
            "red_dropped": self.red_dropped,
            "rtcp_received": self.rtcp_received,
            "rtcp_sent": self.rtcp_sent,
            "rtcp_errors": self.rtcp_errors,
            "stun_requests": self.stun_requests,
            "stun_errors": self.stun_errors,
            "uplink": self.rtcp.uplink_stats(),
            "downlink": downlink,
        }
