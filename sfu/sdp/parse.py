"""Step 1 of 3: SDP text -> :class:`~sfu.sdp.model.Offer` (RFC 8866 syntax).

Checks the syntax of the whole text and of every attribute interpreted here (rtpmap, fmtp,
extmap, fingerprint, ssrc, group, msid, ...), keeps every line so nothing is lost, and raises
:class:`~sfu.sdp.model.SdpError` (a ``ValueError``), never anything else, whatever the input:
signaling hands us text from the network. Whether the offer can be *served* is step 2
(``sfu/sdp/select.py``).
"""
from __future__ import annotations

import re

from .model import TOKEN, Fingerprint, MediaSection, Offer, SdpError, quote

__all__ = ["DIRECTIONS", "MAX_SDP_CHARS", "parse_offer"]

#: Offers larger than this are refused before parsing: a browser's audio+video offer is ~6 KB,
#: and signaling text comes from the network.
MAX_SDP_CHARS = 128 * 1024

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 8866 section 9 grammar pieces, ASCII only (Python's \d would accept Arabic digits).
_TOKEN_RE = re.compile(TOKEN, re.ASCII)
_LINE_RE = re.compile(r"([a-z])=(.*)", re.ASCII | re.DOTALL)
_ATTR_RE = re.compile(rf"({TOKEN})(?::(.*))?", re.ASCII | re.DOTALL)
_MEDIA_RE = re.compile(
    rf"({TOKEN}) ([0-9]{{1,5}})(?:/([0-9]{{1,5}}))? ({TOKEN}(?:/{TOKEN})*)((?: [^ ]+)+)",
    re.ASCII | re.DOTALL,
)
_RTPMAP_RE = re.compile(
    rf"([0-9]{{1,3}}) ({TOKEN})/([0-9]{{1,9}})(?:/([0-9]{{1,3}}))?", re.ASCII
)
_FMTP_RE = re.compile(r"([0-9]{1,3}) (.*)", re.ASCII | re.DOTALL)
_EXTMAP_RE = re.compile(
    r"([0-9]{1,4})(?:/(sendrecv|sendonly|recvonly|inactive))? ([^ ]+)(?: (.*))?",
    re.ASCII | re.DOTALL,
)
_SSRC_RE = re.compile(rf"([0-9]{{1,10}}) ({TOKEN})(?::(.*))?", re.ASCII | re.DOTALL)
_SSRC_GROUP_RE = re.compile(rf"({TOKEN})((?: [0-9]{{1,10}})+)", re.ASCII)
_GROUP_RE = re.compile(rf"({TOKEN})((?: {TOKEN})*)", re.ASCII)
_MSID_RE = re.compile(rf"({TOKEN})(?: ({TOKEN}))?", re.ASCII)
_RTCP_FB_RE = re.compile(r"([0-9]{1,3}|\*) ([^ ]+)(?: (.*))?", re.ASCII | re.DOTALL)
_ORIGIN_RE = re.compile(r"[^ ]+ [0-9]{1,20} [0-9]{1,20} [^ ]+ [^ ]+ [^ ]+", re.ASCII)
_NON_TEXT_RE = re.compile(r"[\x00\r\n]")


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
            raise SdpError(f"line {number} is not '<letter>=<value>': {quote(line)}")
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
                raise SdpError(f"malformed o= line {quote(value)}")
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
                raise SdpError(f"a=group:BUNDLE names mid {quote(mid)} that no m-line has")
    return offer


def _parse_media_line(value: str, number: int) -> MediaSection:
    m = _MEDIA_RE.fullmatch(value)
    if m is None:
        raise SdpError(f"line {number}: malformed m= line {quote(value)}")
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
        raise SdpError(f"line {number}: malformed attribute {quote(value)}")
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


def _finish_level(target: Offer | MediaSection, lvl: _Level) -> None:
    """What session and media level hold alike: every line, and the transport attributes."""
    target.attributes = lvl.attributes
    target.other_lines = lvl.other_lines
    target.connection = lvl.connection
    target.ice_ufrag = lvl.singles.get("ice-ufrag")
    target.ice_pwd = lvl.singles.get("ice-pwd")
    target.setup = lvl.singles.get("setup")
    target.ice_options = tuple(lvl.singles.get("ice-options", "").split())
    target.fingerprints = tuple(lvl.fingerprints)


def _finish_session(offer: Offer, lvl: _Level) -> None:
    _finish_level(offer, lvl)
    offer.direction = lvl.direction
    offer.ice_lite = "ice-lite" in lvl.flags
    offer.extmap_allow_mixed = "extmap-allow-mixed" in lvl.flags
    for name, arg in lvl.attributes:
        if name == "group":
            m = _GROUP_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"malformed a=group value {quote(arg or '')}")
            if m.group(1).upper() == "BUNDLE":
                offer.bundle_groups.append(tuple(m.group(2).split()))
        elif name in ("mid", "rtcp-mux", "rtpmap", "ssrc", "candidate"):
            raise SdpError(f"a={name} is only allowed inside an m-line, not at session level")


def _finish_media(section: MediaSection, lvl: _Level, session_direction: str | None) -> None:
    _finish_level(section, lvl)
    section.direction = lvl.direction or session_direction or "sendrecv"
    section.mid = lvl.singles.get("mid")
    if section.mid is not None and _TOKEN_RE.fullmatch(section.mid) is None:
        raise SdpError(f"{lvl.where}: a=mid {quote(section.mid)} is not a token")
    section.rtcp_mux = "rtcp-mux" in lvl.flags
    section.rtcp_rsize = "rtcp-rsize" in lvl.flags
    section.bundle_only = "bundle-only" in lvl.flags
    section.end_of_candidates = "end-of-candidates" in lvl.flags
    sctp_port = lvl.singles.get("sctp-port")
    if sctp_port is not None:
        if not sctp_port.isascii() or not sctp_port.isdigit() or len(sctp_port) > 5:
            raise SdpError(f"{lvl.where}: malformed a=sctp-port {quote(sctp_port)}")
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
                raise SdpError(f"{where}: malformed a=fmtp {quote(arg or '')}")
        elif name == "rtcp-fb":
            m = _RTCP_FB_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"{where}: malformed a=rtcp-fb {quote(arg or '')}")
            fb = m.group(2) if m.group(3) is None else f"{m.group(2)} {m.group(3)}"
            section.rtcp_fb.setdefault(m.group(1), []).append(fb)
        elif name == "extmap":
            _media_extmap(section, arg, where)
        elif name == "ssrc":
            m = _SSRC_RE.fullmatch(arg or "")
            if m is None or int(m.group(1)) > 0xFFFFFFFF:
                raise SdpError(f"{where}: malformed a=ssrc {quote(arg or '')}")
            section.ssrcs.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3)
        elif name == "ssrc-group":
            m = _SSRC_GROUP_RE.fullmatch(arg or "")
            ssrcs = tuple(int(s) for s in m.group(2).split()) if m else ()
            if m is None or any(s > 0xFFFFFFFF for s in ssrcs):
                raise SdpError(f"{where}: malformed a=ssrc-group {quote(arg or '')}")
            section.ssrc_groups.append((m.group(1), ssrcs))
        elif name == "msid":
            m = _MSID_RE.fullmatch(arg or "")
            if m is None:
                raise SdpError(f"{where}: malformed a=msid {quote(arg or '')}")
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
        raise SdpError(f"{where}: malformed a=rtpmap {quote(arg or '')}")
    pt = _payload_type(m.group(1), where, "rtpmap")
    if pt in section.rtpmap:
        raise SdpError(f"{where}: payload type {pt} has two a=rtpmap lines")
    channels = int(m.group(4)) if m.group(4) is not None else 1
    section.rtpmap[pt] = (m.group(2), int(m.group(3)), channels)


def _media_extmap(section: MediaSection, arg: str | None, where: str) -> None:
    m = _EXTMAP_RE.fullmatch(arg or "")
    if m is None:
        raise SdpError(f"{where}: malformed a=extmap {quote(arg or '')}")
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

