"""Tests for sfu/sdp/select.py: which m-line we serve, what serving it needs, and why not.

Every unservable offer must be refused with a message a developer can act on (it reaches the
browser's console through signaling).
"""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from sfu.sdp import SdpError, parse_offer, select_audio
from tests.sfu.sdp_helpers import ALL_FIXTURES, CHROME, EXPECTED, load, sub1


# --------------------------------------------------------------------------- real offers


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_select_audio_on_fixture(name: str) -> None:
    text = load(name)
    offer = parse_offer(text)
    sel = select_audio(offer)
    opus_pt, level_id, mid_id, _kinds, index, _groups = EXPECTED[name]
    assert (sel.opus_pt, sel.audio_level_id, sel.mid_ext_id, sel.index) == (
        opus_pt, level_id, mid_id, index)
    section = offer.media[index]
    assert section.kind == "audio" and sel.mid == section.mid
    assert section.rtpmap[opus_pt][0] == "opus"
    assert sel.opus_fmtp == section.fmtp[opus_pt] and "useinbandfec=1" in sel.opus_fmtp
    assert sel.setup == "actpass" and sel.direction == "sendrecv"
    # Credentials are the ones written in the text (all fixtures carry them on the m-line).
    assert f"a=ice-ufrag:{sel.ice_ufrag}" in text and f"a=ice-pwd:{sel.ice_pwd}" in text
    hexes = re.findall(r"^a=fingerprint:sha-256 ([0-9A-F:]+)\r?$", text, re.MULTILINE)
    assert {f.value for f in sel.fingerprints} == {bytes.fromhex(h.replace(":", "")) for h in hexes}
    assert all(f.algorithm == "sha-256" for f in sel.fingerprints)
    first_ssrc = re.search(r"^a=ssrc:(\d+) ", text[text.index(f"a=mid:{sel.mid}"):], re.M)
    assert first_ssrc is not None and sel.remote_ssrc == int(first_ssrc.group(1))


def test_firefox_session_level_fingerprint_is_used() -> None:
    offer = parse_offer(load("firefox_audio.sdp"))
    assert offer.media[0].fingerprints == () and len(offer.fingerprints) == 1
    assert select_audio(offer).fingerprints == offer.fingerprints


def test_bundle_only_audio_is_served() -> None:
    offer = parse_offer(load("firefox_video_audio_maxbundle.sdp"))
    audio = offer.media[1]
    assert audio.port == 0 and audio.bundle_only and not audio.rejected
    assert select_audio(offer).index == 1


def test_bundled_audio_without_transport_attributes_uses_the_tagged_m_line() -> None:
    """RFC 8843: a bundled m-line may omit transport attributes; they are the tag's."""
    text = load("firefox_video_audio_maxbundle.sdp")
    head, audio = text.split("m=audio", 1)
    audio = re.sub(r"^a=(ice-ufrag|ice-pwd|setup|rtcp-mux)(:.*)?\r\n", "", audio, flags=re.M)
    offer = parse_offer(head + "m=audio" + audio)
    assert offer.media[1].ice_ufrag is None and not offer.media[1].rtcp_mux
    sel = select_audio(offer)
    assert (sel.ice_ufrag, sel.ice_pwd) == (offer.media[0].ice_ufrag, offer.media[0].ice_pwd)
    assert sel.setup == "actpass"


def test_ssrc_group_secondary_is_not_the_remote_ssrc() -> None:
    text = load("chrome_audio.sdp")
    ssrc = re.search(r"^a=ssrc:(\d+) cname", text, re.M).group(1)  # type: ignore[union-attr]
    text = text.replace(f"a=ssrc:{ssrc} cname", f"a=ssrc-group:FID 5 {ssrc}\r\na=ssrc:{ssrc} cname")
    text = text.replace(f"a=ssrc-group:FID 5 {ssrc}\r\n", f"a=ssrc-group:FID 5 {ssrc}\r\na=ssrc:5 cname:x\r\n")
    offer = parse_offer(text)
    assert offer.media[0].ssrc_groups == [("FID", (5, int(ssrc)))]
    assert select_audio(offer).remote_ssrc == 5


def test_lf_only_and_trailing_blank_lines_are_accepted() -> None:
    text = load("chrome_audio.sdp").replace("\r\n", "\n") + "\n\n"
    assert select_audio(parse_offer(text)).opus_pt == 111


def test_session_level_direction_is_inherited() -> None:
    text = load("firefox_audio.sdp")  # session a=sendrecv; drop the media one, set session
    text = sub1(r"^a=sendrecv\r\n(?=a=fingerprint)", "a=recvonly\r\n", text)
    text = sub1(r"^a=sendrecv\r\n(?=a=end-of-candidates)", "", text)
    assert select_audio(parse_offer(text)).direction == "recvonly"


# --------------------------------------------------------------------------- unservable offers


UNSERVABLE: list[tuple[str, str, Callable[[str], str], str]] = [
    ("no audio m-line", CHROME, lambda t: sub1(r"^m=audio", "m=video", t), "no audio m-line"),
    ("audio port 0", CHROME, lambda t: sub1(r"^m=audio \d+", "m=audio 0", t),
     r"audio m-line is disabled \(port 0\)"),
    ("no opus", CHROME, lambda t: sub1(r"^a=rtpmap:111 opus/48000/2\r\n", "", t),
     r"no Opus codec \(opus/48000/2\) in its audio section"),
    ("opus wrong clock", CHROME, lambda t: sub1(r"opus/48000/2", "opus/8000/2", t), "no Opus"),
    ("opus not in m= formats", CHROME, lambda t: sub1(r"SAVPF 111 ", "SAVPF ", t), "no Opus"),
    ("no rtcp-mux", CHROME, lambda t: sub1(r"^a=rtcp-mux\r\n", "", t), "lacks a=rtcp-mux"),
    ("no ufrag", CHROME, lambda t: sub1(r"^a=ice-ufrag:.*\r\n", "", t), "no a=ice-ufrag"),
    ("no pwd", CHROME, lambda t: sub1(r"^a=ice-pwd:.*\r\n", "", t), "no a=ice-pwd"),
    ("short ufrag", CHROME, lambda t: sub1(r"^a=ice-ufrag:.*$", "a=ice-ufrag:abc", t),
     r"ice-ufrag has 3 characters; RFC 8839 requires 4-256"),
    ("long ufrag", CHROME, lambda t: sub1(r"^a=ice-ufrag:.*$", "a=ice-ufrag:" + "a" * 257, t),
     "ice-ufrag has 257 characters"),
    ("short pwd", CHROME, lambda t: sub1(r"^a=ice-pwd:.*$", "a=ice-pwd:" + "p" * 21, t),
     r"ice-pwd has 21 characters; RFC 8839 requires 22-256"),
    ("bad ufrag chars", CHROME, lambda t: sub1(r"^a=ice-ufrag:.*$", "a=ice-ufrag:ab-cd", t),
     "ice-ufrag has characters outside"),
    ("bad pwd chars", CHROME, lambda t: sub1(r"^a=ice-pwd:.*$", "a=ice-pwd:" + "é" * 24, t),
     "ice-pwd has characters outside"),
    ("no fingerprint", CHROME, lambda t: sub1(r"^a=fingerprint:.*\r\n", "", t),
     "no usable DTLS fingerprint .*got none"),
    ("sha-1 fingerprint", CHROME,
     lambda t: sub1(r"^a=fingerprint:.*$", "a=fingerprint:sha-1 " + ":".join(["AA"] * 20), t),
     "no usable DTLS fingerprint .*got sha-1"),
    ("short sha-256", CHROME,
     lambda t: sub1(r"^a=fingerprint:.*$", "a=fingerprint:sha-256 " + ":".join(["AA"] * 20), t),
     "no usable DTLS fingerprint"),
    ("no setup", CHROME, lambda t: sub1(r"^a=setup:.*\r\n", "", t), "no a=setup"),
    ("bad setup", CHROME, lambda t: sub1(r"^a=setup:.*$", "a=setup:holdconn", t),
     "'holdconn' is not actpass, active or passive"),
    ("plain RTP", CHROME, lambda t: sub1(r"UDP/TLS/RTP/SAVPF", "RTP/AVP", t),
     "uses RTP/AVP; walkie needs UDP/TLS/RTP/SAVPF"),
    ("TCP", CHROME, lambda t: sub1(r"UDP/TLS/RTP/SAVPF", "TCP/TLS/RTP/SAVPF", t),
     "uses TCP/TLS/RTP/SAVPF"),
    ("no mid", CHROME,
     lambda t: sub1(r"^a=mid:0\r\n", "", sub1(r"^a=group:BUNDLE 0\r\n", "", t)), "no a=mid"),
    ("ice-lite offer", CHROME, lambda t: sub1(r"^t=0 0$", "t=0 0\r\na=ice-lite", t), "ICE-lite"),
    ("firefox without session fingerprint", "firefox_audio.sdp",
     lambda t: sub1(r"^a=fingerprint:.*\r\n", "", t), "no usable DTLS fingerprint"),
]


@pytest.mark.parametrize(("name", "fixture", "mutate", "message"), UNSERVABLE,
                         ids=[u[0] for u in UNSERVABLE])
def test_unservable_offer(name: str, fixture: str, mutate: Callable[[str], str],
                          message: str) -> None:
    offer = parse_offer(mutate(load(fixture)))  # parses: it is well-formed, just unservable
    with pytest.raises(SdpError, match=message):
        select_audio(offer)
