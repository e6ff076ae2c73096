"""The router: one UDP port, many rooms, the packet hot path and the control API.

This is the only module of the media plane that does I/O. It owns one non-blocking UDP socket
read straight from the event loop's reader callback (no asyncio transport: the selector
transport reads each datagram into a 256 KiB buffer, see PERF-NOTES.md), demultiplexes by the
first byte (RFC 7983) and hands bytes to the sans-IO protocol objects of the :class:`Peer` the
datagram belongs to. Timers (DTLS retransmission, consent, RTCP) are loop callbacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .dtls import Certificate
from .ice import StunError, binding_username
from .peer import PREROLL_SECONDS, Peer
from .room import Room
from .rtcp import RtcpError
from .rtp import RtpError, read_uplink
from .sdp import AudioSelection, Fingerprint, LocalParams, SdpError, build_answer, parse_offer, select_audio
from .srtp import SrtpError
from .udp import PeerLink, open_main_socket, read_datagrams

log = logging.getLogger("walkie.sfu")

#: How often the housekeeping tick runs (consent checks and RTCP scheduling).
TICK_SECONDS = 0.25


class OfferError(ValueError):
    """An SDP offer the media plane cannot serve; ``str()`` says why, for the client."""


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Where the media plane listens and what it announces.

    ``announced_ip`` is the address written into the answer's candidate: the public address of
    a server behind 1:1 NAT, or ``None`` to announce ``host`` itself.
    """

    host: str = "127.0.0.1"
    port: int = 40000
    announced_ip: str | None = None
    consent_timeout: float = 30.0
    dtls_handshake_timeout: float = 10.0
    socket_buffer_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        # The announced address becomes the answer's one ICE candidate: it must be an IP
        # literal, or every offer would fail later with a confusing SDP error.
        announced = self.announced_ip or self.host
        try:
            ip = ipaddress.ip_address(announced)
        except ValueError:
            raise ValueError(
                f"announced address {announced!r} is not an IP address "
                "(set announced_ip to the address browsers can reach)"
            ) from None
        if ip.is_unspecified:
            raise ValueError(
                f"cannot announce {announced}: set announced_ip when binding a wildcard address"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"UDP port {self.port} is out of range")


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """Something the signaling side must know about a peer.

    ``kind`` is one of ``connected`` (ICE and DTLS done: media can flow), ``consent_lost`` (no
    valid STUN check for the consent timeout: the peer was removed), ``dtls_failed`` (handshake
    failed or fingerprint mismatch: removed), ``closed`` (the peer closed DTLS: removed).
    """

    kind: str
    peer_id: str
    room_id: str
    reason: str = ""


class Router:
    """A media worker: one UDP port, any number of rooms. Create it with :meth:`start`."""

    def __init__(self, config: RouterConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        self.certificate = Certificate.generate()
        self._fingerprint_sha256 = self.certificate.fingerprint("sha-256")
        self._peers: dict[str, Peer] = {}
        self._rooms: dict[str, Room] = {}
        self._by_ufrag: dict[str, Peer] = {}
        self._by_addr: dict[tuple[str, int], Peer] = {}
        self._listeners: list[Callable[[PeerEvent], None]] = []
        self._sock: socket.socket | None = None
        self._shared_port = False  # peers get connected sockets on our port (sfu/udp.py)
        self._tick_handle: asyncio.TimerHandle | None = None
        self.address: tuple[str, int] = (config.host, config.port)
        # worker-wide counters (per-packet counters live on peers and rooms)
        self.datagrams_received = 0
        self.dropped_unknown_kind = 0
        self.dropped_unknown_source = 0
        self.send_errors = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def start(cls, config: RouterConfig | None = None) -> Router:
        """Bind the UDP port and start serving on the running event loop."""
        router = cls(config or RouterConfig(), asyncio.get_running_loop())
        router._open()
        return router

    def _open(self) -> None:
        cfg = self.config
        sock, self._shared_port = open_main_socket(cfg.host, cfg.port, cfg.socket_buffer_bytes)
        self._sock = sock
        self.address = sock.getsockname()[:2]
        self._loop.add_reader(sock.fileno(), read_datagrams, sock, self.datagram_received)
        self._tick_handle = self._loop.call_later(TICK_SECONDS, self._tick)
        log.info("media plane listening on udp %s:%d", *self.address)

    async def close(self) -> None:
        """Say goodbye over DTLS to every connected peer, then release the port and timers."""
        for peer in list(self._peers.values()):
            self._drop_peer(peer, goodbye=True)
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    # ------------------------------------------------------------------ control API

    @property
    def announced_ip(self) -> str:
        return self.config.announced_ip or self.address[0]

    def add_listener(self, callback: Callable[[PeerEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`PeerEvent` (on the event loop thread)."""
        self._listeners.append(callback)

    def add_peer(self, peer_id: str, room_id: str, offer_sdp: str) -> str:
        """Accept a browser's SDP offer for ``room_id`` and return our SDP answer.

        Raises :class:`OfferError` with a clear reason when the offer cannot be served, and
        ``ValueError`` when ``peer_id`` is already in use. Nothing changes on error.
        """
        try:
            offer = parse_offer(offer_sdp)
            selection = select_audio(offer)
        except SdpError as exc:
            raise OfferError(str(exc)) from None
        local = self.open_peer(peer_id, room_id, selection)
        try:
            return build_answer(offer, selection, local)
        except SdpError as exc:
            self.remove_peer(peer_id)
            raise OfferError(str(exc)) from None

    async def negotiate(self, peer_id: str, room_id: str, offer_sdp: str) -> str:
        """:meth:`add_peer` behind the asynchronous control API that signaling uses."""
        return self.add_peer(peer_id, room_id, offer_sdp)

    def open_peer(self, peer_id: str, room_id: str, selection: AudioSelection) -> LocalParams:
        """Create the transport for an offer already parsed and selected; return our side.

        This is :meth:`add_peer` without SDP text: a caller in another process parses the
        offer and builds the answer itself (``build_answer(offer, selection, local)``), so
        that only this small, typed request crosses to the media worker.
        """
        if peer_id in self._peers:
            raise ValueError(f"peer {peer_id!r} already exists")
        room = self._rooms.get(room_id)
        new_room = room is None
        if room is None:
            room = Room(room_id)
        peer = self._new_peer(peer_id, room, selection)
        while peer.ice.local_ufrag in self._by_ufrag:  # astronomically rare; stay correct
            peer = self._new_peer(peer_id, room, selection)
        peer.cname = f"walkie-{secrets.token_hex(4)}"
        try:
            local = LocalParams(
                ice_ufrag=peer.ice.local_ufrag,
                ice_pwd=peer.ice.local_pwd,
                fingerprint=Fingerprint("sha-256", self._fingerprint_sha256),
                setup="active" if peer.dtls.role == "client" else "passive",
                candidate_ip=self.announced_ip,
                candidate_port=self.address[1],
                ssrc=peer.local_ssrc,
                cname=peer.cname,
                # RFC 8830 allows only token characters here, whatever the room is called.
                msid_stream="walkie-" + hashlib.sha256(room_id.encode()).hexdigest()[:16],
                msid_track=f"room-{peer.local_ssrc:08x}",
            )
        except SdpError as exc:
            raise OfferError(str(exc)) from None
        if new_room:
            self._rooms[room_id] = room
        room.members[peer_id] = peer
        self._peers[peer_id] = peer
        self._by_ufrag[peer.ice.local_ufrag] = peer
        return local

    def _new_peer(self, peer_id: str, room: Room, selection: AudioSelection) -> Peer:
        try:
            return Peer(
                peer_id,
                room,
                selection,
                self.certificate,
                time.monotonic(),
                self.config.consent_timeout,
                self.config.dtls_handshake_timeout,
            )
        except ValueError as exc:  # e.g. ICE credentials outside RFC 8839's alphabet/lengths
            raise OfferError(str(exc)) from None

    def remove_peer(self, peer_id: str) -> None:
        """Forget a peer (idempotent). Its room disappears when it was the last member."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            self._drop_peer(peer, goodbye=True)

    def set_speaker(self, room_id: str, peer_id: str | None) -> None:
        """Choose whose audio the room forwards (``None``: nobody).

        Every listener's downlink starts a new talk burst (marker bit, timestamp jump by the
        wall-clock gap). The new speaker's pre-roll, what it sent in the last
        ``PREROLL_SECONDS`` while its floor request travelled, is forwarded at once.
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
        if speaker is room.speaker:
            return
        room.speaker = speaker
        room.bursts += 1
        for member in room.members.values():
            member.rewriter.new_burst()
        if speaker is not None:
            now = time.monotonic()
            for arrival, ssrc, seq, ts, level, payload in speaker.take_preroll(now):
                self._fan_out(room, speaker, ssrc, seq, ts, level, payload, arrival)

    def peer_stats(self, peer_id: str) -> dict[str, object] | None:
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.stats()

    def room_stats(self, room_id: str) -> dict[str, object] | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.stats()

    def stats(self) -> dict[str, object]:
        return {
            "address": list(self.address),
            "announced_ip": self.announced_ip,
            "rooms": len(self._rooms),
            "peers": len(self._peers),
            "connected_peers": sum(1 for p in self._peers.values() if p.is_connected),
            "datagrams_received": self.datagrams_received,
            "dropped_unknown_kind": self.dropped_unknown_kind,
            "dropped_unknown_source": self.dropped_unknown_source,
            "send_errors": self.send_errors,
            "packets_forwarded": sum(r.packets_forwarded for r in self._rooms.values()),
        }

    # ------------------------------------------------------------------ hot path

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Demultiplex one datagram by its first byte (RFC 7983 §7)."""
        self.datagrams_received += 1
        if not data:
            self.dropped_unknown_kind += 1
            return
        first = data[0]
        if 127 < first < 192:
            peer = self._by_addr.get(addr)
            if peer is None or peer.srtp is None:
                self.dropped_unknown_source += 1
                return
            if len(data) > 1 and 191 < data[1] < 224:  # RFC 5761 §4: RTCP packet types 192-223
                self._on_rtcp(peer, data)
            else:
                self._on_rtp(peer, data)
        elif first < 4:
            self._on_stun(data, addr)
        elif 19 < first < 64:
            self._on_dtls(data, addr)
        else:
            self.dropped_unknown_kind += 1

    def _on_rtp(self, peer: Peer, data: bytes) -> None:
        try:
            plain = peer.srtp.unprotect(data)  # type: ignore[union-attr]
        except SrtpError:
            peer.srtp_errors += 1
            return
        try:
            ssrc, seq, ts, level, start, end = read_uplink(plain, peer.audio_level_id)
        except RtpError:
            peer.rtp_errors += 1
            return
        now = time.monotonic()
        peer.rtp_received += 1
        peer.track_uplink(ssrc, seq, ts, now)
        room = peer.room
        if room.speaker is peer:
            self._fan_out(room, peer, ssrc, seq, ts, level, plain[start:end], now)
        else:
            peer.rtp_dropped_not_speaker += 1
            peer.preroll.append((now, ssrc, seq, ts, level, plain[start:end]))

    def _fan_out(
        self,
        room: Room,
        talker: Peer,
        ssrc: int,
        seq: int,
        ts: int,
        level: int,
        payload: bytes,
        arrival: float,
    ) -> None:
        """Rewrite, protect and send one talker packet to every other listener of the room."""
        talker.rtp_forwarded_in += 1
        length = len(payload)
        sent = 0
        for listener, header, protect, send in room.routes:
            if listener is talker:
                continue
            try:
                send(protect(header(ssrc, seq, ts, level, length, arrival), payload))
            except (OSError, SrtpError):
                # Socket buffer full or ICMP error: real-time media is dropped, not queued.
                self.send_errors += 1
                continue
            sent += 1
        room.packets_forwarded += sent

    # ------------------------------------------------------------------ control packets

    def _on_rtcp(self, peer: Peer, data: bytes) -> None:
        try:
            plain = peer.srtp.unprotect_rtcp(data)  # type: ignore[union-attr]
        except SrtpError:
            peer.srtp_errors += 1
            return
        try:
            peer.on_rtcp(plain, time.monotonic(), time.time())
        except RtcpError:
            peer.rtcp_errors += 1
            return
        peer.rtcp_received += 1

    def _on_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        username = binding_username(data)
        if username is None:
            self.dropped_unknown_source += 1
            return
        peer = self._by_ufrag.get(username.partition(":")[0])
        if peer is None:
            self.dropped_unknown_source += 1
            return
        peer.stun_requests += 1
        now = time.monotonic()
        try:
            result = peer.ice.handle(data, addr, now)
        except StunError:
            peer.stun_errors += 1
            return  # never answer an address that has not passed a valid check
        self._send(result.response, addr)
        if result.address_changed:
            self._bind_address(peer, peer.ice.address or addr, now)

    def _bind_address(self, peer: Peer, addr: tuple[str, int], now: float) -> None:
        """Point media for ``peer`` at ``addr`` (first valid check, or a nominated move)."""
        old = peer.address
        if old is not None and self._by_addr.get(old) is peer:
            del self._by_addr[old]
        other = self._by_addr.get(addr)
        if other is not None and other is not peer:
            # Another (stale) peer had this address: a reloaded tab reusing a port. The new,
            # verified owner wins; the stale peer stops receiving until it proves itself again.
            self._unlink(other)
            other.room.refresh_listeners()
        self._unlink(peer)
        self._by_addr[addr] = peer
        peer.address = addr
        assert self._sock is not None
        peer.link = PeerLink(self._loop, self._sock, self._shared_port, addr, self.datagram_received)
        if old is None and peer.dtls.state == "new" and peer.dtls.role == "client":
            self._send_to_peer(peer, peer.dtls.start(now))
            self._schedule_dtls(peer)
        peer.room.refresh_listeners()

    def _on_dtls(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = self._by_addr.get(addr)
        if peer is None:
            self.dropped_unknown_source += 1
            return
        now = time.monotonic()
        self._send_to_peer(peer, peer.dtls.receive(data, now))
        self._after_dtls(peer, now)

    def _after_dtls(self, peer: Peer, now: float) -> None:
        state = peer.dtls.state
        if state == "connected" and peer.srtp is None:
            peer.on_dtls_connected(now)
            peer.room.refresh_listeners()
            self._emit(PeerEvent("connected", peer.peer_id, peer.room.room_id))
        elif state == "failed":
            self._lose(peer, "dtls_failed", peer.dtls.failure or "DTLS failed")
            return
        elif state == "closed":
            self._lose(peer, "closed", "peer closed DTLS")
            return
        self._schedule_dtls(peer)

    def _schedule_dtls(self, peer: Peer) -> None:
        """Arm the DTLS retransmission / handshake-timeout timer for ``peer``."""
        if peer.dtls_timer is not None:
            peer.dtls_timer.cancel()  # type: ignore[attr-defined]
            peer.dtls_timer = None
        due = peer.dtls.next_timeout()
        if due is None or peer.peer_id not in self._peers:
            return
        delay = max(0.0, due - time.monotonic())
        peer.dtls_timer = self._loop.call_later(delay, self._on_dtls_timer, peer)

    def _on_dtls_timer(self, peer: Peer) -> None:
        peer.dtls_timer = None
        if peer.peer_id not in self._peers or self._peers[peer.peer_id] is not peer:
            return
        now = time.monotonic()
        out = peer.dtls.handle_timeout(now)
        self._send_to_peer(peer, out)
        self._after_dtls(peer, now)

    # ------------------------------------------------------------------ housekeeping

    def _tick(self) -> None:
        """Consent freshness (RFC 7675) and RTCP reports, a few times a second."""
        self._tick_handle = self._loop.call_later(TICK_SECONDS, self._tick)
        now = time.monotonic()
        wall = time.time()
        timeout = self.config.consent_timeout
        for peer in list(self._peers.values()):
            if peer.ice.consent_expired(now):
                self._lose(peer, "consent_lost", f"no ICE consent for {timeout:g} s")
                continue
            if peer.srtp is None and now - peer.created > timeout:
                # ICE may be alive while DTLS never starts (or stalls before its own
                # deadline is armed): a peer that cannot carry media is not kept forever.
                self._lose(peer, "dtls_failed", f"no DTLS-SRTP session within {timeout:g} s")
                continue
            if peer.is_connected and now >= peer.next_rtcp:
                # RFC 3550 §6.3.5: randomised interval (0.5-1.5 x 1 s) avoids synchronised bursts.
                peer.next_rtcp = now + random.uniform(0.5, 1.5)
                self._send_rtcp(peer, now, wall)
        # pre-roll entries age out by themselves (deque maxlen + age filter at flush time)

    def _send_rtcp(self, peer: Peer, now: float, wall: float) -> None:
        try:
            report = peer.build_rtcp(now, wall)
            if report is None:
                return
            packet = peer.srtp.protect_rtcp(report)  # type: ignore[union-attr]
        except (SrtpError, RtcpError, ValueError):
            peer.rtcp_errors += 1
            return
        if self._send_to_peer(peer, [packet]):
            peer.rtcp_sent += 1

    # ------------------------------------------------------------------ helpers

    def _send(self, data: bytes, addr: tuple[str, int]) -> bool:
        """Send from the main socket (STUN answers go to whichever address checked)."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(data, addr)
        except OSError:
            self.send_errors += 1
            return False
        return True

    def _send_to_peer(self, peer: Peer, datagrams: list[bytes]) -> bool:
        """Send to a peer's bound address through its link; False if it has none or failed."""
        link = peer.link
        if link is None:
            return False
        ok = True
        for datagram in datagrams:
            try:
                link.send(datagram)
            except OSError:
                self.send_errors += 1
                ok = False
        return ok

    def _unlink(self, peer: Peer) -> None:
        """Forget a peer's address and close its connected socket."""
        if peer.link is not None:
            peer.link.close()
            peer.link = None
        peer.address = None

    def _drop_peer(self, peer: Peer, *, goodbye: bool) -> None:
        if self._peers.get(peer.peer_id) is not peer:
            return
        if goodbye and peer.dtls.state == "connected":
            try:
                self._send_to_peer(peer, peer.dtls.close())
            except Exception:  # noqa: BLE001 - a goodbye must never break removal
                log.debug("DTLS close_notify failed for %s", peer.peer_id, exc_info=True)
        if peer.dtls_timer is not None:
            peer.dtls_timer.cancel()  # type: ignore[attr-defined]
            peer.dtls_timer = None
        del self._peers[peer.peer_id]
        self._by_ufrag.pop(peer.ice.local_ufrag, None)
        if peer.address is not None and self._by_addr.get(peer.address) is peer:
            del self._by_addr[peer.address]
        self._unlink(peer)
        room = peer.room
        room.members.pop(peer.peer_id, None)
        if room.speaker is peer:
            room.speaker = None
            room.bursts += 1
            for member in room.members.values():
                member.rewriter.new_burst()
        room.refresh_listeners()
        if not room.members and self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]

    def _lose(self, peer: Peer, kind: str, reason: str) -> None:
        """Remove a peer the network took away (no goodbye is possible) and say why."""
        self._drop_peer(peer, goodbye=False)
        self._emit(PeerEvent(kind, peer.peer_id, peer.room.room_id, reason))

    def _emit(self, event: PeerEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one bad listener must not break the media plane
                log.exception("event listener failed for %s", event)


__all__ = ["OfferError", "PeerEvent", "Router", "RouterConfig", "PREROLL_SECONDS"]
