"""Tests for sfu.srtp: keys from a real DTLS handshake, both profiles, replay rules,
and that nothing but SrtpError escapes on bad input."""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.certificate import Certificate
from sfu.dtls import DtlsEndpoint
from sfu.srtp import PROFILES, SrtpError, SrtpKeys, SrtpSession

GCM = "AEAD_AES_128_GCM"
CM = "AES_CM_128_HMAC_SHA1_80"
TAG = {GCM: 16, CM: 10}  # RTP auth tag lengths (RFC 7714 §7.2 / RFC 3711 §4.2)
RTP_HEADER = struct.Struct("!BBHII")


def rtp(seq: int, ssrc: int = 0x1234ABCD, payload: bytes | None = None) -> bytes:
    """A 92-byte Opus-sized RTP packet (12-byte header + 80-byte payload)."""
    body = payload if payload is not None else bytes([seq & 0xFF]) * 80
    return RTP_HEADER.pack(0x80, 111, seq & 0xFFFF, seq * 960, ssrc) + body


def rtcp_rr(ssrc: int = 0x1234ABCD) -> bytes:
    """An empty RTCP receiver report (RFC 3550 §6.4.2)."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def random_keys(profile: str) -> SrtpKeys:
    key_len, salt_len = PROFILES[profile]
    return SrtpKeys(profile, os.urandom(key_len), os.urandom(salt_len),
                    os.urandom(key_len), os.urandom(salt_len))


def dtls_keys(profile: str) -> tuple[SrtpKeys, SrtpKeys]:
    """Client and server keys from a real handshake, the profile forced by the server."""
    a, b = Certificate.generate(), Certificate.generate()
    client = DtlsEndpoint(a, "client", [("sha-256", b.fingerprint())])
    server = DtlsEndpoint(b, "server", [("sha-256", a.fingerprint())], srtp_profiles=(profile,))
    out = client.start(0.0)
    for _ in range(10):
        back = [d for o in out for d in server.receive(o, 0.0)]
        out = [d for o in back for d in client.receive(o, 0.0)]
    assert client.state == server.state == "connected"
    return client.srtp_keys(), server.srtp_keys()


@pytest.mark.parametrize("profile", [GCM, CM])
def test_dtls_keys_protect_and_unprotect_rtp_and_rtcp(profile):
    ck, sk = dtls_keys(profile)
    assert ck.profile == sk.profile == profile
    client, server = SrtpSession(ck), SrtpSession(sk)
    for seq in range(5):
        packet = rtp(seq)
        protected = client.protect(packet)
        assert len(protected) == len(packet) + TAG[profile]
        assert protected[:12] == packet[:12]  # header in the clear
        assert protected[12:92] != packet[12:]  # payload encrypted
        assert server.unprotect(protected) == packet
        # and the other way round
        assert client.unprotect(server.protect(rtp(seq, ssrc=7))) == rtp(seq, ssrc=7)
    report = rtcp_rr()
    srtcp = client.protect_rtcp(report)
    assert srtcp != report and len(srtcp) > len(report)
    assert server.unprotect_rtcp(srtcp) == report
    assert client.unprotect_rtcp(server.protect_rtcp(rtcp_rr(9))) == rtcp_rr(9)


@pytest.mark.parametrize("profile", [GCM, CM])
def test_key_and_salt_order_matches_plain_libsrtp(profile):
    """An independently configured pylibsrtp receiver (key || salt, RFC 3711 master key
    then master salt) decrypts what our session sends: the concatenation order is right."""
    keys = random_keys(profile)
    libsrtp_profile = {GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                       CM: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80}[profile]
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=keys.local_key + keys.local_salt,
                                            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                            srtp_profile=libsrtp_profile))
    assert rx.unprotect(SrtpSession(keys).protect(rtp(1))) == rtp(1)


@pytest.mark.parametrize("profile", [GCM, CM])
def test_wrong_key_and_tampering_raise_srtp_error(profile):
    keys = random_keys(profile)
    sender, receiver = SrtpSession(keys), SrtpSession(keys.mirrored())
    stranger = SrtpSession(random_keys(profile))
    protected = sender.protect(rtp(1))
    with pytest.raises(SrtpError):
        stranger.unprotect(protected)
    tampered = protected[:20] + bytes([protected[20] ^ 1]) + protected[21:]
    with pytest.raises(SrtpError):
        receiver.unprotect(tampered)
    with pytest.raises(SrtpError):
        receiver.unprotect(protected[:-1])  # truncated tag
    assert receiver.unprotect(protected) == rtp(1)  # the genuine one still passes
    srtcp = sender.protect_rtcp(rtcp_rr())
    with pytest.raises(SrtpError):
        stranger.unprotect_rtcp(srtcp)
    assert receiver.unprotect_rtcp(srtcp) == rtcp_rr()


@pytest.mark.parametrize("profile", [GCM, CM])
def test_replay_is_refused_but_reordering_in_the_window_is_accepted(profile):
    keys = random_keys(profile)
    sender, receiver = SrtpSession(keys), SrtpSession(keys.mirrored())
    sent = [sender.protect(rtp(seq)) for seq in range(300)]
    # jitter: neighbours swapped, seq 6 arrives 53 packets late, seq 30 never arrives
    order = [0, 2, 1, 4, 3, 5] + [s for s in range(7, 60) if s != 30] + [6] + list(range(60, 200))
    for seq in order:
        assert receiver.unprotect(sent[seq]) == rtp(seq)
    with pytest.raises(SrtpError):  # exact replay
        receiver.unprotect(sent[150])
    with pytest.raises(SrtpError):  # never seen, but older than the 128-packet window
        receiver.unprotect(sent[30])
    for seq in range(200, 300):
        receiver.unprotect(sent[seq])
    srtcp = sender.protect_rtcp(rtcp_rr())
    receiver.unprotect_rtcp(srtcp)
    with pytest.raises(SrtpError):
        receiver.unprotect_rtcp(srtcp)


def test_several_ssrcs_share_one_session():
    """SSRC_ANY templates: a new SSRC (a browser restarting its sender) needs no setup."""
    keys = random_keys(GCM)
    sender, receiver = SrtpSession(keys), SrtpSession(keys.mirrored())
    for ssrc in (1, 2, 0xFFFFFFFF):
        for seq in (10, 11):
            assert receiver.unprotect(sender.protect(rtp(seq, ssrc=ssrc))) == rtp(seq, ssrc=ssrc)


def test_protecting_the_same_packet_twice_is_allowed():
    """allow_repeat_tx on the outbound side: a resend of the same seq is not an error."""
    keys = random_keys(CM)
    sender = SrtpSession(keys)
    assert sender.protect(rtp(5)) == sender.protect(rtp(5))


def test_protect_rejects_bad_input_with_srtp_error():
    session = SrtpSession(random_keys(GCM))
    with pytest.raises(SrtpError):
        session.protect(b"\x80\x6f")  # shorter than an RTP header
    with pytest.raises(SrtpError):
        session.protect(rtp(1, payload=bytes(1490)))  # too long for libsrtp's buffer
    with pytest.raises(SrtpError):
        session.protect_rtcp(b"\x80")
    with pytest.raises(SrtpError):
        session.unprotect(bytearray(rtp(1)))  # type: ignore[arg-type]


def test_keying_material_split_follows_rfc5764():
    material = bytes(range(60))  # CM: 16 + 16 + 14 + 14
    client = SrtpKeys.from_keying_material(CM, material, "client")
    server = SrtpKeys.from_keying_material(CM, material, "server")
    assert client.local_key == material[0:16] and client.remote_key == material[16:32]
    assert client.local_salt == material[32:46] and client.remote_salt == material[46:60]
    assert server == client.mirrored()
    gcm = SrtpKeys.from_keying_material(GCM, bytes(range(56)), "server")  # 16+16+12+12
    assert gcm.local_key == bytes(range(16, 32)) and gcm.local_salt == bytes(range(44, 56))
    with pytest.raises(SrtpError):
        SrtpKeys.from_keying_material(CM, material[:-1], "client")
    with pytest.raises(SrtpError):
        SrtpKeys.from_keying_material("AES_CM_128_HMAC_SHA1_32", material, "client")
    with pytest.raises(SrtpError):
        SrtpKeys.from_keying_material(CM, material, "both")  # type: ignore[arg-type]


def test_srtp_keys_validate_lengths():
    with pytest.raises(SrtpError):
        SrtpKeys(GCM, bytes(16), bytes(14), bytes(16), bytes(12))  # CM salt length on GCM
    with pytest.raises(SrtpError):
        SrtpKeys(CM, bytes(15), bytes(14), bytes(16), bytes(14))
    with pytest.raises(SrtpError):
        SrtpKeys("NULL", b"", b"", b"", b"")
    keys = random_keys(CM)
    with pytest.raises(AttributeError):
        keys.profile = GCM  # type: ignore[misc]


# Built once: hypothesis runs these tests hundreds of times.
_shared = {profile: SrtpSession(random_keys(profile)) for profile in (GCM, CM)}


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=2000), profile=st.sampled_from([GCM, CM]),
       rtcp=st.booleans())
def test_unprotect_raises_only_srtp_error_on_arbitrary_bytes(data, profile, rtcp):
    session = _shared[profile]
    unprotect = session.unprotect_rtcp if rtcp else session.unprotect
    with pytest.raises(SrtpError):
        unprotect(data)  # random bytes can never authenticate


@settings(max_examples=200, deadline=None)
@given(header=st.binary(min_size=12, max_size=12), body=st.binary(max_size=200))
def test_unprotect_of_rtp_shaped_bytes_raises_only_srtp_error(header, body):
    """Version-2 headers (so libsrtp parses CSRCs and extensions) with random lengths."""
    packet = bytes([0x80 | (header[0] & 0x3F)]) + header[1:] + body
    for session in _shared.values():
        with pytest.raises(SrtpError):
            session.unprotect(packet)


def test_a_fast_path_callable_keeps_its_libsrtp_context_alive() -> None:
    """Holding only ``session.unprotect`` (as a hot path does) must not free the context."""
    import gc

    keys = SrtpKeys(
        "AEAD_AES_128_GCM", bytes(16), bytes(12), bytes(range(16)), bytes(range(12))
    )
    sender = SrtpSession(keys.mirrored())
    receiver = SrtpSession(keys)
    unprotect = receiver.unprotect
    del receiver
    gc.collect()
    packet = bytes([0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9]) + b"audio"
    assert unprotect(sender.protect(packet)) == packet
