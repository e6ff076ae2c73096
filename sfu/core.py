"""The media core: every rule of the forwarder, with no sockets, no clock and no tasks.

Shaped like str0m's ``Rtc`` or h11's ``Connection``: the caller feeds it

* ``handle_datagram(now, source, data)`` for every datagram that arrived on the port,
* ``handle_timeout(now)`` when the deadline it gave has passed,
* control commands (``open_peer``, ``remove_peer``, ``set_speaker``, ``close``),

and takes back what to transmit (``poll_transmit``, or the whole :attr:`transmits` queue at
once for a batching driver), what happened (``poll_event``) and when to call it next
(``poll_timeout``). Time is always passed in (monotonic seconds); nothing here reads a clock.

The rules it owns: RFC 7983 demultiplexing (through :func:`sfu.demux.classify`); binding a
peer to the address of its first valid ICE check, moving it on a nominated check from a new
address (or on a peer's authenticated media from the address of its latest valid check, its
candidate path: sfu/ice.py), and taking an address from a stale peer; consent expiry and reaping; driving DTLS
and deriving SRTP; each peer's uplink cap (applied here, defined in :mod:`sfu.uplinkcap`);
which certificate a new peer gets (:class:`~sfu.certificate.CertificateKeeper`); the speaker
gate and pre-roll; fan-out; RTCP timing; counters. Each peer's own protocol state lives in
its :class:`~sfu.peer.Peer`.

(A little over 400 lines on purpose: the core is the one place where the media plane's
rules meet, and reading them together is the point; the per-peer, per-room, transmit and
RTCP parts are already in peer.py, room.py, transmit.py and reports.py, the uplink cap in
uplinkcap.py, the transmissions kept for recording and replay in transmissions.py.)
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import deque
from dataclasses import dataclass

from .capture import DEFAULT_MAX_BYTES, Transmission
from .certificate import Certificate, CertificateKeeper
from .demux import Kind, classify
from .ice import StunError, binding_username
from .peer import Peer
from .red import RedError, red_layout
from .replay import ReplayEvent, ReplayLimits
from .replayer import ReplayDesk
from .room import Room
from .rtp import RtpError, read_uplink
from .sdp import AudioSelection, Fingerprint, LocalParams, dtls_role, local_setup_for
from .silence import SOUNDING, SpeakerWatch
from .srtp import SrtpError
from .transmit import MAX_PAYLOAD, Destination, TransmitQueue
from .transmissions import Transmissions
from .uplinkcap import UplinkCap, UplinkDrops, UplinkLimits

__all__ = ["CoreConfig", "MediaCore", "OfferError", "PeerEvent"]

Address = tuple[str, int]


class OfferError(ValueError):
    """An SDP offer the media plane cannot serve; ``str()`` says why, for the client."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """Something the signaling side must know about a peer.

    ``kind`` is one of ``connected`` (ICE and DTLS done: media can flow), ``consent_lost`` (no
    valid STUN check for the consent timeout: the peer was removed), ``dtls_failed`` (handshake
    failed, fingerprint mismatch or no DTLS in time: removed), ``closed`` (the peer closed
    DTLS: removed); a worker pool adds ``reset`` (the peer's worker died: removed).
    About the room's speaker (sfu/silence.py): ``speaker_active`` (its RTP arrives) and
    ``speaker_silent`` (none for ``silent_for`` seconds, at least ``SILENCE_AFTER``).
    When the core keeps transmissions (``CoreConfig.capture_seconds``): ``transmission``, a
    talker's turn is over (``peer_id`` is the talker, who may have left since) and
    ``transmission`` holds its packets (sfu/capture.py, sfu/transmissions.py).
    """

    kind: str
    peer_id: str
    room_id: str
    reason: str = ""
    silent_for: float = 0.0
    transmission: Transmission | None = None


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """What the core announces and how long it waits."""

    candidate_ip: str
    candidate_port: int
    consent_timeout: float = 30.0
    dtls_handshake_timeout: float = 10.0
    #: every peer's uplink cap, packets/s and bytes/s (sfu/uplinkcap.py)
    uplink: UplinkLimits = UplinkLimits()
    #: say-again (sfu/replay.py): how much of each room's audio is kept; None: nothing
    replay: ReplayLimits | None = None
    #: keep each room's transmissions for recording or replay (sfu/capture.py): at most
    #: this many seconds of audio and bytes each; 0 seconds: off (nothing kept, no cost)
    capture_seconds: float = 0.0
    capture_bytes: int = DEFAULT_MAX_BYTES


class MediaCore:
    """All peers and rooms of one media worker, sans-IO."""

    def __init__(
        self,
        config: CoreConfig,
        certificate: Certificate | CertificateKeeper,
        *,
        wall_offset: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        """``wall_offset`` turns the caller's monotonic time into Unix time (for RTCP's NTP
        timestamps, and the certificate's validity): ``wall = now + wall_offset``.

        ``certificate``: our DTLS identity; given a :class:`CertificateKeeper`, each new
        peer gets its current certificate, renewed before it expires (a bare
        :class:`Certificate` is kept by a keeper of its own).
        """
        self.config = config
        if isinstance(certificate, Certificate):
            certificate = CertificateKeeper(certificate)
        self.certificates = certificate
        self.wall_offset = wall_offset
        self._rng = rng or random.Random()
        self._peers: dict[str, Peer] = {}
        self._rooms: dict[str, Room] = {}
        self._by_ufrag: dict[str, Peer] = {}
        self._by_address: dict[Address, Peer] = {}
        #: each peer's candidate path (sfu/ice.py): an address that passed a valid check
        #: while another was bound; looked up only for datagrams from an unbound address
        self._candidates: dict[Address, Peer] = {}
        #: what to send, in order (sfu/transmit.py)
        self.transmits = TransmitQueue()
        self._events: deque[PeerEvent | ReplayEvent] = deque()
        self._timers: list[tuple[float, int, Peer]] = []
        self._timer_seq = 0
        #: speakers' uplink silence checks (the end-of-media timer's media half)
        self._watch = SpeakerWatch(PeerEvent)
        #: say-again: kept transmissions and replays (sfu/replayer.py), when turned on
        self._replay = (ReplayDesk(config.replay, self._rng, self._events)
                        if config.replay is not None else None)
        #: each room's transmission being kept, when recording or replay is on
        seconds, size = config.capture_seconds, config.capture_bytes
        replay = config.replay
        if replay is not None:  # say-again keeps what the capture hands out
            if seconds:  # recording too: the larger bounds (the store keeps within its own)
                seconds, size = max(seconds, replay.seconds), max(size, replay.max_bytes)
            else:
                seconds, size = replay.seconds, replay.max_bytes
        finished = (self._events if self._replay is None
                    else self._replay.keeping(self._events, self._rooms))
        self._turns = (Transmissions(seconds, size, finished, PeerEvent, wall_offset)
                       if seconds else None)
        self._closed = False
        # worker-wide counters (per-packet counters live on peers and rooms)
        self.datagrams_received = 0
        self.bytes_received = 0
        self.srtp_auth_failures = 0  # RTP from a known peer that failed SRTP authentication
        self.rtp_not_speaker = 0  # RTP from a non-speaker: kept as pre-roll, not forwarded
        #: RTP from a peer our answer let only listen (listen-only member, or a recvonly
        #: offer): dropped unread (sfu/sdp/answer.py ``answer_direction``)
        self.rtp_not_sending = 0
        self.payload_bytes_forwarded = 0  # Opus payload octets sent, summed over listeners
        self.dropped_unknown_kind = 0
        self.dropped_unknown_source = 0
        self.packets_forwarded = 0
        self.red_dropped = 0  # malformed RED payloads (sfu/red.py), never forwarded
        #: uplink datagrams dropped over a peer's cap, by reason (sfu/uplinkcap.py)
        self.uplink_drops = UplinkDrops()

    # ------------------------------------------------------------------ outputs

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        """The next datagram to send and its destination, or None."""
        return self.transmits.pop()

    def poll_event(self) -> PeerEvent | ReplayEvent | None:
        """The next event for the signaling side, or None."""
        return self._events.popleft() if self._events else None

    def poll_timeout(self) -> float | None:
        """When :meth:`handle_timeout` must be called next (None: only when input arrives)."""
        timers = self._timers
        watch = self._watch.poll_timeout()
        if self._replay is not None:
            replay = self._replay.poll_timeout()
            if replay is not None and (watch is None or replay < watch):
                watch = replay
        if self._turns is not None:  # a turn that ends with its talker's tail
            tail = self._turns.poll_timeout()
            if tail is not None and (watch is None or tail < watch):
                watch = tail
        while timers:
            deadline, _, peer = timers[0]
            if peer.scheduled == deadline and self._peers.get(peer.peer_id) is peer:
                return deadline if watch is None else min(deadline, watch)
            heapq.heappop(timers)  # superseded by an earlier deadline, or the peer is gone
        return watch

    # ------------------------------------------------------------------ commands

    def open_peer(
        self, peer_id: str, room_id: str, selection: AudioSelection, now: float
    ) -> LocalParams:
        """Create the transport for an offer already parsed and selected; return our side.

        Raises :class:`OfferError` when it cannot be served, ``ValueError`` when ``peer_id``
        is in use. Nothing changes on error.
        """
        if self._closed:
            raise OfferError("the media worker is shutting down")
        if peer_id in self._peers:
            raise ValueError(f"peer {peer_id!r} already exists")
        room = self._rooms.get(room_id)
        if room is None:
            room = Room(room_id, self._rng)
            if self._turns is not None:
                room.capture = self._turns.capture_for(room_id)
        certificate = self.certificates.current(now + self.wall_offset)
        try:
            setup = local_setup_for(selection.setup)
            role = dtls_role(setup)
            peer = self._new_peer(peer_id, room, selection, role, certificate, now)
            while peer.local_ufrag in self._by_ufrag:  # astronomically rare; stay correct
                peer = self._new_peer(peer_id, room, selection, role, certificate, now)
            local = LocalParams(
                ice_ufrag=peer.local_ufrag,
                ice_pwd=peer.local_pwd,
                fingerprint=Fingerprint("sha-256", certificate.fingerprint("sha-256")),
                setup=setup,
                candidate_ip=self.config.candidate_ip,
                candidate_port=self.config.candidate_port,
                ssrc=peer.local_ssrc,
                cname=peer.cname,
                # RFC 8830 allows only token characters here, whatever the room is called.
                msid_stream="walkie-" + hashlib.sha256(room_id.encode()).hexdigest()[:16],
                msid_track=f"room-{peer.local_ssrc:08x}",
            )
        except ValueError as exc:  # e.g. ICE credentials outside RFC 8839's alphabet/lengths
            raise OfferError(str(exc)) from None
        self._rooms[room_id] = room
        room.members[peer_id] = peer
        self._peers[peer_id] = peer
        self._by_ufrag[peer.local_ufrag] = peer
        self._schedule(peer)
        return local

    def _new_peer(
        self, peer_id: str, room: Room, selection: AudioSelection, role: str,
        certificate: Certificate, now: float,
    ) -> Peer:
        return Peer(
            peer_id,
            room,
            selection,
            certificate,
            role,
            now,
            consent_timeout=self.config.consent_timeout,
            dtls_handshake_timeout=self.config.dtls_handshake_timeout,
            rng=self._rng,
            uplink_cap=UplinkCap(self.config.uplink, now, self.uplink_drops),
        )

    def remove_peer(self, peer_id: str) -> None:
        """Forget a peer (idempotent), saying goodbye over DTLS. No event: the caller asked."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            self._send(peer, peer.goodbye())
            self._drop(peer)

    def set_speaker(self, room_id: str, peer_id: str | None, now: float) -> None:
        """Choose whose audio the room forwards (``None``: nobody); KeyError if unknown.

        The new speaker's pre-roll, what it sent in the last ``PREROLL_SECONDS`` while its
        floor request travelled, is forwarded at once. The previous speaker's packets that
        arrive within ``TAIL_SECONDS`` (sfu/room.py) are still forwarded until the new
        speaker's audio starts: its last words were on their way.
        """
        room = self._rooms.get(room_id)
        if room is None:
            if peer_id is None:
                return
            raise KeyError(f"no room {room_id!r}")
        speaker = None
        if peer_id is not None:
            speaker = room.members.get(peer_id)
            if speaker is None:
                raise KeyError(f"peer {peer_id!r} is not in room {room_id!r}")
        if not room.set_speaker(speaker, now):
            return
        self._watch.follow(room, now)
        if self._turns is not None:
            self._turns.speaker_changed(room)  # the open turn ends now, or with its tail
        if speaker is None:
            return
        if room.replays:  # live audio wins: someone is about to talk
            self._replay.live(room)  # type: ignore[union-attr]
        preroll = speaker.take_preroll(now)
        if preroll:
            room.tail = None  # the new speaker's audio starts now: the old tail is over
        for arrival, ssrc, seq, ts, level, payload, red in preroll:
            self._forward(room, speaker, ssrc, seq, ts, level, payload, arrival, red)

    def start_replay(self, room_id: str, peer_id: str, transmission_id: str, now: float) -> None:
        """Play a kept transmission of the room to ``peer_id`` only (say-again). The answer
        is a ``replay_started`` or ``replay_ended`` event; KeyError for an unknown peer or
        a room it is not in, ValueError when replay is off."""
        room, peer = self._member(room_id, peer_id)
        self._replay_desk().start(room, peer, transmission_id, now, self.transmits)

    def stop_replay(self, room_id: str, peer_id: str) -> None:
        """End ``peer_id``'s replay, if it hears one (``replay_ended`` ``stopped``)."""
        room, peer = self._member(room_id, peer_id)
        self._replay_desk().stop(room, peer.peer_id)

    def close(self) -> None:
        """Say goodbye to every peer and refuse new ones (the driver then flushes and stops)."""
        self._closed = True
        for peer in list(self._peers.values()):
            self.remove_peer(peer.peer_id)

    # ------------------------------------------------------------------ inputs

    def handle_datagram(self, now: float, source: Address, data: bytes) -> None:
        """One datagram from ``source``; whatever it causes is queued (transmits, events)."""
        self.datagrams_received += 1
        self.bytes_received += len(data)
        kind = classify(data)
        if kind is Kind.RTP:
            peer = self._by_address.get(source)
            if peer is None or peer.unprotect is None:
                self._from_candidate(kind, source, data, now)
            else:
                self._on_rtp(peer, data, now)
        elif kind is Kind.STUN:
            self._on_stun(data, source, now)
        elif kind is Kind.DTLS:
            peer = self._by_address.get(source)
            if peer is None:
                self.dropped_unknown_source += 1
            else:
                self._send(peer, peer.on_dtls(data, now))
                self._settle(peer, now)
        elif kind is Kind.RTCP:
            peer = self._by_address.get(source)
            if peer is None or peer.srtp is None:
                self._from_candidate(kind, source, data, now)
            elif peer.uplink_cap.admit(now, len(data)):
                if peer.on_rtcp(data, now, now + self.wall_offset):
                    peer.uplink_cap.charge(len(data))
        else:
            self.dropped_unknown_kind += 1

    def handle_timeout(self, now: float) -> None:
        """Run every peer timer due at ``now`` (consent, DTLS, RTCP)."""
        timers = self._timers
        wall = now + self.wall_offset
        while timers and timers[0][0] <= now:
            deadline, _, peer = heapq.heappop(timers)
            if peer.scheduled != deadline or self._peers.get(peer.peer_id) is not peer:
                continue  # stale entry
            peer.scheduled = math.inf
            self._send(peer, peer.on_timeout(now, wall))
            self._settle(peer, now)
        self._events.extend(self._watch.expire(now))
        if self._replay is not None:
            self._replay.handle_timeout(now, self.transmits)
        if self._turns is not None:
            self._turns.expire(now)

    # ------------------------------------------------------------------ per kind

    def _on_rtp(self, peer: Peer, data: bytes, now: float) -> None:
        """HOT PATH: unprotect once, then forward (speaker) or keep as pre-roll (others)."""
        if not peer.sends_audio:  # a listen-only member: nothing it sends is ever used
            peer.rtp_dropped_not_sending += 1
            self.rtp_not_sending += 1
            return  # before SRTP and the cap, like the cap's own drops: costs nothing more
        cap = peer.uplink_cap
        if not cap.admit(now, len(data)):
            return  # over this peer's uplink cap: dropped before SRTP, counted by the cap
        try:
            plain = peer.unprotect(data)  # type: ignore[misc]
        except SrtpError:
            peer.srtp_errors += 1
            self.srtp_auth_failures += 1
            return
        cap.charge(len(data))
        try:
            ssrc, seq, ts, level, start, end = read_uplink(plain, peer.audio_level_id)
        except RtpError:
            peer.rtp_errors += 1
            return
        if end - start > MAX_PAYLOAD:  # no Opus packet is this long: it cannot be forwarded
            peer.rtp_errors += 1
            return
        peer.rtp_received += 1
        peer.track_uplink(ssrc, seq, ts, now)
        payload = plain[start:end]
        red = None
        if peer.red_pt >= 0 and plain[1] & 0x7F == peer.red_pt:  # RFC 2198 (sfu/red.py)
            try:
                red = red_layout(payload, peer.opus_pt)
            except RedError:
                peer.red_dropped += 1
                self.red_dropped += 1
                return
        room = peer.room
        if room.speaker is peer:
            room.heard_at = now
            if room.watch != SOUNDING:  # its first packet, or the first after a silence
                self._events.append(self._watch.heard(room, now))
            if room.tail is not None:
                room.tail = None  # the new speaker's audio started: the old tail is over
            self._forward(room, peer, ssrc, seq, ts, level, payload, now, red)
        elif room.tail is peer and room.in_tail(peer, now):
            peer.rtp_tail_forwarded += 1
            self._forward(room, peer, ssrc, seq, ts, level, payload, now, red)
        else:
            peer.rtp_dropped_not_speaker += 1
            self.rtp_not_speaker += 1
            peer.preroll.append((now, ssrc, seq, ts, level, payload, red))

    def _forward(
        self,
        room: Room,
        talker: Peer,
        ssrc: int,
        seq: int,
        ts: int,
        level: int,
        payload: bytes,
        arrival: float,
        red: tuple[int, int] | None,
    ) -> None:
        """One talker packet to every listener: numbered once, protected per listener.

        ``red`` is the layout of a RED payload (sfu/red.py), None for plain Opus, which
        every listener takes under its Opus payload type (a RED receiver accepts it too).
        A burst's first packet goes out as its primary block alone: its redundant blocks
        hold what the talker sent before the burst (the end of an earlier turn, at most
        341 ms back), which the listeners' jitter buffers must not play again now. The
        stream counts the payload as the talker sent it, so a listener without RED is told
        (in its sender reports' octet count) of redundancy it was not sent.

        A room that keeps its transmissions (recording, say-again) keeps plain Opus: the
        primary block of a RED packet.
        """
        capture = room.capture
        if capture is not None:  # recording or replay keeps the room's transmissions
            if room.capturing is not talker:
                self._turns.begin(room, talker, arrival)  # type: ignore[union-attr]
            capture.add(seq, ts, payload if red is None else payload[red[1]:], arrival)
        talker.rtp_forwarded_in += 1
        talker.octets_forwarded_in += len(payload)
        talker.seq_skip += 1  # its own packet never goes back to it: no gap in its downlink
        if room.replays:  # live audio wins over every replay in the room
            self._replay.live(room)  # type: ignore[union-attr]
        marker, out_seq, out_ts = room.stream.next(ssrc, seq, ts, arrival, len(payload))
        if marker:
            room.on_burst(ssrc)
            if red is not None:  # its redundancy is audio from before this burst: not sent
                payload, red = payload[red[1]:], None
        transmits = self.transmits
        if red is None:
            sent = transmits.fan_out(room.routes, talker, marker, out_seq, out_ts, level, payload)
            octets = sent * len(payload)
        else:
            sent, octets = transmits.fan_out_red(
                room, talker, marker, out_seq, out_ts, level, payload, red)
        room.packets_forwarded += sent
        self.payload_bytes_forwarded += octets
        self.packets_forwarded += sent

    def _on_stun(self, data: bytes, source: Address, now: float) -> None:
        username = binding_username(data)
        peer = None if username is None else self._by_ufrag.get(username.partition(":")[0])
        if peer is None:
            self.dropped_unknown_source += 1
            return
        prior = peer.ice.candidate
        try:
            response, moved, candidate = peer.on_binding_request(data, source, now)
        except StunError:
            return  # never answer an address that has not passed a valid check
        if prior is not None and prior != peer.ice.candidate:
            self._forget_candidate(peer, prior)
        if moved:
            self._bind(peer, source, now)
        elif candidate and peer.ice.candidate not in self._by_address:
            # An address another peer is bound to is not filed: only that peer's own
            # valid check, or a nomination, takes it (the address-theft rule in _bind).
            self._candidates[peer.ice.candidate] = peer  # type: ignore[index]
        destination = peer.destination
        if destination is None or destination.address != (source[0], source[1]):
            destination = Destination(source)  # a valid check from an address not bound
        self.transmits.push(response, destination)
        self._schedule(peer)  # consent moved later; nothing earlier to arm, but cheap

    def _forget_candidate(self, peer: Peer, address: Address) -> None:
        if self._candidates.get(address) is peer:
            del self._candidates[address]

    def _from_candidate(self, kind: Kind, source: Address, data: bytes, now: float) -> None:
        """SRTP or SRTCP from an address no peer is bound to: a peer's candidate path, or
        dropped. Authenticated media from its candidate is the peer saying it sends from
        there now (sfu/ice.py): the packet counts, and media moves there."""
        peer = self._candidates.get(source)
        if peer is None or peer.srtp is None or self._peers.get(peer.peer_id) is not peer:
            self.dropped_unknown_source += 1
            return
        if kind is Kind.RTP:
            before = peer.rtp_received
            self._on_rtp(peer, data, now)
            authentic = peer.rtp_received != before
        else:
            authentic = peer.uplink_cap.admit(now, len(data)) and peer.on_rtcp(
                data, now, now + self.wall_offset
            )
            if authentic:
                peer.uplink_cap.charge(len(data))
        if authentic and peer.ice.promote(source, now):
            del self._candidates[source]
            self._bind(peer, source, now)
            self._schedule(peer)

    def _bind(self, peer: Peer, source: Address, now: float) -> None:
        """Point media for ``peer`` at ``source`` (its first valid check, or a nominated move).

        An address belongs to one peer. If another peer had it (a reloaded tab reusing a
        port, a NAT handing the address to someone else), the new, verified owner wins and
        the old one is unbound until its own next valid check binds it again.
        """
        address = (source[0], source[1])
        old = peer.address
        if old is not None and self._by_address.get(old) is peer:
            del self._by_address[old]
        if self._candidates:
            self._candidates.pop(address, None)  # bound now: nobody's candidate any more
        other = self._by_address.get(address)
        if other is not None and other is not peer:
            if other.ice.candidate is not None:
                self._forget_candidate(other, other.ice.candidate)
            other.unbind()
            other.room.refresh_routes()
        self._by_address[address] = peer
        self._send(peer, peer.bind(Destination(address), now))
        peer.room.refresh_routes()

    # ------------------------------------------------------------------ helpers

    def _settle(self, peer: Peer, now: float) -> None:
        """After a peer's state may have changed: drop it if lost, announce it if connected,
        and file its next deadline."""
        if peer.loss is not None:
            kind, reason = peer.loss
            self._drop(peer)
            self._events.append(PeerEvent(kind, peer.peer_id, peer.room.room_id, reason))
            return
        if peer.take_connected(now):
            peer.room.refresh_routes()
            self._events.append(PeerEvent("connected", peer.peer_id, peer.room.room_id))
            if peer.room.speaker is peer:  # the speaker can send from now on: watch it
                self._watch.follow(peer.room, now)
        self._schedule(peer)

    def _schedule(self, peer: Peer) -> None:
        """File ``peer`` in the timer heap if its deadline moved earlier than filed.

        A deadline that moved later needs nothing: the earlier entry fires, finds nothing due,
        and files the peer again.
        """
        due = peer.deadline()
        if due < peer.scheduled:
            peer.scheduled = due
            self._timer_seq += 1
            heapq.heappush(self._timers, (due, self._timer_seq, peer))

    def _send(self, peer: Peer, datagrams: list[bytes]) -> None:
        """Queue datagrams for a peer's bound address (dropped if it has none)."""
        destination = peer.destination
        if destination is not None:
            for datagram in datagrams:
                self.transmits.push(datagram, destination)

    def _drop(self, peer: Peer) -> None:
        """Forget ``peer`` everywhere; its room goes with its last member."""
        if self._peers.get(peer.peer_id) is not peer:
            return
        del self._peers[peer.peer_id]
        self._by_ufrag.pop(peer.local_ufrag, None)
        address = peer.address
        if address is not None and self._by_address.get(address) is peer:
            del self._by_address[address]
        if peer.ice.candidate is not None:
            self._forget_candidate(peer, peer.ice.candidate)
        room = peer.room
        room.members.pop(peer.peer_id, None)
        if room.replays:
            self._replay.forget_peer(room, peer.peer_id)  # type: ignore[union-attr]
        if room.speaker is peer:
            room.set_speaker(None, 0.0)
        if room.tail is peer:
            room.tail = None  # a peer that is gone has no tail to forward
            self._watch.stop(room)
        if room.capturing is peer:
            self._turns.finish(room)  # type: ignore[union-attr]  # its turn is over
        room.refresh_routes()
        if not room.members and self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]
            if self._replay is not None:
                self._replay.forget_room(room.room_id)  # nothing is kept for an empty room

    def _member(self, room_id: str, peer_id: str) -> tuple[Room, Peer]:
        room = self._rooms.get(room_id)
        peer = self._peers.get(peer_id)
        if room is None or peer is None or peer.room is not room:
            raise KeyError(f"peer {peer_id!r} is not in room {room_id!r}")
        return room, peer

    def _replay_desk(self) -> ReplayDesk:
        if self._replay is None:
            raise ValueError("this media plane keeps no audio (replay is off)")
        return self._replay

    # ------------------------------------------------------------------ stats

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    def peer_stats(self, peer_id: str) -> dict[str, object] | None:
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.stats()

    def room_stats(self, room_id: str) -> dict[str, object] | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.stats()

    def stats(self) -> dict[str, object]:
        replay = self._replay
        kept = {} if replay is None else replay.stats()
        return {
            **kept,
            "rooms": len(self._rooms),
            "peers": len(self._peers),
            "connected_peers": sum(1 for p in self._peers.values() if p.is_connected),
            "datagrams_received": self.datagrams_received,
            "bytes_received": self.bytes_received,
            "srtp_auth_failures": self.srtp_auth_failures,
            "rtp_not_speaker": self.rtp_not_speaker,
            "rtp_not_sending": self.rtp_not_sending,
            "payload_bytes_forwarded": self.payload_bytes_forwarded,
            "dropped_unknown_kind": self.dropped_unknown_kind,
            "dropped_unknown_source": self.dropped_unknown_source,
            "packets_forwarded": self.packets_forwarded,
            "red_dropped": self.red_dropped,
            "uplink_dropped_packet_rate": self.uplink_drops.packet_rate,
            "uplink_dropped_byte_rate": self.uplink_drops.byte_rate,
            "certificate_renewals": self.certificates.renewals,
            **(self._turns.stats() if self._turns is not None else {}),
        }
