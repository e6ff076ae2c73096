"""Step 2 of 3: decide whether we can serve an offer, and what serving it needs.

:func:`select_audio` picks the one audio m-line walkie serves (mic up, the room's channel
down) and returns the :class:`AudioSelection` the transport layers need: Opus payload type,
header-extension ids, remote ICE credentials, DTLS fingerprints and ``a=setup``. Anything
unservable is an :class:`~sfu.sdp.model.SdpError` whose message tells a human why, because
it ends up in the browser's console via signaling. The rules it applies are owned elsewhere
and called, not restated: ICE credential syntax by ``sfu/ice.py``, usable fingerprints by
``sfu/certificate.py``, ``a=setup`` values by ``sfu/sdp/roles.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..ice import credential_problem
from ..red import MAX_REDUNDANT
from .model import Fingerprint, MediaSection, Offer, SdpError
from .roles import check_offer_setup

__all__ = ["AUDIO_LEVEL_URI", "MID_URI", "SERVABLE_PROTOS", "AudioSelection", "select_audio"]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 9143

#: Protocols we can serve on the audio m-line: DTLS-SRTP over UDP (RFC 5764), with or without
#: the "F" (feedback) profile. Browsers send SAVPF.
SERVABLE_PROTOS = ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP")


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
    #: the member may not send (signaling's word: a listen-only join token): we never take
    #: its audio, whatever the offer says (the answer and the peer follow ``answer.py``)
    listen_only: bool = False
    #: the offerer's RFC 2198 RED payload type for Opus (``red/48000/2`` with
    #: ``a=fmtp:<red> <opus>/<opus>``), None when it offered none we can use (sfu/red.py)
    red_pt: int | None = None

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The answer's formats in order: RED first when negotiated (a browser sends the
        first one, so a RED offerer then sends RED), then Opus."""
        return (self.opus_pt,) if self.red_pt is None else (self.red_pt, self.opus_pt)


def _check_ice_credential(kind: Literal["ufrag", "pwd"], value: str | None) -> str:
    if value is None:
        raise SdpError(f"offer has no a=ice-{kind} for its audio m-line (needed for ICE)")
    problem = credential_problem(kind, value)
    if problem is not None:
        raise SdpError(f"offer's a=ice-{kind} {problem}")
    return value


def select_audio(offer: Offer, *, listen_only: bool = False) -> AudioSelection:
    """Choose the audio m-line to serve and check that we can serve it.

    ``listen_only``: the member may only listen (signaling decides, from its join token);
    the selection carries it to the answer and to the peer.

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
    ufrag = _check_ice_credential("ufrag", _first(levels, "ice_ufrag"))
    pwd = _check_ice_credential("pwd", _first(levels, "ice_pwd"))

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
    check_offer_setup(setup)

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
        listen_only=listen_only,
        red_pt=_find_red(section, opus_pt),
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


def _find_red(section: MediaSection, opus_pt: int) -> int | None:
    """The offerer's RED payload type if it carries only our Opus (RFC 2198 §5), else None.

    Chromium offers ``a=rtpmap:63 red/48000/2`` with ``a=fmtp:63 111/111``: the fmtp lists
    the payload type of each block, one or more, every one ours. A RED entry we cannot use
    (no fmtp, another codec inside, more blocks than we forward) is ignored: the peer gets
    plain Opus, as one that offered no RED.
    """
    for fmt in section.formats:
        if not fmt.isascii() or not fmt.isdigit() or len(fmt) > 3:
            continue
        pt = int(fmt)
        entry = section.rtpmap.get(pt)
        if entry is None or entry[0].lower() != "red" or entry[1:] != (48000, 2):
            continue
        blocks = section.fmtp.get(pt, "").strip().split("/")
        if 1 <= len(blocks) <= MAX_REDUNDANT + 1 and all(b == str(opus_pt) for b in blocks):
            return pt
    return None


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

