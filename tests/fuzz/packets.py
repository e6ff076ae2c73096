"""Fuzz targets for the datagram parsers: STUN/ICE, DTLS records, RTP, RTCP.

Each target feeds its input the way ``sfu/core.py`` would and states what a rejection may
look like (the module's documented error) and what must hold whatever the input. See
``tests/fuzz/harness.py`` for the rules and ``tests/fuzz/seeds.py`` for the seed inputs.
"""

from __future__ import annotations

import random
from pathlib import Path

from aioice import stun as aioice_stun
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sfu.certificate import Certificate
from sfu.demux import Kind, classify
from sfu.dtls import MTU, DtlsEndpoint
from sfu.ice import IceLiteSession, StunError, binding_username
from sfu.reports import RtcpReports
from sfu.rtcp import (
    Bye,
    ReceiverReport,
    RtcpError,
    SenderReport,
    SourceDescription,
    build_bye,
    build_receiver_report,
    build_sdes_cname,
    build_sender_report,
    parse_rtcp,
)
from sfu.red import MAX_REDUNDANT, RedError, build_red, red_layout, retag_red, split_red
from sfu.rtp import RtpError, build_rtp, parse_rtp, read_uplink

from tests.sfu.test_ice import raw_signed

from .harness import InvariantBroken, check, frames

__all__ = ["ICE", "IDENTITIES", "REPORTS_SSRC", "UPLINK_SSRC", "dtls", "rtcp", "rtp", "sign_check",
           "stun"]


def _identity(name: str) -> Certificate:
    """A fixed test-only identity (key + certificate), so seed DTLS flights stay valid."""
    pem = (Path(__file__).resolve().parent / "identities" / f"{name}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    return Certificate(key, x509.load_pem_x509_certificate(pem))  # type: ignore[arg-type]


IDENTITIES = {"server": _identity("server"), "client": _identity("client")}

# ---------------------------------------------------------------------------- STUN / ICE

#: Our session's credentials (local = the SFU's, remote = the browser's).
ICE = {"local_ufrag": "Wlk0FUZZ", "local_pwd": "fuzzfuzzfuzzfuzzfuzz+/01",
       "remote_ufrag": "brws", "remote_pwd": "browserbrowserbrowser+/"}
_ADDRESSES = (("127.0.0.1", 50000), ("127.0.0.1", 50001), ("10.0.0.7", 1), ("::1", 65535))


def sign_check(transaction_id: bytes, attributes: bytes, pwd: str) -> bytes:
    """A Binding request with these raw attributes, MESSAGE-INTEGRITY and FINGERPRINT.

    The fuzzer cannot forge an HMAC; signing its attribute bytes lets it reach everything an
    authentic browser could make the responder do. Attributes are zero-padded to 4 bytes.
    """
    body = attributes + bytes(-len(attributes) & 3)
    return raw_signed(body, pwd, transaction_id.ljust(12, b"\0")[:12])


def stun(data: bytes) -> None:
    """Byte 0: bit 0 sign the rest as attributes (after a 12-byte transaction id), bits 1-2
    the source address, bit 3 a second check of the same bytes from another address.

    Expected: ``StunError``. Must hold: ``binding_username`` never raises; an answer is a
    signed Binding response to the same transaction, mapping the source address; a check
    that moved the session left it on that source.
    """
    if not data:
        return
    mode, rest = data[0], data[1:]
    datagram = sign_check(rest[:12], rest[12:], ICE["local_pwd"]) if mode & 1 else rest
    if classify(datagram) is not Kind.STUN:
        return  # the core never hands it to ICE
    name = binding_username(datagram)
    check(name is None or isinstance(name, str), "binding_username returned a non-string")
    session = IceLiteSession(ICE["remote_ufrag"], ICE["remote_pwd"],
                             local_ufrag=ICE["local_ufrag"], local_pwd=ICE["local_pwd"])
    sources = [_ADDRESSES[(mode >> 1) & 3]]
    if mode & 8:
        sources.append(_ADDRESSES[((mode >> 1) + 1) & 3])
    for now, source in enumerate(sources, start=1):
        try:
            result = session.handle(datagram, source, float(now))
        except StunError:
            continue
        check(name == f"{ICE['local_ufrag']}:{ICE['remote_ufrag']}",
              "a check was accepted whose USERNAME the router would not have routed here")
        answer = aioice_stun.parse_message(result.response)
        check(answer.transaction_id == datagram[8:20], "answer to another transaction")
        check(answer.check_message_integrity(ICE["local_pwd"].encode()), "answer not signed")
        if answer.message_class == aioice_stun.Class.RESPONSE:
            check(answer.attributes["XOR-MAPPED-ADDRESS"] == source, "wrong mapped address")
        else:
            check(answer.message_class == aioice_stun.Class.ERROR and not result.address_changed,
                  "an error answer must not move the peer")
        if result.address_changed:
            check(session.address == source, "moved, but not to the checked address")

# ---------------------------------------------------------------------------- DTLS

_DTLS_STATES = {"new", "handshaking", "connected", "closed", "failed"}


def dtls(data: bytes) -> None:
    """Byte 0 bit 0: our role (0 server, as for an ``actpass`` offer; 1 client). The rest:
    frames (``harness.frames``), each one datagram, 100 ms apart; then the timers run.

    Expected: nothing; ``DtlsEndpoint`` never raises for network input. Must hold: every
    datagram we send is non-empty and at most ``MTU`` bytes, the state is one of the five,
    a failed endpoint says why, a connected one has SRTP keys.
    """
    if not data:
        return
    role = "client" if data[0] & 1 else "server"
    ours, theirs = (IDENTITIES["server"], IDENTITIES["client"])
    endpoint = DtlsEndpoint(ours, role, [("sha-256", theirs.fingerprint("sha-256"))],
                            handshake_timeout=10.0)
    now = 0.0
    sent = endpoint.start(now)
    for _, datagram in frames(data[1:]):
        now += 0.1
        if classify(datagram) is Kind.DTLS:
            sent += endpoint.receive(datagram, now)
        deadline = endpoint.next_timeout()
        if deadline is not None and deadline <= now:
            sent += endpoint.handle_timeout(now)
    for later in (now + 1.5, now + 11.0):
        sent += endpoint.handle_timeout(later)
    check(all(isinstance(d, bytes) and 0 < len(d) <= MTU for d in sent),
          "an empty or oversized datagram to send")
    check(endpoint.state in _DTLS_STATES, f"unknown state {endpoint.state!r}")
    check(endpoint.state != "failed" or bool(endpoint.failure), "failed without a reason")
    if endpoint.state == "connected":
        endpoint.srtp_keys()
    endpoint.close()

# ---------------------------------------------------------------------------- RTP


def rtp(data: bytes) -> None:
    """Byte 0: the negotiated audio-level extension id (0 = none); the rest, one decrypted
    uplink packet.

    Expected: ``RtpError``. Must hold: ``read_uplink`` (the hot path) rejects exactly what
    ``parse_rtp`` rejects and reads the same SSRC, sequence, timestamp, audio level and
    payload; ``parse_rtp(build_rtp(p)) == p`` for every packet ``p`` parsed.
    """
    if not data:
        return
    level_id, packet = data[0], data[1:]
    try:
        parsed = parse_rtp(packet)
    except RtpError:
        try:
            read_uplink(packet, level_id)
        except RtpError:
            return
        raise InvariantBroken("read_uplink accepted a packet parse_rtp rejects") from None
    ssrc, seq, ts, level, start, end = read_uplink(packet, level_id)
    check((ssrc, seq, ts) == (parsed.ssrc, parsed.sequence, parsed.timestamp),
          "read_uplink and parse_rtp read different header fields")
    check(packet[start:end] == parsed.payload, "read_uplink and parse_rtp disagree on payload")
    element = parsed.extensions.get(level_id) if level_id else None
    check(level == (element[0] if element else -1), "read_uplink read another audio level")
    try:
        rebuilt = build_rtp(parsed)
    except RtpError:
        return  # e.g. an element with an id the one- or two-byte form cannot carry
    check(parse_rtp(rebuilt) == parsed, "parse_rtp(build_rtp(p)) != p")

# ---------------------------------------------------------------------------- RED


def red(data: bytes) -> None:
    """Byte 0: the talker's Opus payload type (low 7 bits); the rest, one RED payload
    (RFC 2198) as the core reads it from a talker that negotiated RED.

    Expected: ``RedError``. Must hold: the layout lies inside the payload with a non-empty
    primary block; ``split_red`` then ``build_red`` gives the same bytes back; re-tagging to
    another payload type and back gives the same bytes back.
    """
    if not data:
        return
    pt, payload = data[0] & 0x7F, data[1:]
    try:
        redundant, start = red_layout(payload, pt)
    except RedError:
        return
    check(0 <= redundant <= MAX_REDUNDANT, "more redundant blocks than allowed")
    check(4 * redundant + 1 <= start < len(payload), "the primary block lies outside")
    blocks = split_red(payload, pt)
    check(len(blocks) == redundant + 1 and blocks[-1] == (0, payload[start:]),
          "split_red disagrees with red_layout")
    check(build_red(pt, blocks[-1][1], blocks[:-1]) == payload, "build_red(split_red(p)) != p")
    other = (pt + 1) & 0x7F
    check(retag_red(retag_red(payload, redundant, other), redundant, pt) == payload,
          "re-tagging there and back changed the payload")

# ---------------------------------------------------------------------------- RTCP

#: The SSRC of our downlink (what the browser's reports are about) and of its uplink.
REPORTS_SSRC = 0x5EED5EED
UPLINK_SSRC = 0x0A0B0C0D


def _rebuilt(packet: object) -> bytes | None:
    """``packet`` written back by our builders, if they can write its kind."""
    if isinstance(packet, SenderReport):
        return build_sender_report(packet)
    if isinstance(packet, ReceiverReport):
        return build_receiver_report(packet)
    if isinstance(packet, Bye):
        return build_bye(packet.ssrcs, packet.reason)
    if isinstance(packet, SourceDescription) and len(packet.chunks) == 1:
        ssrc, items = packet.chunks[0]
        if len(items) == 1 and items[0][0] == 1:  # one CNAME: what build_sdes_cname writes
            return build_sdes_cname(ssrc, items[0][1].decode("utf-8", "replace"))
    return None


def rtcp(data: bytes) -> None:
    """One decrypted (compound or reduced-size) RTCP datagram.

    Expected: ``RtcpError``. Must hold: ``RtcpReports.receive`` (what a peer does with it)
    fails exactly when ``parse_rtcp`` does; every SR, RR, BYE and single-CNAME SDES parsed
    survives ``parse_rtcp(build(p)) == [p]`` (a BYE reason or CNAME that cannot be written
    back may raise ``RtcpError``, which is a builder's refusal, not a parse).
    """
    reports = RtcpReports(REPORTS_SSRC, "fuzz", random.Random(0))
    reports.track_uplink(UPLINK_SSRC, 1, 960, 0.0)
    try:
        packets = parse_rtcp(data)
    except RtcpError:
        try:
            reports.receive(data, 1.0, 1.7e9)
        except RtcpError:
            return
        raise InvariantBroken("RtcpReports.receive accepted what parse_rtcp rejects") from None
    reports.receive(data, 1.0, 1.7e9)
    reports.downlink_stats()
    reports.uplink_stats()
    for packet in packets:
        try:
            rebuilt = _rebuilt(packet)
        except RtcpError:
            check(isinstance(packet, (Bye, SourceDescription)), f"cannot rebuild {packet!r}")
            continue
        if rebuilt is not None:
            again = parse_rtcp(rebuilt)
            if isinstance(packet, SourceDescription):
                check(len(again) == 1 and again[0].chunks[0][0] == packet.chunks[0][0],
                      "SDES CNAME did not round-trip")
            elif isinstance(packet, Bye):
                check(again == [Bye(packet.ssrcs, again[0].reason)], "BYE did not round-trip")
            else:
                check(again == [packet], f"{type(packet).__name__} did not round-trip")
