"""Step 3 of 3: write the JSEP answer (RFC 8829 §5.3) for a served offer.

:class:`LocalParams` is our side of one peer's transport (ICE credentials, certificate
fingerprint, ``a=setup``, candidate, downlink SSRC), checked on construction;
:func:`build_answer` writes the answer text from the offer, the
:class:`~sfu.sdp.select.AudioSelection` and those parameters. Which ``a=setup`` we answer
(and so our DTLS role) is decided by ``sfu/sdp/roles.py``.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from ..ice import credential_problem
from .model import TOKEN_CHAR, Fingerprint, MediaSection, Offer, SdpError, quote
from .roles import ANSWER_SETUPS, answer_setup_fits
from .select import AudioSelection

__all__ = ["LocalParams", "answer_direction", "build_answer"]

_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
#: The same answer without our receiving side: a listen-only member may not send to us.
_WITHOUT_RECEIVING = {
    "sendrecv": "sendonly",
    "recvonly": "inactive",
    "sendonly": "sendonly",
    "inactive": "inactive",
}


def answer_direction(sel: AudioSelection) -> str:
    """Our direction in the answer (RFC 8829 §5.3.1, RFC 3264 §6.1): the offer's mirrored,
    without ``recv`` for a listen-only member (``sendrecv`` -> ``sendonly``, ``recvonly`` ->
    ``inactive``): the browser then sends no audio at all. The peer (``sfu/peer.py``) reads
    the same value to know whether it may send (we receive) and whether it listens (we send).
    """
    direction = _ANSWER_DIRECTION[sel.direction]
    return _WITHOUT_RECEIVING[direction] if sel.listen_only else direction
_MSID_ID_RE = re.compile(TOKEN_CHAR + "{1,64}", re.ASCII)  # RFC 8830 msid-id
_CNAME_RE = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)


@dataclass(frozen=True)
class LocalParams:
    """Our side of one peer's transport, chosen by the router. Checked on construction so that
    an invalid value fails here, loudly, instead of as a browser's setRemoteDescription error.
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint  # our certificate's
    setup: str  # 'passive' or 'active' (see sfu/sdp/roles.py: local_setup_for)
    candidate_ip: str
    candidate_port: int  # our single host candidate (UDP)
    ssrc: int  # the downlink SSRC we send to this peer
    cname: str
    msid_stream: str
    msid_track: str

    def __post_init__(self) -> None:
        credentials: tuple[tuple[Literal["ufrag", "pwd"], str], ...] = (
            ("ufrag", self.ice_ufrag), ("pwd", self.ice_pwd))
        for kind, value in credentials:
            problem = credential_problem(kind, value)
            if problem is not None:
                raise SdpError(f"local ice_{kind} {problem}")
        if not self.fingerprint.usable:
            raise SdpError("local fingerprint must be sha-256/384/512 with a full digest")
        if self.setup not in ANSWER_SETUPS:
            raise SdpError("local setup must be 'active' or 'passive' (never actpass)")
        try:
            ipaddress.ip_address(self.candidate_ip)
        except ValueError:
            raise SdpError(f"local candidate_ip {quote(self.candidate_ip)} is not an IP") from None
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

    The served m-line answers Opus (with in-band FEC), preceded by RED when the offer has a
    usable one (:attr:`AudioSelection.red_pt`), rtcp-mux, our ICE-lite host candidate and DTLS
    role, and only the ssrc-audio-level and sdes:mid header extensions (with the offer's
    ids). No rtcp-fb: we neither send NACKs for audio nor transport-wide feedback, and
    answering transport-cc would make the browser wait for feedback that never comes.
    Every other m-line is rejected (port 0) with its mid, so the browser can match it to
    its transceiver, and is left out of the BUNDLE group.
    """
    if not 0 <= sel.index < len(offer.media) or offer.media[sel.index].mid != sel.mid:
        raise SdpError("audio selection does not belong to this offer")
    if not answer_setup_fits(sel.setup, local.setup):
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
    direction = answer_direction(sel)
    pt = sel.opus_pt
    red = sel.red_pt  # RFC 2198; what is forwarded to whom: sfu/red.py
    formats = " ".join(map(str, sel.payload_types))
    lines = [
        f"m=audio {local.candidate_port} {section.proto} {formats}",
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
    ]
    if red is not None:
        lines += [f"a=rtpmap:{red} red/48000/2", f"a=fmtp:{red} {pt}/{pt}"]
    lines += [
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
