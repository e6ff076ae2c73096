"""Shared helpers for the SDP tests (tests/sfu/test_sdp_*.py): fixtures, our side, text edits.

Fixtures in tests/sfu/fixtures/ were captured from Debian's Chromium and Firefox ESR by
tests/sfu/capture_offers.py (safari_audio.sdp is hand-written and says so in its '#' header).
"""
from __future__ import annotations

import datetime
import pathlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sfu.sdp import (
    AudioSelection,
    Fingerprint,
    LocalParams,
    Offer,
    build_answer,
    parse_offer,
    select_audio,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.sdp"))
CHROME = "chrome_audio.sdp"


def load(name: str) -> str:
    """A fixture's SDP. Leading '#' lines (the hand-written fixtures' header) are dropped:
    SDP has no comment syntax."""
    text = (FIXTURES / name).read_bytes().decode()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def make_local(**changes: object) -> LocalParams:
    params: dict[str, object] = dict(
        ice_ufrag="wlk1",
        ice_pwd="abcdefghijklmnopqrstuv+/",
        fingerprint=Fingerprint("sha-256", bytes(range(32))),
        setup="passive",
        candidate_ip="127.0.0.1",
        candidate_port=40000,
        ssrc=0x1234ABCD,
        cname="walkie-cname",
        msid_stream="walkie-room",
        msid_track="walkie-track",
    )
    params.update(changes)
    return LocalParams(**params)  # type: ignore[arg-type]


def answer_for(text: str, **local_changes: object) -> tuple[Offer, AudioSelection, str]:
    offer = parse_offer(text)
    sel = select_audio(offer)
    local = make_local(**local_changes)
    return offer, sel, build_answer(offer, sel, local, session_id=42)


def sub1(pattern: str, repl: str, text: str) -> str:
    """re.sub that must change exactly one place, so a test cannot pass by editing nothing.

    Patterns are written per line: '$' matches before the CRLF and '.' never eats the CR.
    """
    pattern = pattern.replace(".*", r"[^\r\n]*").replace("$", r"(?=\r?$)")
    out, n = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    assert n == 1, f"pattern {pattern!r} not found"
    return out


# fixture -> (opus pt, audio-level id, mid ext id, m-line kinds, served index, BUNDLE groups)
EXPECTED = {
    "chrome_audio.sdp": (111, 1, 4, ["audio"], 0, [("0",)]),
    "chrome_audio_video.sdp": (111, 1, 4, ["audio", "video"], 0, [("0", "1")]),
    "chrome_audio_data.sdp": (111, 1, 4, ["audio", "application"], 0, [("0", "1")]),
    "chrome_video_audio.sdp": (111, 14, 9, ["video", "audio"], 1, [("0", "1")]),
    "firefox_audio.sdp": (109, 1, 3, ["audio"], 0, [("0",)]),
    "firefox_audio_video.sdp": (109, 1, 3, ["audio", "video"], 0, [("0", "1")]),
    "firefox_audio_data.sdp": (109, 1, 3, ["audio", "application"], 0, [("0", "1")]),
    "firefox_video_audio_maxbundle.sdp": (109, 1, 3, ["video", "audio"], 1, [("0", "1")]),
    "safari_audio.sdp": (111, 1, 4, ["audio"], 0, [("0",)]),
}


def certificate_der() -> bytes:
    """A fresh self-signed certificate, made with cryptography alone (not sfu's code)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "walkie-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)
