"""The synthetic client's side of the SDP offer/answer (sans-IO text in, text out).

A bench client must look like a browser to the server, so :func:`build_offer` writes the
offer a Chromium audio-only peer connection writes (one ``sendrecv`` audio m-line, BUNDLE,
rtcp-mux, ``a=setup:actpass``, Opus 111 with ``minptime=10;useinbandfec=1``, the
audio-level and MID header extensions under Chrome's ids 1 and 4, an ``a=ssrc``), minus the
codecs and extensions the bench would never use.

:func:`parse_answer` reads back only what the client needs to connect: ICE credentials, the
DTLS fingerprint and role, the server's UDP candidate, the negotiated payload type and
extension ids, and the server's downlink SSRC. Anything malformed raises
:class:`AnswerError` and nothing else, whatever the input.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

__all__ = ["Answer", "AnswerError", "OfferParams", "build_offer", "parse_answer"]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

_HEX_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,63}")
_HASH_LENGTHS = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}


class AnswerError(ValueError):
    """An SDP answer the bench client cannot use; ``str()`` says what is wrong."""


@dataclass(frozen=True, slots=True)
class OfferParams:
    """What goes into one client's offer."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # "AB:CD:..." sha-256 of the client certificate
    ssrc: int
    cname: str
    host: str
    port: int
    session_id: int = 1
    opus_pt: int = 111
    audio_level_id: int = 1
    mid_ext_id: int = 4
    mid: str = "0"
    #: offer RED (RFC 2198) for Opus under this payload type, as Chromium does (63)
    red_pt: int | None = None


def build_offer(p: OfferParams) -> str:
    """A Chromium-shaped audio-only offer (CRLF line ends, as browsers send)."""
    stream = f"bench-{p.cname}"
    formats = f"{p.opus_pt}" if p.red_pt is None else f"{p.opus_pt} {p.red_pt}"
    red = [] if p.red_pt is None else [f"a=rtpmap:{p.red_pt} red/48000/2",
                                       f"a=fmtp:{p.red_pt} {p.opus_pt}/{p.opus_pt}"]
    lines = [
        "v=0",
        f"o=- {p.session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {p.mid}",
        "a=extmap-allow-mixed",
        f"a=msid-semantic: WMS {stream}",
        f"m=audio {p.port} UDP/TLS/RTP/SAVPF {formats}",
        f"c=IN IP4 {p.host}",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=candidate:1 1 udp 2122260223 {p.host} {p.port} typ host generation 0",
        f"a=ice-ufrag:{p.ice_ufrag}",
        f"a=ice-pwd:{p.ice_pwd}",
        f"a=fingerprint:sha-256 {p.fingerprint}",
        "a=setup:actpass",
        f"a=mid:{p.mid}",
        f"a=extmap:{p.audio_level_id} {AUDIO_LEVEL_URI}",
        f"a=extmap:{p.mid_ext_id} {MID_URI}",
        "a=sendrecv",
        f"a=msid:{stream} mic",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        f"a=rtpmap:{p.opus_pt} opus/48000/2",
        f"a=fmtp:{p.opus_pt} minptime=10;useinbandfec=1",
        *red,
        f"a=ssrc:{p.ssrc} cname:{p.cname}",
        f"a=ssrc:{p.ssrc} msid:{stream} mic",
    ]
    return "\r\n".join(lines) + "\r\n"


@dataclass(slots=True)
class Answer:
    """The facts of an answer the client acts on."""

    ice_ufrag: str = ""
    ice_pwd: str = ""
    ice_lite: bool = False
    setup: str = ""
    fingerprints: list[tuple[str, bytes]] = field(default_factory=list)
    candidates: list[tuple[str, int]] = field(default_factory=list)
    opus_pt: int | None = None
    red_pt: int | None = None  # the server accepted RED (RFC 2198) under this payload type
    audio_level_id: int | None = None
    mid_ext_id: int | None = None
    mid: str | None = None
    ssrc: int | None = None
    direction: str = "sendrecv"
    port: int = 0


def _int(text: str, what: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise AnswerError(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise AnswerError(f"{what} {value} out of range {low}..{high}")
    return value


def _fingerprint(value: str) -> tuple[str, bytes]:
    parts = value.split()
    if len(parts) != 2:
        raise AnswerError("a=fingerprint needs '<hash> <hex>'")
    algorithm, hex_text = parts[0].lower(), parts[1]
    length = _HASH_LENGTHS.get(algorithm)
    if length is None or not _HEX_FINGERPRINT.fullmatch(hex_text):
        raise AnswerError(f"unusable fingerprint {value[:80]!r}")
    digest = bytes.fromhex(hex_text.replace(":", ""))
    if len(digest) != length:
        raise AnswerError(f"{algorithm} fingerprint has {len(digest)} bytes, not {length}")
    return algorithm, digest


def _candidate(value: str) -> tuple[str, int] | None:
    """(ip, port) of a UDP candidate; None for a candidate we would not use (TCP)."""
    parts = value.split()
    if len(parts) < 8 or parts[6] != "typ":
        raise AnswerError(f"malformed candidate {value[:80]!r}")
    if parts[2].lower() != "udp":
        return None
    try:
        ip = str(ipaddress.ip_address(parts[4]))
    except ValueError:
        raise AnswerError(f"candidate address is not an IP: {parts[4][:60]!r}") from None
    return ip, _int(parts[5], "candidate port", 1, 65535)


def parse_answer(text: str) -> Answer:
    """Read the first audio m-section of an SDP answer (plus session-level attributes).

    Checks what a browser would refuse: missing ICE credentials or fingerprint, a setup of
    ``actpass`` in an answer, a rejected (port 0) or non-Opus audio section, rtcp-mux absent.
    """
    if not isinstance(text, str):
        raise AnswerError("SDP must be text")
    if not text.startswith("v=0"):
        raise AnswerError("SDP does not start with v=0")
    answer = Answer()
    section = "session"
    seen_audio = False
    rtcp_mux = False
    session_ufrag = session_pwd = ""
    session_fps: list[tuple[str, bytes]] = []
    session_setup = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise AnswerError(f"malformed SDP line {line[:60]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            if seen_audio:
                section = "other"
                continue
            parts = value.split()
            if len(parts) < 4:
                raise AnswerError(f"malformed m-line {value[:60]!r}")
            if parts[0] != "audio":
                section = "other"
                continue
            seen_audio = True
            section = "audio"
            answer.port = _int(parts[1], "m-line port", 0, 65535)
            if answer.port == 0:
                raise AnswerError("the server rejected the audio m-line (port 0)")
            continue
        if kind != "a" or section == "other":
            continue
        name, _, attr = value.partition(":")
        if name == "ice-lite":
            answer.ice_lite = True
        elif name == "ice-ufrag":
            if section == "audio":
                answer.ice_ufrag = attr
            else:
                session_ufrag = attr
        elif name == "ice-pwd":
            if section == "audio":
                answer.ice_pwd = attr
            else:
                session_pwd = attr
        elif name == "fingerprint":
            (answer.fingerprints if section == "audio" else session_fps).append(
                _fingerprint(attr)
            )
        elif name == "setup":
            if section == "audio":
                answer.setup = attr
            else:
                session_setup = attr
        elif section != "audio":
            continue
        elif name == "candidate":
            cand = _candidate(attr)
            if cand is not None:
                answer.candidates.append(cand)
        elif name == "rtpmap":
            pt_text, _, codec = attr.partition(" ")
            if codec.lower().startswith("opus/48000") and answer.opus_pt is None:
                answer.opus_pt = _int(pt_text, "payload type", 0, 127)
            elif codec.lower() == "red/48000/2" and answer.red_pt is None:
                answer.red_pt = _int(pt_text, "payload type", 0, 127)
        elif name == "extmap":
            id_text, _, uri = attr.partition(" ")
            ident = _int(id_text.partition("/")[0], "extmap id", 1, 255)
            uri = uri.split(" ")[0]
            if uri == AUDIO_LEVEL_URI:
                answer.audio_level_id = ident
            elif uri == MID_URI:
                answer.mid_ext_id = ident
        elif name == "mid":
            answer.mid = attr
        elif name == "ssrc" and answer.ssrc is None:
            answer.ssrc = _int(attr.partition(" ")[0], "ssrc", 0, 0xFFFFFFFF)
        elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
            answer.direction = name
        elif name == "rtcp-mux":
            rtcp_mux = True
    if not seen_audio:
        raise AnswerError("no audio m-line in the answer")
    answer.ice_ufrag = answer.ice_ufrag or session_ufrag
    answer.ice_pwd = answer.ice_pwd or session_pwd
    answer.fingerprints = answer.fingerprints or session_fps
    answer.setup = answer.setup or session_setup
    if not answer.ice_ufrag or not answer.ice_pwd:
        raise AnswerError("the answer has no ICE credentials")
    if not answer.fingerprints:
        raise AnswerError("the answer has no DTLS fingerprint")
    if answer.setup not in ("active", "passive"):
        raise AnswerError(f"answer a=setup must be active or passive, not {answer.setup!r}")
    if answer.opus_pt is None:
        raise AnswerError("the answer has no Opus payload type")
    if not rtcp_mux:
        raise AnswerError("the answer does not accept rtcp-mux")
    if not answer.candidates:
        raise AnswerError("the answer has no UDP candidate")
    return answer
