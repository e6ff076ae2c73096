"""SDP for walkie: parse a browser's offer, pick the one audio m-line we serve, build the answer.

Sans-IO: text in, dataclasses and text out. The SFU is ICE-lite, DTLS-SRTP, rtcp-mux, BUNDLE
and Opus only, and negotiates exactly one bidirectional audio m-line per browser (mic up, the
room's channel down). Everything else the browser offers (video, data channels, a second audio
m-line) is rejected with port 0, which browsers accept without renegotiation.

Three steps, so that the caller (the router) can allocate per-peer state between them:

* :func:`parse_offer` turns SDP text into an :class:`Offer`. It checks syntax (RFC 8866) and the
  syntax of the attributes we interpret, and keeps every line so nothing is lost.
* :func:`select_audio` decides whether we can serve the offer and returns the
  :class:`AudioSelection` the transport layers need (Opus PT, header-extension ids, remote ICE
  credentials, DTLS fingerprints and role). Anything unservable is an :class:`SdpError` whose
  message tells a human why, because it ends up in the browser's console via signaling.
* :func:`build_answer` writes the JSEP answer (RFC 8829 section 5.3) from our
  :class:`LocalParams`.

Every parsing or validation failure raises :class:`SdpError` (a ``ValueError``), never anything
else, whatever the input: signaling hands us text from the network.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUDIO_LEVEL_URI",
    "MID_URI",
    "AudioSelection",
    "Fingerprint",
    "LocalParams",
    "MediaSection",
    "Offer",
    "SdpError",
    "build_answer",
    "local_setup_for",
    "parse_offer",
    "select_audio",
]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 9143

#: Offers larger than this are refused before parsing: a browser's audio+video offer is ~6 KB,
#: and signaling text comes from the network.
MAX_SDP_CHARS = 128 * 1024

#: Protocols we can serve on the audio m-line: DTLS-SRTP over UDP (RFC 5764), with or without
#: the "F" (feedback) profile. Browsers send SAVPF.
SERVABLE_PROTOS = ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP")

#: Digest sizes of the fingerprint hashes we accept (RFC 8122 allows more; sha-1 is too weak
#: and md5/md2 are forbidden for DTLS-SRTP by RFC 8827).
FINGERPRINT_SIZES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}

# RFC 8866 section 9 grammar pieces, ASCII only (Python's \d would accept Arabic digits).
_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN, re.ASCII)
_ICE_CHARS_RE = re.compile(r"[A-Za-z0-9+/]+", re.ASCII)  # RFC 8839 ice-char
_LINE_RE = re.compile(r"([a-z])=(.*)", re.ASCII | re.DOTALL)
_ATTR_RE = re.compile(rf"({_TOKEN})(?::(.*))?", re.ASCII | re.DOTALL)
_MEDIA_RE = re.compile(
    rf"({_TOKEN}) ([0-9]{{1,5}})(?:/([0-9]{{1,5}}))? ({_TOKEN}(?:/{_TOKEN})*)((?: [^ ]+)+)",
    re.ASCII | re.DOTALL,
)
_RTPMAP_RE = re.compile(
    rf"([0-9]{{1,3}}) ({_TOKEN})/([0-9]{{1,9}})(?:/([0-9]{{1,3}}))?", re.ASCII
)
_FMTP_RE = re.compile(r"([0-9]{1,3}) (.*)", re.ASCII | re.DOTALL)
_EXTMAP_RE = re.compile(
    r"([0-9]{1,4})(?:/(sendrecv|sendonly|recvonly|inactive))? ([^ ]+)(?: (.*))?",
    re.ASCII | re.DOTALL,
)
_FINGERPRINT_RE = re.compile(
    rf"({_TOKEN}) ([0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}})*)", re.ASCII
)
_SSRC_RE = re.compile(rf"([0-9]{{1,10}}) ({_TOKEN})(?::(.*))?", re.ASCII | re.DOTALL)
_SSRC_GROUP_RE = re.compile(rf"({_TOKEN})((?: [0-9]{{1,10}})+)", re.ASCII)
_GROUP_RE = re.compile(rf"({_TOKEN})((?: {_TOKEN})*)", re.ASCII)
_MSID_RE = re.compile(rf"({_TOKEN})(?: ({_TOKEN}))?", re.ASCII)
_RTCP_FB_RE = re.compile(r"([0-9]{1,3}|\*) ([^ ]+)(?: (.*))?", re.ASCII | re.DOTALL)
_ORIGIN_RE = re.compile(r"[^ ]+ [0-9]{1,20} [0-9]{1,20} [^ ]+ [^ ]+ [^ ]+", re.ASCII)
_NON_TEXT_RE = re.compile(r"[\x00\r\n]")


class SdpError(ValueError):
    """An offer we cannot parse or cannot serve.

    ``str(e)`` is a clear human-readable reason, e.g. ``offer has no Opus codec in its audio
    section``: signaling forwards it to the browser, where a developer reads it.
    """


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Fingerprint:
    """A DTLS certificate fingerprint (RFC 8122 ``a=fingerprint``).

    ``value`` holds the raw digest, not the colon-separated hex, so comparing it with the
    digest of the certificate the peer presents in the DTLS handshake is a bytes comparison.
    """

    algorithm: str  # lower-case hash name: 'sha-256' | 'sha-384' | 'sha-512' (others parse)
    value: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse an ``a=fingerprint`` value such as ``sha-256 AB:CD:...``."""
        m = _FINGERPRINT_RE.fullmatch(text.strip(" "))
        if m is None:
            raise SdpError(f"malformed a=fingerprint value {_show(text)}")
        return cls(m.group(1).lower(), bytes.fromhex(m.group(2).replace(":", "")))

    @classmethod
    def of_certificate(cls, der: bytes, algorithm: str = "sha-256") -> Fingerprint:
        """Fingerprint of a DER-encoded certificate, for our own ``a=fingerprint``."""
        if algorithm not in FINGERPRINT_SIZES:
            raise SdpError(f"unsupported fingerprint algorithm {algorithm!r}")
        return cls(algorithm, hashlib.new(algorithm.replace("-", ""), der).digest())

    @property
    def usable(self) -> bool:
        """True for a sha-256/384/512 fingerprint with the right digest length."""
        return FINGERPRINT_SIZES.get(self.algorithm) == len(self.value)

    def to_sdp(self) -> str:
        """The attribute value: ``sha-256 AB:CD:...`` (upper-case hex, as browsers write it)."""
        return f"{self.algorithm} {self.value.hex(':').upper()}"


@dataclass
class MediaSection:
    """One ``m=`` section of an offer.

    Interpreted attributes are hoisted into fields; ``attributes`` keeps every ``a=`` line as
    ``(name, value or None)`` in order, and ``other_lines`` every non-``a=`` line after ``m=``.
    Transport attributes (ICE, DTLS) are as written at this level; session-level fallbacks are
    applied by :func:`select_audio`, not here, so the model mirrors the text.
    """

    kind: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: str | None = None
    mid: str | None = None
    direction: str = "sendrecv"  # effective: media level, else session level, else sendrecv
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_fb: dict[str, list[str]] = field(default_factory=dict)  # pt or '*' -> feedback types
    extmap: dict[int, str] = field(default_factory=dict)
    extmap_direction: dict[int, str] = field(default_factory=dict)  # only ids that had one
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: str | None = None
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    bundle_only: bool = False
    ssrcs: dict[int, dict[str, str | None]] = field(default_factory=dict)
    ssrc_groups: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    msid: list[tuple[str, str | None]] = field(default_factory=list)  # (stream, track)
    candidates: list[str] = field(default_factory=list)  # raw a=candidate values
    end_of_candidates: bool = False
    sctp_port: int | None = None

    @property
    def rejected(self) -> bool:
        """Port 0 without bundle-only means the offerer disabled this m-line (RFC 8843 §6)."""
        return self.port == 0 and not self.bundle_only


@dataclass
class Offer:
    """A parsed SDP offer: session-level fields plus the media sections in order."""

    origin: str
    session_name: str
    media: list[MediaSection]
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    connection: str | None = None
    bundle_groups: list[tuple[str, ...]] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    ice_lite: bool = False
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: str | None = None
    direction: str | None = None
    extmap_allow_mixed: bool = False

    def bundle_group_of(self, mid: str) -> tuple[str, ...] | None:
        """The BUNDLE group that contains ``mid``, if any."""
        for group in self.bundle_groups:
            if mid in group:
                return group
        return None

    def section_by_mid(self, mid: str) -> MediaSection | None:
        for section in self.media:
            if section.mid == mid:
                return section
        return None


# --------------------------------------------------------------------------- parsing


def _show(value: str, limit: int = 60) -> str:
    """Quote untrusted text for an error message, cut short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


class _Level:
    """Attribute accumulator shared by session and media level (they hold the same kinds)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.attributes: list[tuple[str, str | None]] = []
        self.other_lines: list[tuple[str, str]] = []
        self.connection: str | None = None
        self.singles: dict[str, str] = {}
        self.direction: str | None = None
        self.fingerprints: list[Fingerprint] = []
        self.flags: set[str] = set()


# Attributes that may appear once per level; a second, different value is a conflict we must
# not resolve by guessing (which ICE password would the browser use?).
_SINGLE_ATTRS = ("ice-ufrag", "ice-pwd", "setup", "mid", "ice-options", "sctp-port")
_FLAG_ATTRS = (
    "rtcp-mux", "rtcp-rsize", "bundle-only", "end-of-candidates", "ice-lite",
    "extmap-allow-mixed",
)


def parse_offer(text: str) -> Offer:
    """Parse an SDP offer (RFC 8866 syntax; CRLF or bare LF line ends).

    Raises :class:`SdpError` on anything malformed, including malformed values of the
    attributes interpreted here (rtpmap, fmtp, extmap, fingerprint, ssrc, group, msid, ...).
    Unknown attributes are kept verbatim and not judged.
    """
    if not isinstance(text, str):
        raise SdpError("SDP must be text")
    if len(text) > MAX_SDP_CHARS:
        raise SdpError(f"SDP is too large ({len(text)} characters, limit {MAX_SDP_CHARS})")
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    if not lines:
        raise SdpError("SDP is empty")

    session = _Level("session")
    origin: str | None = None
    session_name: str | None = None
    sections: list[tuple[MediaSection, _Level]] = []
    level = session
    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if _NON_TEXT_RE.search(line):
            raise SdpError(f"line {number} contains a NUL or a stray CR")
        line = line.rstrip(" \t")  # tolerate trailing blanks some gateways add
        m = _LINE_RE.fullmatch(line)
        if m is None:
            raise SdpError(f"line {number} is not '<letter>=<value>': {_show(line)}")
        kind, value = m.group(1), m.group(2)
        if number == 1:
            if line != "v=0":
                raise SdpError("SDP must start with 'v=0'")
            continue
        if kind == "v":
            raise SdpError(f"line {number}: repeated v= line")
        if kind == "m":
            section = _parse_media_line(value, number)
            level = _Level(f"m-line {len(sections)} ({section.kind})")
            sections.append((section, level))
        elif kind == "a":
            _parse_attribute(level, value, number)
        elif level is session and kind == "o":
            if origin is not None:
                raise SdpError("SDP has two o= lines")
            if not _ORIGIN_RE.fullmatch(value):
                raise SdpError(f"malformed o= line {_show(value)}")
            origin = value
        elif level is session and kind == "s":
            if session_name is not None:
                raise SdpError("SDP has two s= lines")
            session_name = value
        elif kind == "c":
            if level.connection is not None:
                raise SdpError(f"{level.where} has two c= lines")
            level.connection = value
        elif kind in ("o", "s"):
            raise SdpError(f"line {number}: {kind}= is only allowed at session level")
        else:  # t=, b=, i=, u=, e=, p=, r=, z=, k=: kept, not interpreted
            level.other_lines.append((kind, value))
    if origin is None:
        raise SdpError("SDP has no o= line")
    if session_name is None:
        raise SdpError("SDP has no s= line")

    offer = Offer(origin=origin, session_name=session_name, media=[])
    _finish_session(offer, session)
    mids: set[str] = set()
    for section, lvl in sections:
        _finish_media(section, lvl, offer.direction)
        if section.mid is not None:
            if section.mid in mids:
                raise SdpError(f"two m-lines share a=mid:{section.mid}")
            mids.add(section.mid)
        offer.media.append(section)
    for group in offer.bundle_groups:
        for mid in group:
            if mid not in mids:
                raise SdpError(f"a=group:BUNDLE names mid {_show(mid)} that no m-line has")
    return offer


def _parse_media_line(value: str, number: int) -> MediaSection:
    m = _MEDIA_RE.fullmatch(value)
    if m is None:
        raise SdpError(f"line {number}: malformed m= line {_show(value)}")
    port = int(m.group(2))
    if port > 65535:
        raise SdpError(f"line {number}: m= port {port} is out of range")
    return MediaSection(
        kind=m.group(1),
        port=port,
        port_count=int(m.group(3)) if m.group(3) is not None else None,
        proto=m.group(4),
        formats=m.group(5).split(" ")[1:],
    )


def _parse_attribute(level: _Level, value: str, number: int) -> None:
    m = _ATTR_RE.fullmatch(value)
    if m is None:
        raise SdpError(f"line {number}: malformed attribute {_show(value)}")
    name, arg = m.group(1), m.group(2)
    level.attributes.append((name, arg))
    if name in DIRECTIONS:
        if arg is not None:
            raise SdpError(f"line {number}: a={name} takes no value")
        if level.direction is not None and level.direction != name:
            raise SdpError(f"{level.where} has conflicting directions {level.direction}/{name}")
        level.direction = name
    elif name in _SINGLE_ATTRS:
        if arg is None or arg.strip(" ") == "":
            raise SdpError(f"line {number}: a={name} needs a value")
        arg = arg.strip(" ")
        old = level.singles.get(name)
        if old is not None and old != arg:
            raise SdpError(f"{level.where} has two different a={name} values")
        level.singles[name] = arg
    elif name == "fingerprint":
        if arg is None:
            raise SdpError(f"line {number}: a=fingerprint needs a value")
        level.fingerprints.append(Fingerprint.parse(arg))
    elif name in _FLAG_ATTRS:
        level.flags.add(name)


def _finish_session(offer: Offer, lvl: _Level) -> None:
    offer.attributes = lvl.attributes
    offer.other_lines = lvl.other_lines
    offer.connection = lvl.connection
    offer.direction = lvl.direction
    offer.ice_ufrag = lvl.singles.get("ice-ufrag")
    offer.ice_pwd = lvl.singles.get("ice-pwd")
    offer.setup = lvl.singles.get("setup")
    offer.ice_options = tuple(lvl.singles.get("ice-options", "").split())
    offer.fingerprints = tuple(lvl.fingerprints)
    offer.ice_lite = "ice-lite" in lvl.flags
    offer.extmap_allow_mixed = "extmap-allow-mixed" in lvl.flags
    for name, arg in lvl.attributes:
        if name == "group":
            m = _GROUP_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"malformed a=group value {_show(arg or '')}")
            if m.group(1).upper() == "BUNDLE":
                offer.bundle_groups.append(tuple(m.group(2).split()))
        elif name in ("mid", "rtcp-mux", "rtpmap", "ssrc", "candidate"):
            raise SdpError(f"a={name} is only allowed inside an m-line, not at session level")


def _finish_media(section: MediaSection, lvl: _Level, session_direction: str | None) -> None:
    section.attributes = lvl.attributes
    section.other_lines = lvl.other_lines
    section.connection = lvl.connection
    section.direction = lvl.direction or session_direction or "sendrecv"
    section.mid = lvl.singles.get("mid")
    if section.mid is not None and _TOKEN_RE.fullmatch(section.mid) is None:
        raise SdpError(f"{lvl.where}: a=mid {_show(section.mid)} is not a token")
    section.ice_ufrag = lvl.singles.get("ice-ufrag")
    section.ice_pwd = lvl.singles.get("ice-pwd")
    section.setup = lvl.singles.get("setup")
    section.ice_options = tuple(lvl.singles.get("ice-options", "").split())
    section.fingerprints = tuple(lvl.fingerprints)
    section.rtcp_mux = "rtcp-mux" in lvl.flags
    section.rtcp_rsize = "rtcp-rsize" in lvl.flags
    section.bundle_only = "bundle-only" in lvl.flags
    section.end_of_candidates = "end-of-candidates" in lvl.flags
    sctp_port = lvl.singles.get("sctp-port")
    if sctp_port is not None:
        if not sctp_port.isascii() or not sctp_port.isdigit() or len(sctp_port) > 5:
            raise SdpError(f"{lvl.where}: malformed a=sctp-port {_show(sctp_port)}")
        section.sctp_port = int(sctp_port)
    where = lvl.where
    for name, arg in lvl.attributes:
        if name == "rtpmap":
            _media_rtpmap(section, arg, where)
        elif name == "fmtp":
            m = _FMTP_RE.fullmatch(arg or "")
            if m is not None:  # non-numeric formats (old data-channel syntax) stay raw
                section.fmtp[_payload_type(m.group(1), where, "fmtp")] = m.group(2)
            elif arg is None or " " not in arg:
                raise SdpError(f"{where}: malformed a=fmtp {_show(arg or '')}")
        elif name == "rtcp-fb":
            m = _RTCP_FB_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"{where}: malformed a=rtcp-fb {_show(arg or '')}")
            fb = m.group(2) if m.group(3) is None else f"{m.group(2)} {m.group(3)}"
            section.rtcp_fb.setdefault(m.group(1), []).append(fb)
        elif name == "extmap":
            _media_extmap(section, arg, where)
        elif name == "ssrc":
            m = _SSRC_RE.fullmatch(arg or "")
            if m is None or int(m.group(1)) > 0xFFFFFFFF:
                raise SdpError(f"{where}: malformed a=ssrc {_show(arg or '')}")
            section.ssrcs.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3)
        elif name == "ssrc-group":
            m = _SSRC_GROUP_RE.fullmatch(arg or "")
            ssrcs = tuple(int(s) for s in m.group(2).split()) if m else ()
            if m is None or any(s > 0xFFFFFFFF for s in ssrcs):
                raise SdpError(f"{where}: malformed a=ssrc-group {_show(arg or '')}")
            section.ssrc_groups.append((m.group(1), ssrcs))
        elif name == "msid":
            m = _MSID_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"{where}: malformed a=msid {_show(arg or '')}")
            section.msid.append((m.group(1), m.group(2)))
        elif name == "candidate":
            if not arg:
                raise SdpError(f"{where}: empty a=candidate")
            section.candidates.append(arg)
        elif name in ("ice-lite", "group"):
            raise SdpError(f"a={name} is only allowed at session level, found in {where}")


def _payload_type(text: str, where: str, attr: str) -> int:
    pt = int(text)
    if pt > 127:
        raise SdpError(f"{where}: a={attr} payload type {pt} is out of range 0-127")
    return pt


def _media_rtpmap(section: MediaSection, arg: str | None, where: str) -> None:
    m = _RTPMAP_RE.fullmatch(arg or "")
    if m is None:
        raise SdpError(f"{where}: malformed a=rtpmap {_show(arg or '')}")
    pt = _payload_type(m.group(1), where, "rtpmap")
    if pt in section.rtpmap:
        raise SdpError(f"{where}: payload type {pt} has two a=rtpmap lines")
    channels = int(m.group(4)) if m.group(4) is not None else 1
    section.rtpmap[pt] = (m.group(2), int(m.group(3)), channels)


def _media_extmap(section: MediaSection, arg: str | None, where: str) -> None:
    m = _EXTMAP_RE.fullmatch(arg or "")
    if m is None:
        raise SdpError(f"{where}: malformed a=extmap {_show(arg or '')}")
    ext_id = int(m.group(1))
    # RFC 8285: 1-14 one-byte form, up to 255 two-byte form; 4096-4351 was reserved for
    # negotiation and is gone. 0 and 15 are never valid in one-byte headers, 0 never at all.
    if not 1 <= ext_id <= 255:
        raise SdpError(f"{where}: a=extmap id {ext_id} is out of range 1-255")
    if ext_id in section.extmap:
        raise SdpError(f"{where}: a=extmap id {ext_id} is used twice")
    section.extmap[ext_id] = m.group(3)
    if m.group(2) is not None:
        section.extmap_direction[ext_id] = m.group(2)


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class AudioSelection:
    """What the SFU needs to serve one browser: the outcome of :func:`select_audio`."""

    index: int  # index of the served m-line in offer.media
    mid: str
    opus_pt: int  # the offerer's Opus payload type (111 in Chrome, 109 in Firefox)
    opus_fmtp: str  # offerer's fmtp for Opus (informational)
    audio_level_id: int | None  # extmap id of urn:ietf:params:rtp-hdrext:ssrc-audio-level
    mid_ext_id: int | None  # extmap id of urn:ietf:params:rtp-hdrext:sdes:mid
    ice_ufrag: str  # remote ICE credentials (media level, else session level)
    ice_pwd: str
    fingerprints: tuple[Fingerprint, ...]  # remote DTLS fingerprints (sha-256/384/512 only)
    setup: str  # the offer's a=setup: 'actpass' | 'active' | 'passive'
    remote_ssrc: int | None  # the offerer's audio SSRC if an a=ssrc line gives it
    direction: str  # the offer's direction for this m-line


def _check_ice_credential(name: str, value: str | None, minimum: int) -> str:
    if value is None:
        raise SdpError(f"offer has no a={name} for its audio m-line (needed for ICE)")
    if not minimum <= len(value) <= 256:
        raise SdpError(
            f"offer's a={name} has {len(value)} characters; RFC 8839 requires {minimum}-256"
        )
    if _ICE_CHARS_RE.fullmatch(value) is None:
        raise SdpError(f"offer's a={name} has characters outside A-Z a-z 0-9 + /")
    return value


def select_audio(offer: Offer) -> AudioSelection:
    """Choose the audio m-line to serve and check that we can serve it.

    The first audio m-line the offerer did not disable is served; every other m-line will be
    rejected in the answer. Transport attributes (ICE credentials, fingerprints, setup,
    rtcp-mux) are taken from the m-line, else, for a bundled m-line that omits them
    (RFC 8843 bundle-only / subsequent offers), from the offerer-tagged m-line of its BUNDLE
    group, else (ICE, fingerprint, setup) from session level.

    Raises :class:`SdpError` saying why when the offer cannot be served.
    """
    audio = [i for i, s in enumerate(offer.media) if s.kind == "audio"]
    if not audio:
        raise SdpError("offer has no audio m-line")
    live = [i for i in audio if not offer.media[i].rejected]
    if not live:
        raise SdpError("offer's audio m-line is disabled (port 0)")
    if offer.ice_lite:
        raise SdpError("offer is ICE-lite; walkie is ICE-lite too and needs a full ICE peer")
    index = live[0]
    section = offer.media[index]
    if section.proto not in SERVABLE_PROTOS:
        raise SdpError(
            f"offer's audio m-line uses {section.proto}; walkie needs UDP/TLS/RTP/SAVPF "
            "(DTLS-SRTP over UDP)"
        )
    if section.mid is None:
        raise SdpError("offer's audio m-line has no a=mid (JSEP requires one)")

    tagged = _bundle_tagged_section(offer, section)
    rtcp_mux = section.rtcp_mux or (tagged is not None and tagged.rtcp_mux)
    if not rtcp_mux:
        raise SdpError("offer's audio m-line lacks a=rtcp-mux; walkie requires RTP/RTCP mux")

    opus_pt = _find_opus(section)
    levels = (section, tagged, offer)  # where transport attributes may be written, in order
    ufrag = _check_ice_credential("ice-ufrag", _first(levels, "ice_ufrag"), 4)
    pwd = _check_ice_credential("ice-pwd", _first(levels, "ice_pwd"), 22)

    offered: tuple[Fingerprint, ...] = _first(levels, "fingerprints") or ()
    usable = tuple(f for f in offered if f.usable)
    if not usable:
        got = ", ".join(sorted({f.algorithm for f in offered})) or "none"
        raise SdpError(
            "offer has no usable DTLS fingerprint (need sha-256, sha-384 or sha-512 with a "
            f"digest of the right length; got {got})"
        )

    setup = _first(levels, "setup")
    if setup is None:
        raise SdpError("offer has no a=setup (RFC 8842 requires it in an offer)")
    if setup not in ("actpass", "active", "passive"):
        raise SdpError(f"offer's a=setup:{_show(setup)} is not actpass, active or passive")

    return AudioSelection(
        index=index,
        mid=section.mid,
        opus_pt=opus_pt,
        opus_fmtp=section.fmtp.get(opus_pt, ""),
        audio_level_id=_extmap_id(section, AUDIO_LEVEL_URI),
        mid_ext_id=_extmap_id(section, MID_URI),
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        fingerprints=usable,
        setup=setup,
        remote_ssrc=_remote_ssrc(section),
        direction=section.direction,
    )


def _first(levels: tuple[MediaSection | Offer | None, ...], name: str) -> Any:
    """The first non-empty value of attribute ``name`` across the given levels."""
    for level in levels:
        if level is not None:
            value = getattr(level, name)
            if value:
                return value
    return None


def _bundle_tagged_section(offer: Offer, section: MediaSection) -> MediaSection | None:
    """The offerer-tagged m-line (first mid) of ``section``'s BUNDLE group, if not itself."""
    if section.mid is None:
        return None
    group = offer.bundle_group_of(section.mid)
    if not group or group[0] == section.mid:
        return None
    return offer.section_by_mid(group[0])


def _find_opus(section: MediaSection) -> int:
    """The first Opus payload type in the offerer's preference order (the m= format list)."""
    for fmt in section.formats:
        if not fmt.isascii() or not fmt.isdigit() or len(fmt) > 3:
            continue
        entry = section.rtpmap.get(int(fmt))
        if entry is not None and entry[0].lower() == "opus":
            if entry[1:] == (48000, 2):  # RFC 7587: always opus/48000/2
                return int(fmt)
    raise SdpError("offer has no Opus codec (opus/48000/2) in its audio section")


def _extmap_id(section: MediaSection, uri: str) -> int | None:
    for ext_id, ext_uri in section.extmap.items():
        if ext_uri == uri and section.extmap_direction.get(ext_id) != "inactive":
            return ext_id
    return None


def _remote_ssrc(section: MediaSection) -> int | None:
    """The offerer's primary audio SSRC: the first a=ssrc that is not a FEC/RTX secondary."""
    secondary = {s for sem, group in section.ssrc_groups if sem in ("FID", "FEC", "FEC-FR")
                 for s in group[1:]}
    for ssrc in section.ssrcs:
        if ssrc not in secondary:
            return ssrc
    return None


# --------------------------------------------------------------------------- answer


def local_setup_for(offer_setup: str) -> str:
    """Our ``a=setup`` for the offer's (RFC 8842 §5.3): never ``actpass`` in an answer.

    For ``actpass`` we choose ``passive``: the browser (a full ICE agent) then starts DTLS as
    soon as ICE works, and we never send a first datagram to an address before it has
    passed a connectivity check.
    """
    if offer_setup in ("actpass", "active"):
        return "passive"
    if offer_setup == "passive":
        return "active"
    raise SdpError(f"offer's a=setup:{_show(offer_setup)} is not actpass, active or passive")


_MSID_ID_RE = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]{1,64}", re.ASCII)  # RFC 8830 msid-id
_CNAME_RE = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)


@dataclass(frozen=True)
class LocalParams:
    """Our side of one peer's transport, chosen by the router. Checked on construction so that
    an invalid value fails here, loudly, instead of as a browser's setRemoteDescription error.
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint  # our certificate's
    setup: str  # 'passive' or 'active' (see local_setup_for)
    candidate_ip: str
    candidate_port: int  # our single host candidate (UDP)
    ssrc: int  # the downlink SSRC we send to this peer
    cname: str
    msid_stream: str
    msid_track: str

    def __post_init__(self) -> None:
        for name, value, minimum in (("ice_ufrag", self.ice_ufrag, 4),
                                     ("ice_pwd", self.ice_pwd, 22)):
            if not minimum <= len(value) <= 256 or _ICE_CHARS_RE.fullmatch(value) is None:
                raise SdpError(f"local {name} must be {minimum}-256 characters of A-Za-z0-9+/")
        if not self.fingerprint.usable:
            raise SdpError("local fingerprint must be sha-256/384/512 with a full digest")
        if self.setup not in ("active", "passive"):
            raise SdpError("local setup must be 'active' or 'passive' (never actpass)")
        try:
            ipaddress.ip_address(self.candidate_ip)
        except ValueError:
            raise SdpError(f"local candidate_ip {_show(self.candidate_ip)} is not an IP") from None
        if not 1 <= self.candidate_port <= 65535:
            raise SdpError(f"local candidate_port {self.candidate_port} is out of range")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise SdpError(f"local ssrc {self.ssrc} is not a 32-bit value")
        if _CNAME_RE.fullmatch(self.cname) is None:
            raise SdpError("local cname must be 1-255 visible ASCII characters")
        for name, value in (("msid_stream", self.msid_stream), ("msid_track", self.msid_track)):
            if _MSID_ID_RE.fullmatch(value) is None:
                raise SdpError(f"local {name} must be 1-64 token characters (RFC 8830)")


def build_answer(
    offer: Offer,
    sel: AudioSelection,
    local: LocalParams,
    *,
    session_id: int | None = None,
    session_version: int = 1,
) -> str:
    """Write the SDP answer (CRLF line ends) for ``offer`` as served by ``sel``.

    The served m-line answers Opus only, rtcp-mux, our ICE-lite host candidate and DTLS
    role, and only the ssrc-audio-level and sdes:mid header extensions (with the offer's
    ids). No rtcp-fb: we neither send NACKs for audio nor transport-wide feedback, and
    answering transport-cc would make the browser wait for feedback that never comes.
    Every other m-line is rejected (port 0) with its mid, so the browser can match it to
    its transceiver, and is left out of the BUNDLE group.
    """
    if not 0 <= sel.index < len(offer.media) or offer.media[sel.index].mid != sel.mid:
        raise SdpError("audio selection does not belong to this offer")
    if local.setup not in ("active", "passive") or (
        sel.setup != "actpass" and local.setup == sel.setup
    ):
        raise SdpError(f"local a=setup:{local.setup} cannot answer the offer's {sel.setup}")
    if session_id is None:
        session_id = secrets.randbits(62)
    ip = ipaddress.ip_address(local.candidate_ip)
    addr = f"IN IP{ip.version} {ip.compressed}"

    out = [
        "v=0",
        f"o=walkie {session_id} {session_version} IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=ice-lite",
    ]
    if offer.bundle_group_of(sel.mid) is not None:
        out.append(f"a=group:BUNDLE {sel.mid}")
    out.append("a=msid-semantic: WMS *")
    for index, section in enumerate(offer.media):
        if index == sel.index:
            out += _served_section(section, sel, local, addr)
        else:
            out += _rejected_section(section)
    return "\r\n".join(out) + "\r\n"


def _served_section(
    section: MediaSection, sel: AudioSelection, local: LocalParams, addr: str
) -> list[str]:
    direction = _ANSWER_DIRECTION[sel.direction]
    pt = sel.opus_pt
    lines = [
        f"m=audio {local.candidate_port} {section.proto} {pt}",
        f"c={addr}",
        f"a=mid:{sel.mid}",
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        f"a=fingerprint:{local.fingerprint.to_sdp()}",
        f"a=setup:{local.setup}",
        f"a={direction}",
        "a=rtcp-mux",
    ]
    # No a=rtcp-rsize even when offered: without it the browser sends only compound RTCP
    # (RFC 3550), the one shape our RTCP code has to understand.
    for ext_id in (sel.audio_level_id, sel.mid_ext_id):
        if ext_id is not None:
            offered = section.extmap_direction.get(ext_id)
            suffix = f"/{_ANSWER_DIRECTION[offered]}" if offered else ""
            lines.append(f"a=extmap:{ext_id}{suffix} {section.extmap[ext_id]}")
    lines += [
        f"a=rtpmap:{pt} opus/48000/2",
        f"a=fmtp:{pt} minptime=10;useinbandfec=1",
        f"a=candidate:1 1 udp 2130706431 {local.candidate_ip} {local.candidate_port} typ host",
        "a=end-of-candidates",
    ]
    if direction in ("sendrecv", "sendonly"):  # we send the room's channel to this peer
        msid = f"{local.msid_stream} {local.msid_track}"
        lines += [
            f"a=msid:{msid}",
            f"a=ssrc:{local.ssrc} cname:{local.cname}",
            f"a=ssrc:{local.ssrc} msid:{msid}",
        ]
    return lines


def _rejected_section(section: MediaSection) -> list[str]:
    lines = [
        f"m={section.kind} 0 {section.proto} {section.formats[0]}",
        "c=IN IP4 0.0.0.0",
    ]
    if section.mid is not None:
        lines.append(f"a=mid:{section.mid}")
    if "RTP" in section.proto:  # a direction attribute means nothing for SCTP
        lines.append("a=inactive")
    return lines
