"""An in-memory network for the media core: browsers made of our sans-IO parts, no sockets.

``Browser`` does on the wire what a browser does (ICE checks, DTLS client, SRTP audio and
RTCP), built from ``aioice.stun`` and sfu's own protocol modules but independent of the core:
it never looks inside it. ``Net`` carries datagrams between browsers and one ``MediaCore``
on a fake clock, so tests can move time by minutes in microseconds and check exactly what
was sent, to whom, and when.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aioice import stun

from sfu.core import MediaCore, PeerEvent
from sfu.dtls import DtlsEndpoint
from sfu.rtp import RtpPacket, parse_rtp
from sfu.sdp import LocalParams, parse_offer, select_audio
from sfu.srtp import SrtpError, SrtpSession, srtp_ffi, srtp_protect_in_place

from .peerclient import CLIENT_CERT, OPUS_PT, AudioSource, make_offer

Address = tuple[str, int]


@dataclass
class Browser(AudioSource):
    """One member's browser at ``address``; ``setup`` is what its offer says."""

    name: str
    address: Address
    setup: str = "actpass"
    fingerprint: str | None = None
    ufrag: str = field(default_factory=lambda: secrets.token_hex(4))
    pwd: str = field(default_factory=lambda: secrets.token_hex(12))
    ssrc: int = field(default_factory=lambda: secrets.randbits(32) or 1)
    seq: int = field(default_factory=lambda: secrets.randbits(16))
    timestamp: int = field(default_factory=lambda: secrets.randbits(32))
    local: LocalParams | None = None
    dtls: DtlsEndpoint | None = None
    srtp: SrtpSession | None = None
    received: list[RtpPacket] = field(default_factory=list)
    rtcp: list[bytes] = field(default_factory=list)
    stun_responses: list[stun.Message] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    outbox: list[bytes] = field(default_factory=list)
    undecryptable: int = 0
    opus_pt: int = OPUS_PT
    red_pt: int | None = None  # offers RED (RFC 2198) under this payload type

    def offer(self) -> str:
        fingerprint = self.fingerprint or CLIENT_CERT.fingerprint_text("sha-256")
        text = make_offer(self.ufrag, self.pwd, fingerprint, self.ssrc, self.address[1],
                          opus_pt=self.opus_pt, red_pt=self.red_pt)
        return text.replace("a=setup:actpass", f"a=setup:{self.setup}")

    def binding_request(self, *, use_candidate: bool = True, pwd: str | None = None) -> bytes:
        assert self.local is not None
        msg = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        msg.attributes["USERNAME"] = f"{self.local.ice_ufrag}:{self.ufrag}"
        msg.attributes["PRIORITY"] = 2122260223
        msg.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
        if use_candidate:
            msg.attributes["USE-CANDIDATE"] = None
        msg.add_message_integrity((pwd or self.local.ice_pwd).encode())
        msg.add_fingerprint()
        return bytes(msg)

    def start_dtls(self, now: float) -> None:
        """Our side as DTLS client (the core answered passive)."""
        assert self.local is not None
        digest = self.local.fingerprint.value
        self.dtls = DtlsEndpoint(CLIENT_CERT, "client", [("sha-256", digest)])
        self.outbox += self.dtls.start(now)

    def deliver(self, data: bytes, now: float) -> None:
        """A datagram from the core arrived."""
        self.raw.append(data)
        first = data[0]
        if first < 4:
            self.stun_responses.append(stun.parse_message(data))
        elif 19 < first < 64:
            if self.dtls is None:  # the core is the DTLS client: we answer as server
                assert self.local is not None
                self.dtls = DtlsEndpoint(
                    CLIENT_CERT, "server", [("sha-256", self.local.fingerprint.value)]
                )
            self.outbox += self.dtls.receive(data, now)
            if self.dtls.state == "connected" and self.srtp is None:
                self.srtp = SrtpSession(self.dtls.srtp_keys())
        elif 127 < first < 192 and self.srtp is not None:
            try:
                if 191 < data[1] < 224:
                    self.rtcp.append(self.srtp.unprotect_rtcp(data))
                else:
                    self.received.append(parse_rtp(self.srtp.unprotect(data)))
            except SrtpError:
                self.undecryptable += 1  # meant for whoever had this address before

    def audio(self, payload: bytes | None = None, level: int = 0x10,
              payload_type: int | None = None) -> bytes:
        """One SRTP-protected 20 ms Opus-like packet (queued in the outbox); its payload.
        ``payload_type`` defaults to this browser's Opus one."""
        assert self.srtp is not None
        pt = self.opus_pt if payload_type is None else payload_type
        plain, payload = self.next_audio(payload, level, pt)
        if len(plain) + 16 <= 1356:  # pylibsrtp's own buffer
            self.outbox.append(self.srtp.protect(plain))
        else:  # longer than pylibsrtp allows, as a hostile client may send: libsrtp directly
            buffer = bytearray(len(plain) + 16)
            buffer[: len(plain)] = plain
            length = srtp_ffi.new("int *", len(plain))
            srtp_protect_in_place(self.srtp.protect_context, srtp_ffi.from_buffer(buffer), length)
            self.outbox.append(bytes(buffer[: length[0]]))
        return payload

    def take_received(self) -> list[RtpPacket]:
        got, self.received = self.received, []
        return got


class Net:
    """Browsers and one core, on a fake clock starting at ``now``."""

    def __init__(self, core: MediaCore, now: float = 1000.0) -> None:
        self.core = core
        self.now = now
        self.browsers: dict[Address, Browser] = {}
        self.events: list[PeerEvent] = []
        #: datagrams the core sent to addresses with no browser
        self.lost: list[tuple[bytes, Address]] = []

    def join(self, browser: Browser, room: str = "r", *, listen_only: bool = False) -> Browser:
        """Offer/answer through the core's control API (no SDP answer text needed here)."""
        selection = select_audio(parse_offer(browser.offer()), listen_only=listen_only)
        browser.local = self.core.open_peer(browser.name, room, selection, self.now)
        self.browsers[browser.address] = browser
        return browser

    def connect(self, browser: Browser, room: str = "r", *, listen_only: bool = False) -> Browser:
        """Join, check (nominating), and finish DTLS: media is up."""
        self.join(browser, room, listen_only=listen_only)
        self.send(browser, browser.binding_request())
        if browser.setup != "passive":
            browser.start_dtls(self.now)
        self.pump()
        assert browser.srtp is not None, f"{browser.name} did not connect"
        return browser

    def send(self, browser: Browser, data: bytes, source: Address | None = None) -> None:
        """``browser`` sends ``data`` to the core (from ``source``, default its address)."""
        self.core.handle_datagram(self.now, source or browser.address, data)

    def pump(self, rounds: int = 20) -> None:
        """Deliver datagrams both ways until nothing moves."""
        for _ in range(rounds):
            moved = False
            while (item := self.core.poll_transmit()) is not None:
                data, address = item
                moved = True
                browser = self.browsers.get(address)
                if browser is None:
                    self.lost.append((data, address))
                else:
                    browser.deliver(data, self.now)
            for browser in list(self.browsers.values()):
                while browser.outbox:
                    moved = True
                    self.core.handle_datagram(self.now, browser.address, browser.outbox.pop(0))
            while (event := self.core.poll_event()) is not None:
                self.events.append(event)
            if not moved:
                return

    def advance(self, seconds: float) -> None:
        """Move the clock, firing the core's timers in order as a driver would."""
        end = self.now + seconds
        while True:
            due = self.core.poll_timeout()
            if due is None or due > end:
                break
            self.now = max(self.now, due)
            self.core.handle_timeout(self.now)
            self.pump()
        self.now = end
        self.pump()
