"""Write the seed inputs of every fuzz target: ``python -m tests.fuzz.seeds``.

Seeds are real traffic, made by the same parts the tests use: the browsers' SDP offers
captured from Chromium and Firefox (tests/sfu/fixtures), STUN checks as Chromium sends
them, a whole DTLS handshake between two ``DtlsEndpoint``s with the fixed identities in
tests/fuzz/identities, RTP and RTCP as browsers and our core send them, signaling
messages as the page sends them. Files are named by their SHA-1, as libFuzzer names what it
adds, so running this again adds nothing, except new DTLS flights (a handshake is random
each time); a campaign with ``--merge`` then keeps the smallest set of files that reaches
the same coverage (docs/SECURITY.md, "Fuzzing").
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import sys

from sfu.dtls import DtlsEndpoint
from sfu.red import build_red
from sfu.reports import RtcpReports
from sfu.rtcp import ReceiverReport, ReportBlock, build_bye, build_receiver_report
from sfu.rtp import RtpPacket, build_rtp
from tests.sfu.peerclient import opus_rtp
from tests.sfu.sdp_helpers import ALL_FIXTURES, load
from tests.sfu.test_ice import tlv

from .harness import TARGETS, frame
from .packets import ICE, IDENTITIES, REPORTS_SSRC, UPLINK_SSRC, sign_check

_TXID = bytes(range(12))


def _check_attributes(*extra: bytes, username: bool = True) -> bytes:
    """What Chromium puts in a check: (USERNAME,) GOOG-NETWORK-INFO, ICE-CONTROLLING,
    USE-CANDIDATE, PRIORITY."""
    name = f"{ICE['local_ufrag']}:{ICE['remote_ufrag']}".encode()
    return (
        (tlv(0x0006, name) if username else b"")
        + tlv(0xC057, b"\x00\x01\x00\x0a")
        + tlv(0x802A, b"\x12\x34\x56\x78\x9a\xbc\xde\xf0")
        + b"".join(extra)
        + tlv(0x0024, struct.pack("!I", 2122260223))
    )


def stun_seeds() -> list[bytes]:
    nominate = tlv(0x0025, b"")
    controlled = tlv(0x8029, bytes(8))
    unknown = tlv(0x0031, b"\x00\x00\x00\x01")
    signed = [_check_attributes(), _check_attributes(nominate),
              _check_attributes(controlled), _check_attributes(unknown)]
    raw = sign_check(_TXID, _check_attributes(nominate), ICE["local_pwd"])
    return [b"\x00" + raw, b"\x08" + raw] + [bytes([mode]) + _TXID + attrs
                                            for mode in (1, 11) for attrs in signed]


def _handshake() -> tuple[list[list[bytes]], list[list[bytes]]]:
    """The flights of a whole handshake: (client's flights, server's flights)."""
    ours, theirs = IDENTITIES["server"], IDENTITIES["client"]
    client = DtlsEndpoint(theirs, "client", [("sha-256", ours.fingerprint("sha-256"))])
    server = DtlsEndpoint(ours, "server", [("sha-256", theirs.fingerprint("sha-256"))])
    client_flights, server_flights = [client.start(0.0)], []
    while client_flights[-1] and len(server_flights) < 4:
        server_flights.append([d for x in client_flights[-1] for d in server.receive(x, 0.1)])
        client_flights.append([d for x in server_flights[-1] for d in client.receive(x, 0.2)])
    assert client.state == server.state == "connected", (client.state, server.state)
    return client_flights, server_flights


def dtls_seeds() -> list[bytes]:
    client_flights, server_flights = _handshake()
    out = []
    for role, flights in ((0, client_flights), (1, server_flights)):
        datagrams = [d for flight in flights for d in flight]
        out.append(bytes([role]) + b"".join(frame(0, d) for d in datagrams))
        out.append(bytes([role]) + frame(0, datagrams[0]))
    return out


def rtp_seeds() -> list[bytes]:
    chromium = opus_rtp(0x1234ABCD, 7, 960, b"\xfc" + bytes(40), 0x25)
    two_byte = build_rtp(RtpPacket(111, 8, 1920, 0x1234ABCD, True, [0xCAFE],
                                   {1: b"\x25", 20: b"x" * 20}, b"\xfc" * 20, padding=4))
    plain = build_rtp(RtpPacket(109, 1, 0, 0x42, payload=b"\x78" * 60))
    return [b"\x01" + chromium, b"\x01" + two_byte, b"\x00" + plain, b"\x0e" + chromium]


def red_seeds() -> list[bytes]:
    """RED as Chromium sends it (one redundant block: the previous frame), with more blocks,
    primary only, another Opus payload type, and the malformed shapes the core drops."""
    previous, current = b"\xfc" + bytes(60), b"\xfc" + bytes(range(64))
    return [
        bytes([111]) + build_red(111, current, [(960, previous)]),
        bytes([111]) + build_red(111, current),
        bytes([109]) + build_red(109, current, [(1920, previous), (960, previous)]),
        bytes([111]) + bytes([0x80 | 111, 15, 0, 200, 111]) + b"short",
        bytes([111]) + bytes([0x80 | 111, 15, 0, 1] * 5 + [111]) + b"x" * 9,
        bytes([111]) + bytes([0x80 | 0, 15, 0, 1, 111]) + b"xy",
    ]


def rtcp_seeds() -> list[bytes]:
    ours = RtcpReports(0x77777777, "walkie-fuzz", random.Random(0))
    ours.track_uplink(REPORTS_SSRC, 1, 960, 0.0)
    sr_sdes = ours.build(1.0, 1.7e9, (10, 800), 48000)
    rr_sdes = ours.build(2.0, 1.7e9 + 1, (0, 0), None)
    block = ReportBlock(REPORTS_SSRC, 3, 5, 70000, 120, 0x12345678, 65536)
    browser_rr = build_receiver_report(ReceiverReport(UPLINK_SSRC, [block]))
    nack = struct.pack("!BBHII", 0x81, 205, 3, UPLINK_SSRC, REPORTS_SSRC) + b"\x00\x05\x00\x00"
    bye = build_bye([UPLINK_SSRC], "tab closed")
    assert sr_sdes is not None and rr_sdes is not None
    return [sr_sdes, rr_sdes, browser_rr, browser_rr + nack, bye, nack]


def sdp_seeds() -> list[bytes]:
    return [load(name).encode() for name in ALL_FIXTURES]


def signaling_seeds() -> list[bytes]:
    messages = [
        {"type": "join", "room": "blue-fox-42", "name": "Ann"},
        {"type": "join", "room": "r", "name": "Zoë ", "password": "secret"},
        {"type": "offer", "sdp": load("chrome_audio.sdp")},
        {"type": "floor_request"}, {"type": "floor_release"}, {"type": "ping"},
        {"type": "nope", "x": [1, 2.5, None, True]},
    ]
    text = [b"\x00" + json.dumps(m, ensure_ascii=False).encode() for m in messages]
    return text + [b"\x01" + json.dumps(messages[0]).encode()]


def core_seeds() -> list[bytes]:
    """Sequences for a room where *a* speaks and *b* listens (tests/fuzz/mediacore.py)."""
    audio, audio2, audio3 = (bytes(6) + bytes([0xFC, n]) * 20 for n in (7, 8, 9))
    check = _TXID + _check_attributes(username=False)
    nominate = _TXID + _check_attributes(tlv(0x0025, b""), username=False)
    browser_rr = rtcp_seeds()[2]
    client_flights, _ = _handshake()
    hello = client_flights[0][0]
    return [
        frame(6, audio) + frame(6, audio2) + frame(6, audio3) + frame(4, b"\x32")
        + frame(6 | 8, audio),
        frame(3, check) + frame(3 | 0x10, nominate) + frame(6, audio),
        frame(3 | 8 | 0x20, nominate) + frame(6, audio) + frame(4, b"\x64"),
        frame(2, browser_rr) + frame(2 | 8, browser_rr + rtcp_seeds()[3][len(browser_rr):]),
        frame(5 | 8, b"") + frame(6 | 8, audio) + frame(5 | 0x10, b"") + frame(6, audio),
        frame(0, hello) + frame(0, b"\x15\xfe\xfd" + bytes(10)) + frame(6, audio),
        frame(1, build_rtp(RtpPacket(111, 9, 0, 1, payload=b"x" * 1300))) + frame(4, b"\xff"),
        frame(0 | 0x18, b"\x00\x01" + bytes(18)) + frame(0, b"\x80\xc9" + bytes(6)),
        frame(2, build_bye([1], "bye")) + frame(4, b"\x96") * 3,
        # a's RED (RFC 2198; a and b negotiated it, c did not), good then malformed
        frame(1, build_rtp(RtpPacket(63, 10, 1920, 1, payload=red_seeds()[0][1:])))
        + frame(1, build_rtp(RtpPacket(63, 11, 2880, 1, payload=red_seeds()[3][1:])))
        + frame(1, build_rtp(RtpPacket(111, 12, 3840, 1, payload=b"\xfc" * 30))),
    ]


SEEDS = {"stun": stun_seeds, "dtls": dtls_seeds, "rtp": rtp_seeds, "red": red_seeds,
         "rtcp": rtcp_seeds,
         "sdp": sdp_seeds, "signaling": signaling_seeds, "core": core_seeds}


def main(names: list[str]) -> None:
    for name in names or list(SEEDS):
        directory = TARGETS[name].corpus
        directory.mkdir(parents=True, exist_ok=True)
        made = SEEDS[name]()
        for data in made:
            (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{name}: {len(made)} seeds in {directory}")


if __name__ == "__main__":
    main(sys.argv[1:])
