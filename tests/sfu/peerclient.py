"""A minimal WebRTC client for router tests: our own offer, one STUN check, DTLS client, SRTP.

Built from the sans-IO modules plus ``aioice.stun``, so tests can do what a browser does on
the wire and also what a broken or hostile one does (wrong fingerprint, no consent, a new
address), deterministically and fast.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket

from aioice import stun

from sfu.certificate import Certificate
from sfu.dtls import DtlsEndpoint
from sfu.rtp import RtpPacket, build_rtp, parse_rtp
from sfu.srtp import SrtpSession

CLIENT_CERT = Certificate.generate("peerclient")
OPUS_PT = 111
AUDIO_LEVEL_ID = 1
MID_ID = 4


def make_offer(ufrag: str, pwd: str, fingerprint: str, ssrc: int, port: int, *,
               opus_pt: int = OPUS_PT, red_pt: int | None = None) -> str:
    """An audio-only offer shaped like Chromium's (see fixtures/chrome_audio.sdp); with
    ``red_pt``, RED (RFC 2198) offered after Opus as Chromium does."""
    formats = f"{opus_pt}" if red_pt is None else f"{opus_pt} {red_pt}"
    red = [] if red_pt is None else [f"a=rtpmap:{red_pt} red/48000/2",
                                     f"a=fmtp:{red_pt} {opus_pt}/{opus_pt}"]
    lines = [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS s",
        f"m=audio {port} UDP/TLS/RTP/SAVPF {formats}",
        "c=IN IP4 127.0.0.1",
        f"a=candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:actpass",
        "a=mid:0",
        f"a=extmap:{AUDIO_LEVEL_ID} urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        f"a=extmap:{MID_ID} urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:s t",
        "a=rtcp-mux",
        f"a=rtpmap:{opus_pt} opus/48000/2",
        f"a=fmtp:{opus_pt} minptime=10;useinbandfec=1",
        *red,
        f"a=ssrc:{ssrc} cname:peerclient",
    ]
    return "\r\n".join(lines) + "\r\n"


def opus_rtp(ssrc: int, seq: int, timestamp: int, payload: bytes, level: int,
             payload_type: int = OPUS_PT) -> bytes:
    """A plaintext RTP packet as Chromium sends one: Opus, audio level and MID extensions."""
    return build_rtp(
        RtpPacket(
            payload_type=payload_type,
            sequence=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            extensions={AUDIO_LEVEL_ID: bytes([level]), MID_ID: b"0"},
            payload=payload,
        )
    )


class AudioSource:
    """A talker's uplink numbering: 20 ms Opus frames (needs ``ssrc``, ``seq``, ``timestamp``)."""

    ssrc: int
    seq: int
    timestamp: int

    def next_audio(self, payload: bytes | None, level: int,
                   payload_type: int = OPUS_PT) -> tuple[bytes, bytes]:
        """The next plaintext RTP packet and its payload (random 80 bytes by default)."""
        payload = payload if payload is not None else os.urandom(80)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + 960) & 0xFFFFFFFF
        packet = opus_rtp(self.ssrc, self.seq, self.timestamp, payload, level, payload_type)
        return packet, payload


def assert_one_burst(got: list[RtpPacket], sent: list[bytes], talker_ssrc: int,
                     levels: list[int]) -> None:
    """What a listener must receive of one talk burst: the payloads in order, the talker in
    the CSRC, a marker on the first packet only, gapless numbering, the talker's levels."""
    assert [p.payload for p in got] == sent
    assert all(p.csrcs == [talker_ssrc] for p in got)
    assert [p.marker for p in got] == [True] + [False] * (len(sent) - 1)
    seqs = [p.sequence for p in got]
    assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:]))
    assert [p.extensions[AUDIO_LEVEL_ID][0] for p in got] == levels


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


class PeerClient(AudioSource):
    """One synthetic member. ``await join(router, room)`` then ``connect()``."""

    def __init__(self, name: str, *, fingerprint: str | None = None) -> None:
        self.name = name
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.ssrc = secrets.randbits(32) or 1
        self.fingerprint = fingerprint or CLIENT_CERT.fingerprint_text("sha-256")
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.transport: asyncio.DatagramTransport | None = None
        self.inbox: _Inbox | None = None
        self.server: tuple[str, int] = ("127.0.0.1", 0)
        self.server_ufrag = ""
        self.server_pwd = ""
        self.server_fingerprint = b""
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpSession | None = None
        self.received: list[RtpPacket] = []
        self.rtcp: list[bytes] = []

    async def open(self, host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        self.transport, self.inbox = await loop.create_datagram_endpoint(
            _Inbox, local_addr=(host, 0), family=socket.AF_INET
        )

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def offer(self) -> str:
        return make_offer(self.ufrag, self.pwd, self.fingerprint, self.ssrc, self.port)

    def take_answer(self, answer: str) -> None:
        self.server_ufrag = re.search(r"a=ice-ufrag:(\S+)", answer).group(1)  # type: ignore[union-attr]
        self.server_pwd = re.search(r"a=ice-pwd:(\S+)", answer).group(1)  # type: ignore[union-attr]
        cand = re.search(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", answer)
        assert cand is not None
        self.server = (cand.group(1), int(cand.group(2)))
        fp = re.search(r"a=fingerprint:sha-256 (\S+)", answer)
        assert fp is not None
        self.server_fingerprint = bytes.fromhex(fp.group(1).replace(":", ""))

    async def join(self, router, room: str, **options: bool) -> str:  # noqa: ANN001 - sfu.Router or WorkerPool
        """Offer through ``router.negotiate`` (``options``: its ``listen_only``)."""
        if self.transport is None:
            await self.open()
        answer = await router.negotiate(self.name, room, self.offer(), **options)
        self.take_answer(answer)
        return answer

    def binding_request(self, *, use_candidate: bool = True, pwd: str | None = None) -> bytes:
        msg = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        msg.attributes["USERNAME"] = f"{self.server_ufrag}:{self.ufrag}"
        msg.attributes["PRIORITY"] = 2122260223
        msg.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
        if use_candidate:
            msg.attributes["USE-CANDIDATE"] = None
        msg.add_message_integrity((pwd or self.server_pwd).encode())
        msg.add_fingerprint()
        return bytes(msg)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.server)

    async def recv(self, timeout: float = 2.0) -> bytes:
        assert self.inbox is not None
        data, _ = await asyncio.wait_for(self.inbox.queue.get(), timeout)
        return data

    async def check(self, **kwargs: object) -> stun.Message:
        """One ICE connectivity check; returns the server's response."""
        self.send(self.binding_request(**kwargs))  # type: ignore[arg-type]
        while True:
            data = await self.recv()
            if data[0] < 4:
                return stun.parse_message(data)

    async def connect(self) -> None:
        """ICE check, then the DTLS handshake as client, then SRTP."""
        await self.check()
        self.dtls = DtlsEndpoint(CLIENT_CERT, "client", [("sha-256", self.server_fingerprint)])
        loop = asyncio.get_running_loop()
        for datagram in self.dtls.start(loop.time()):
            self.send(datagram)
        deadline = loop.time() + 5
        while self.dtls.state not in ("connected", "failed"):
            try:
                data = await self.recv(timeout=0.2)
            except TimeoutError:
                out = self.dtls.handle_timeout(loop.time())
            else:
                out = self.dtls.receive(data, loop.time())
            for datagram in out:
                self.send(datagram)
            assert loop.time() < deadline, "DTLS handshake did not finish"
        if self.dtls.state == "connected":
            self.srtp = SrtpSession(self.dtls.srtp_keys())

    def send_audio(self, payload: bytes | None = None, level: int = 0x10) -> bytes:
        """Send one 20 ms Opus-like packet; returns its payload."""
        assert self.srtp is not None
        plain, payload = self.next_audio(payload, level)
        self.send(self.srtp.protect(plain))
        return payload

    async def drain(self, quiet: float = 0.2) -> list[RtpPacket]:
        """Read until ``quiet`` seconds pass with nothing; decrypt RTP into ``received``."""
        assert self.srtp is not None
        new: list[RtpPacket] = []
        while True:
            try:
                data = await self.recv(timeout=quiet)
            except TimeoutError:
                return new
            if 127 < data[0] < 192:
                if 191 < data[1] < 224:
                    self.rtcp.append(self.srtp.unprotect_rtcp(data))
                else:
                    packet = parse_rtp(self.srtp.unprotect(data))
                    self.received.append(packet)
                    new.append(packet)
            elif 19 < data[0] < 64 and self.dtls is not None:
                self.dtls.receive(data, asyncio.get_running_loop().time())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
