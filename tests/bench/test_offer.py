"""The bench's SDP offer must be one the real server accepts, and the answer parser must
read the server's real answers and reject everything else with AnswerError only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.offer import AnswerError, OfferParams, build_offer, parse_answer
from sfu.certificate import Certificate
from sfu.sdp import Fingerprint, LocalParams, build_answer, parse_offer, select_audio

CERT = Certificate.generate("bench-test")


def _offer() -> str:
    return build_offer(
        OfferParams(
            ice_ufrag="abcd1234",
            ice_pwd="p" * 24,
            fingerprint=CERT.fingerprint_text("sha-256"),
            ssrc=12345678,
            cname="cname1",
            host="127.0.0.1",
            port=50000,
        )
    )


def _server_answer(offer_text: str, ssrc: int = 0xDEADBEEF) -> str:
    offer = parse_offer(offer_text)
    selection = select_audio(offer)
    local = LocalParams(
        ice_ufrag="srvu",
        ice_pwd="s" * 24,
        fingerprint=Fingerprint("sha-256", CERT.fingerprint("sha-256")),
        setup="passive",
        candidate_ip="127.0.0.1",
        candidate_port=40000,
        ssrc=ssrc,
        cname="walkie-x",
        msid_stream="walkie-room",
        msid_track="room-track",
    )
    return build_answer(offer, selection, local)


def test_server_accepts_bench_offer_as_a_browser_offer() -> None:
    selection = select_audio(parse_offer(_offer()))
    assert selection.opus_pt == 111
    assert selection.audio_level_id == 1
    assert selection.mid_ext_id == 4
    assert selection.mid == "0"
    assert selection.setup == "actpass"
    assert selection.direction == "sendrecv"
    assert selection.remote_ssrc == 12345678
    assert selection.fingerprints[0].value == CERT.fingerprint("sha-256")


def test_parse_real_server_answer() -> None:
    answer = parse_answer(_server_answer(_offer()))
    assert answer.ice_lite
    assert (answer.ice_ufrag, answer.ice_pwd) == ("srvu", "s" * 24)
    assert answer.setup == "passive"
    assert answer.fingerprints == [("sha-256", CERT.fingerprint("sha-256"))]
    assert answer.candidates == [("127.0.0.1", 40000)]
    assert (answer.opus_pt, answer.audio_level_id, answer.mid_ext_id) == (111, 1, 4)
    assert answer.mid == "0"
    assert answer.ssrc == 0xDEADBEEF


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("a=setup:passive", "a=setup:actpass", "active or passive"),
        ("a=fingerprint:", "a=x-fingerprint:", "fingerprint"),
        ("a=rtcp-mux\r\n", "", "rtcp-mux"),
        ("m=audio 40000", "m=audio 0", "port 0"),
        ("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 PCMU/8000", "Opus"),
        ("a=ice-pwd:", "a=x-ice-pwd:", "ICE credentials"),
        ("udp 2130706431 127.0.0.1", "udp 2130706431 not-an-ip", "IP"),
        ("v=0", "v=1", "v=0"),
    ],
)
def test_bad_answers_are_refused_with_reason(old: str, new: str, reason: str) -> None:
    text = _server_answer(_offer())
    assert old in text
    with pytest.raises(AnswerError, match=reason):
        parse_answer(text.replace(old, new, 1))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_answer_raises_only_answer_error_on_arbitrary_text(text: str) -> None:
    try:
        parse_answer(text)
    except AnswerError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "a=ice-ufrag:x", "a=ice-pwd:y", "a=setup:active", "a=rtcp-mux", "m=audio 1 RTP/SAVPF 111",
    "a=rtpmap:111 opus/48000/2", "a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 ::1 99999 typ host", "a=extmap:999 x", "a=ssrc:-1 cname:x",
    "a=fingerprint:sha-256 AA", "m=video 9 X 96", "a=extmap:1/sendrecv urn:x",
    "a=candidate:1 1 tcp 1 1.2.3.4 9 typ host", "c=IN IP4 1.2.3.4", "garbage", "a=mid:0",
]), max_size=14))
def test_parse_answer_raises_only_answer_error_on_sdp_like_lines(lines: list[str]) -> None:
    try:
        parse_answer("v=0\r\n" + "\r\n".join(lines))
    except AnswerError:
        pass
