"""Tests for sfu/sdp/parse.py (SDP text -> Offer) and the Fingerprint value of sfu/sdp/model.py.

Real browser offers must parse with every line kept; malformed text of every kind must fail
with a clear SdpError.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.sdp import Fingerprint, SdpError, parse_offer
from tests.sfu.sdp_helpers import ALL_FIXTURES, CHROME, EXPECTED, certificate_der, load, sub1


# --------------------------------------------------------------------------- fixtures parse


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == ALL_FIXTURES


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_parse_fixture_keeps_every_line(name: str) -> None:
    text = load(name)
    offer = parse_offer(text)
    a_lines = [ln for ln in text.splitlines() if ln.startswith("a=")]
    kept = len(offer.attributes) + sum(len(m.attributes) for m in offer.media)
    assert kept == len(a_lines)
    assert [m.kind for m in offer.media] == EXPECTED[name][3]
    assert offer.bundle_groups == EXPECTED[name][5]
    for section in offer.media:
        assert section.mid is not None
        assert section.proto in ("UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP")
        if section.kind != "application":
            assert section.rtpmap and set(section.rtpmap) <= {int(f) for f in section.formats}


def test_firefox_extmap_direction_parsed() -> None:
    section = parse_offer(load("firefox_audio.sdp")).media[0]
    assert section.extmap[2] == "urn:ietf:params:rtp-hdrext:csrc-audio-level"
    assert section.extmap_direction == {2: "recvonly"}


def test_safari_mdns_candidate_kept_raw() -> None:
    section = parse_offer(load("safari_audio.sdp")).media[0]
    assert len(section.candidates) == 1 and ".local 61034 typ host" in section.candidates[0]


# --------------------------------------------------------------------------- Fingerprint


def test_fingerprint_of_certificate_matches_cryptography() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    der = certificate_der()
    cert = x509.load_der_x509_certificate(der)
    for algorithm, hash_cls in (("sha-256", hashes.SHA256), ("sha-384", hashes.SHA384),
                                ("sha-512", hashes.SHA512)):
        fp = Fingerprint.of_certificate(der, algorithm)
        assert fp.value == cert.fingerprint(hash_cls()) and fp.usable
        assert Fingerprint.parse(fp.to_sdp()) == fp
    with pytest.raises(SdpError, match="unsupported"):
        Fingerprint.of_certificate(der, "sha-1")


def test_fingerprint_parse_lowercases_and_accepts_lower_hex() -> None:
    fp = Fingerprint.parse("SHA-256 " + ":".join(["ab"] * 32))
    assert fp == Fingerprint("sha-256", b"\xab" * 32)
    assert fp.to_sdp() == "sha-256 " + ":".join(["AB"] * 32)


@pytest.mark.parametrize("bad", ["", "sha-256", "sha-256 ABC", "sha-256 AB::CD", "sha-256 GG",
                                 "sha-256 AB:CD:", "sha 256 AB"])
def test_fingerprint_parse_rejects(bad: str) -> None:
    with pytest.raises(SdpError, match="malformed a=fingerprint"):
        Fingerprint.parse(bad)


@given(st.text())
def test_fingerprint_parse_only_raises_sdp_error(text: str) -> None:
    try:
        Fingerprint.parse(text)
    except SdpError:
        pass


# --------------------------------------------------------------------------- malformed SDP


def _chrome() -> str:
    return load(CHROME)


MALFORMED: list[tuple[str, Callable[[], str], str]] = [
    ("empty", lambda: "", "SDP is empty"),
    ("blank lines", lambda: "\r\n\r\n", "SDP is empty"),
    ("not v=0", lambda: "v=1\r\n" + _chrome()[5:], "must start with 'v=0'"),
    ("garbage line", lambda: _chrome() + "hello\r\n", r"line \d+ is not '<letter>=<value>'"),
    ("upper-case type", lambda: _chrome() + "A=b\r\n", "is not '<letter>=<value>'"),
    ("space before =", lambda: _chrome() + "a =b\r\n", "is not '<letter>=<value>'"),
    ("NUL", lambda: _chrome() + "a=x\x00y\r\n", "NUL or a stray CR"),
    ("stray CR", lambda: _chrome().replace("s=-\r\n", "s=-\rx\r\n"), "NUL or a stray CR"),
    ("no o=", lambda: sub1(r"^o=.*\r\n", "", _chrome()), "no o= line"),
    ("bad o=", lambda: sub1(r"^o=.*$", "o=- x 2 IN IP4 1.2.3.4", _chrome()), "malformed o="),
    ("no s=", lambda: sub1(r"^s=.*\r\n", "", _chrome()), "no s= line"),
    ("two v=", lambda: _chrome() + "v=0\r\n", "repeated v="),
    ("o= in media", lambda: _chrome() + "o=- 1 1 IN IP4 0.0.0.0\r\n", "only allowed at session"),
    ("bad m= port", lambda: sub1(r"^m=audio \d+", "m=audio 70000", _chrome()), "out of range"),
    ("m= no formats", lambda: sub1(r"^m=audio .*$", "m=audio 9 UDP/TLS/RTP/SAVPF", _chrome()),
     "malformed m= line"),
    ("m= port text", lambda: sub1(r"^m=audio \d+", "m=audio nine", _chrome()), "malformed m="),
    ("bad rtpmap", lambda: sub1(r"^a=rtpmap:111 .*$", "a=rtpmap:111 opus", _chrome()),
     "malformed a=rtpmap"),
    ("rtpmap pt 200", lambda: sub1(r"^a=rtpmap:111 ", "a=rtpmap:200 ", _chrome()),
     "payload type 200 is out of range"),
    ("duplicate rtpmap", lambda: sub1(r"^a=rtpmap:0 ", "a=rtpmap:111 ", _chrome()),
     "payload type 111 has two a=rtpmap"),
    ("bad fmtp", lambda: sub1(r"^a=fmtp:111 .*$", "a=fmtp:111", _chrome()), "malformed a=fmtp"),
    ("bad extmap", lambda: sub1(r"^a=extmap:1 .*$", "a=extmap:x y", _chrome()),
     "malformed a=extmap"),
    ("extmap id 0", lambda: sub1(r"^a=extmap:1 ", "a=extmap:0 ", _chrome()),
     "id 0 is out of range 1-255"),
    ("extmap id 256", lambda: sub1(r"^a=extmap:1 ", "a=extmap:256 ", _chrome()),
     "id 256 is out of range"),
    ("duplicate extmap", lambda: sub1(r"^a=extmap:2 ", "a=extmap:1 ", _chrome()),
     "id 1 is used twice"),
    ("bad fingerprint", lambda: sub1(r"^a=fingerprint:sha-256 ..", "a=fingerprint:sha-256 ZZ",
                                     _chrome()), "malformed a=fingerprint"),
    ("two ufrags", lambda: sub1(r"^a=ice-ufrag:.*$", r"\g<0>\r\na=ice-ufrag:other", _chrome()),
     "two different a=ice-ufrag"),
    ("two directions", lambda: sub1(r"^a=sendrecv$", "a=sendrecv\r\na=recvonly", _chrome()),
     "conflicting directions"),
    ("direction with value", lambda: sub1(r"^a=sendrecv$", "a=sendrecv:yes", _chrome()),
     "takes no value"),
    ("empty mid", lambda: sub1(r"^a=mid:0$", "a=mid:", _chrome()), "a=mid needs a value"),
    ("mid not a token", lambda: sub1(r"^a=mid:0$", "a=mid:a(b)", _chrome()), "is not a token"),
    ("duplicate mid", lambda: _chrome() + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n",
     "two m-lines share a=mid:0"),
    ("unknown bundle mid", lambda: sub1(r"^a=group:BUNDLE 0$", "a=group:BUNDLE 0 7", _chrome()),
     "names mid '7' that no m-line has"),
    ("bad group", lambda: sub1(r"^a=group:BUNDLE 0$", "a=group:", _chrome()), "malformed a=group"),
    ("mid at session", lambda: sub1(r"^t=0 0$", "t=0 0\r\na=mid:9", _chrome()),
     "a=mid is only allowed inside an m-line"),
    ("ice-lite in media", lambda: _chrome() + "a=ice-lite\r\n", "only allowed at session level"),
    ("bad ssrc", lambda: sub1(r"^a=ssrc:\d+ cname", "a=ssrc:99999999999 cname", _chrome()),
     "malformed a=ssrc"),
    ("ssrc too big", lambda: sub1(r"^a=ssrc:\d+ cname", "a=ssrc:4294967296 cname", _chrome()),
     "malformed a=ssrc"),
    ("bad ssrc-group", lambda: _chrome() + "a=ssrc-group:FID x\r\n", "malformed a=ssrc-group"),
    ("bad msid", lambda: sub1(r"^a=msid:.*$", "a=msid:", _chrome()), "malformed a=msid"),
    ("bad rtcp-fb", lambda: sub1(r"^a=rtcp-fb:111 .*$", "a=rtcp-fb:abc nack", _chrome()),
     "malformed a=rtcp-fb"),
    ("empty candidate", lambda: sub1(r"^a=candidate:.*$", "a=candidate", _chrome()),
     "empty a=candidate"),
    ("bad sctp-port", lambda: load("chrome_audio_data.sdp").replace(
        "a=sctp-port:5000", "a=sctp-port:five"), "malformed a=sctp-port"),
    ("attribute name not a token", lambda: _chrome() + "a=(x)\r\n", "malformed attribute"),
    ("too large", lambda: _chrome() + "a=x:" + "y" * 200_000 + "\r\n", "too large"),
]


@pytest.mark.parametrize(("name", "make", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_sdp(name: str, make: Callable[[], str], message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_offer(make())


def test_non_string_input() -> None:
    with pytest.raises(SdpError, match="must be text"):
        parse_offer(b"v=0\r\n")  # type: ignore[arg-type]


@given(st.text())
def test_parse_arbitrary_text_only_raises_sdp_error(text: str) -> None:
    try:
        parse_offer(text)
    except SdpError:
        pass
