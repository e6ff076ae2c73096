"""Tests for sfu/sdp/answer.py (LocalParams, build_answer) and sfu/sdp/roles.py (a=setup).

Whether browsers accept these answers is checked in test_sdp_browsers.py.
"""
from __future__ import annotations

import re

import pytest

from sfu.sdp import (
    AUDIO_LEVEL_URI,
    MID_URI,
    Fingerprint,
    SdpError,
    answer_direction,
    build_answer,
    dtls_role,
    local_setup_for,
    offerer_dtls_role,
    parse_offer,
    select_audio,
)
from tests.sfu.sdp_helpers import ALL_FIXTURES, CHROME, answer_for, load, make_local, sub1


# --------------------------------------------------------------------------- answers


ANSWER_LINE_RE = re.compile(r"[a-z]=[^\r\n]*")


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_answer_contains_exactly_what_is_required(name: str) -> None:
    offer, sel, text = answer_for(load(name))
    local = make_local()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(ANSWER_LINE_RE.fullmatch(ln) for ln in text.split("\r\n")[:-1])
    assert text.startswith("v=0\r\no=walkie 42 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
    answer = parse_offer(text)
    assert ("ice-lite", None) in answer.attributes and answer.ice_lite
    assert answer.bundle_groups == [(sel.mid,)]
    assert "transport-cc" not in text and "rtcp-fb" not in text and "actpass" not in text
    assert "rtcp-rsize" not in text  # keeps the browser's RTCP compound

    assert [(m.kind, m.mid) for m in answer.media] == [(m.kind, m.mid) for m in offer.media]
    for index, (theirs, ours) in enumerate(zip(offer.media, answer.media)):
        assert ours.proto == theirs.proto
        if index != sel.index:
            assert ours.port == 0 and ours.formats == theirs.formats[:1]
            assert ours.rtpmap == {} and ours.ice_ufrag is None and ours.candidates == []
            if ours.kind == "application":
                assert (ours.proto, ours.formats) == ("UDP/DTLS/SCTP", ["webrtc-datachannel"])
            continue
        pt, red = sel.opus_pt, sel.red_pt
        formats = [str(pt)] if red is None else [str(red), str(pt)]  # RED first: it is sent
        assert ours.port == local.candidate_port and ours.formats == formats
        assert ours.connection == "IN IP4 127.0.0.1"
        assert ours.rtcp_mux and ours.mid == sel.mid and ours.direction == "sendrecv"
        assert (ours.ice_ufrag, ours.ice_pwd) == (local.ice_ufrag, local.ice_pwd)
        assert ours.fingerprints == (local.fingerprint,)
        assert ours.setup == "passive"
        red_map = {} if red is None else {red: ("red", 48000, 2)}
        red_fmtp = {} if red is None else {red: f"{pt}/{pt}"}
        assert ours.rtpmap == {pt: ("opus", 48000, 2), **red_map}
        assert ours.fmtp == {pt: "minptime=10;useinbandfec=1", **red_fmtp}
        assert ours.rtcp_fb == {}
        assert ours.extmap == {sel.audio_level_id: AUDIO_LEVEL_URI, sel.mid_ext_id: MID_URI}
        assert ours.extmap_direction == {}
        assert ours.candidates == ["1 1 udp 2130706431 127.0.0.1 40000 typ host"]
        assert ours.end_of_candidates
        msid = f"{local.msid_stream} {local.msid_track}"
        assert ours.ssrcs == {local.ssrc: {"cname": local.cname, "msid": msid}}
        assert ours.msid == [(local.msid_stream, local.msid_track)]


def test_answer_without_bundle_in_offer_has_no_group() -> None:
    text = sub1(r"^a=group:BUNDLE 0\r\n", "", load("chrome_audio.sdp"))
    _, _, answer = answer_for(text)
    assert "a=group" not in answer and parse_offer(answer).bundle_groups == []


def test_answer_moves_bundle_tag_to_audio_when_video_was_tagged() -> None:
    _, sel, answer = answer_for(load("chrome_video_audio.sdp"))
    assert sel.mid == "1" and "a=group:BUNDLE 1\r\n" in answer


@pytest.mark.parametrize(
    ("offered", "answered", "we_send"),
    [("sendrecv", "sendrecv", True), ("sendonly", "recvonly", False),
     ("recvonly", "sendonly", True), ("inactive", "inactive", False)],
)
def test_answer_direction(offered: str, answered: str, we_send: bool) -> None:
    text = sub1(r"^a=sendrecv$", f"a={offered}", load("chrome_audio.sdp"))
    _, sel, answer = answer_for(text)
    assert sel.direction == offered
    section = parse_offer(answer).media[0]
    assert section.direction == answered
    assert bool(section.ssrcs) is we_send and bool(section.msid) is we_send


@pytest.mark.parametrize(
    ("offered", "answered", "we_send"),
    [("sendrecv", "sendonly", True), ("recvonly", "sendonly", True),
     ("sendonly", "inactive", False), ("inactive", "inactive", False)],
)
def test_a_listen_only_member_is_answered_without_our_receiving_side(
        offered: str, answered: str, we_send: bool) -> None:
    """Whatever a listen-only member offers, the answer never lets it send to us."""
    offer = parse_offer(sub1(r"^a=sendrecv$", f"a={offered}", load("chrome_audio.sdp")))
    sel = select_audio(offer, listen_only=True)
    assert sel.listen_only and answer_direction(sel) == answered
    section = parse_offer(build_answer(offer, sel, make_local(), session_id=42)).media[0]
    assert section.direction == answered
    assert bool(section.ssrcs) is we_send and bool(section.msid) is we_send
    # Only an offer that would send to us is answered differently than for anyone else.
    ordinary = answer_direction(select_audio(offer))
    assert (ordinary != answered) is (offered in ("sendrecv", "sendonly"))


def test_answer_echoes_extmap_direction_reversed() -> None:
    text = sub1(r"^a=extmap:1 ", "a=extmap:1/sendonly ", load("chrome_audio.sdp"))
    _, _, answer = answer_for(text)
    assert f"a=extmap:1/recvonly {AUDIO_LEVEL_URI}\r\n" in answer


def test_inactive_extmap_is_not_selected() -> None:
    text = sub1(r"^a=extmap:4 ", "a=extmap:4/inactive ", load("chrome_audio.sdp"))
    _, sel, answer = answer_for(text)
    assert sel.mid_ext_id is None and MID_URI not in answer


def test_offer_without_header_extensions_gets_none() -> None:
    text = re.sub(r"^a=extmap:.*\r\n", "", load("chrome_audio.sdp"), flags=re.M)
    _, sel, answer = answer_for(text)
    assert (sel.audio_level_id, sel.mid_ext_id) == (None, None) and "a=extmap" not in answer


def test_ipv6_candidate() -> None:
    _, _, answer = answer_for(load("chrome_audio.sdp"), candidate_ip="::1")
    assert "\r\nc=IN IP6 ::1\r\n" in answer and "udp 2130706431 ::1 40000 typ host" in answer


def test_second_audio_m_line_is_rejected() -> None:
    text = load("chrome_audio.sdp")
    audio = text[text.index("m=audio"):]
    text = text.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
    text += audio.replace("a=mid:0", "a=mid:1")
    _, sel, answer = answer_for(text)
    assert sel.index == 0
    second = parse_offer(answer).media[1]
    assert (second.kind, second.port, second.mid, second.direction) == ("audio", 0, "1", "inactive")
    assert "a=group:BUNDLE 0\r\n" in answer


def test_disabled_first_audio_serves_the_second() -> None:
    text = load("chrome_audio.sdp")
    audio = text[text.index("m=audio"):]
    text = re.sub(r"^m=audio \d+", "m=audio 0", text, count=1, flags=re.M)
    text = text.replace("a=group:BUNDLE 0", "a=group:BUNDLE 1") + audio.replace("a=mid:0", "a=mid:1")
    _, sel, answer = answer_for(text)
    assert (sel.index, sel.mid) == (1, "1")
    assert [m.port for m in parse_offer(answer).media] == [0, 40000]


def test_savp_is_servable_and_echoed() -> None:
    text = sub1(r"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", load(CHROME))
    _, _, answer = answer_for(text)
    assert "\r\nm=audio 40000 UDP/TLS/RTP/SAVP 63 111\r\n" in answer  # RED first


def test_selection_from_another_offer_is_refused() -> None:
    chrome = parse_offer(load("chrome_video_audio.sdp"))
    firefox = parse_offer(load("firefox_audio.sdp"))
    with pytest.raises(SdpError, match="does not belong"):
        build_answer(firefox, select_audio(chrome), make_local())


def test_random_session_id_when_not_given() -> None:
    offer = parse_offer(load("chrome_audio.sdp"))
    sel = select_audio(offer)
    first = build_answer(offer, sel, make_local()).split("\r\n")[1]
    assert re.fullmatch(r"o=walkie \d+ 1 IN IP4 0\.0\.0\.0", first)


# --------------------------------------------------------------------------- a=setup and DTLS roles


def test_setup_rules() -> None:
    assert local_setup_for("actpass") == "passive"
    assert local_setup_for("active") == "passive"
    assert local_setup_for("passive") == "active"
    with pytest.raises(SdpError, match="not actpass, active or passive"):
        local_setup_for("holdconn")
    text = sub1(r"^a=setup:actpass", "a=setup:active", load("chrome_audio.sdp"))
    with pytest.raises(SdpError, match="cannot answer the offer's active"):
        answer_for(text, setup="active")
    _, _, answer = answer_for(text, setup="passive")
    assert "a=setup:passive\r\n" in answer
    _, _, answer = answer_for(load("chrome_audio.sdp"), setup="active")
    assert "a=setup:active\r\n" in answer


def test_dtls_role_follows_the_setup() -> None:
    """active starts the handshake (client), passive waits (server); actpass is no role."""
    assert (dtls_role("active"), dtls_role("passive")) == ("client", "server")
    with pytest.raises(SdpError, match="gives no DTLS role"):
        dtls_role("actpass")
    # Our answer to an actpass (or active) offer makes us the server: the browser starts DTLS.
    assert dtls_role(local_setup_for("actpass")) == "server"
    assert dtls_role(local_setup_for("active")) == "server"
    assert dtls_role(local_setup_for("passive")) == "client"


def test_offerer_takes_the_other_role_than_the_answer() -> None:
    assert offerer_dtls_role("passive") == "client"
    assert offerer_dtls_role("active") == "server"
    with pytest.raises(SdpError):
        offerer_dtls_role("actpass")


# --------------------------------------------------------------------------- LocalParams


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ice_ufrag": "abc"}, "local ice_ufrag has 3 characters; RFC 8839 requires 4-256"),
        ({"ice_ufrag": "ab cd"}, "local ice_ufrag has characters outside A-Z a-z 0-9"),
        ({"ice_pwd": "x" * 21}, "local ice_pwd has 21 characters; RFC 8839 requires 22-256"),
        ({"fingerprint": Fingerprint("sha-1", bytes(20))}, "local fingerprint"),
        ({"fingerprint": Fingerprint("sha-256", bytes(31))}, "local fingerprint"),
        ({"setup": "actpass"}, "never actpass"),
        ({"candidate_ip": "example.org"}, "is not an IP"),
        ({"candidate_port": 0}, "candidate_port 0 is out of range"),
        ({"ssrc": 1 << 32}, "not a 32-bit value"),
        ({"cname": "has space"}, "cname"),
        ({"msid_stream": "room with spaces"}, "msid_stream must be 1-64 token"),
        ({"msid_track": "t" * 65}, "msid_track must be 1-64 token"),
    ],
)
def test_local_params_are_checked(change: dict[str, object], message: str) -> None:
    with pytest.raises(SdpError, match=message):
        make_local(**change)
