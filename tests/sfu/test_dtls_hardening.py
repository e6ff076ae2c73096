"""Issue 9, finding 7: DTLS survives malformed records and negotiates only what we allow.

* Malformed records in the clear (each one that used to fail the handshake: a bad
  ChangeCipherSpec, a short or unknown alert, a handshake fragment longer than its message,
  application data before the keys exist, ...) are dropped before OpenSSL, mid-handshake
  and after it, in either role, and the genuine handshake completes
  (sfu/dtlsscreen.py); through the media core, from the peer's validated address, the peer
  connects and its audio flows.
* Cipher suites: ECDHE-ECDSA with AES-GCM only; a peer that offers only CBC-SHA1 suites
  is refused, in either role. SRTP profiles: AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80
  only; a peer offering only the 32-bit-tag profile is refused.
"""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from sfu.certificate import DEFAULT_SRTP_PROFILES, DTLS_CIPHERS, Certificate
from sfu.dtls import DtlsEndpoint

from .test_dtls import handshake, make_pair, pump


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate("client"), Certificate.generate("server")


def record(content_type: int, body: bytes, epoch: int = 0, seq: int = 7) -> bytes:
    return (bytes([content_type, 0xFE, 0xFD]) + epoch.to_bytes(2, "big")
            + seq.to_bytes(6, "big") + len(body).to_bytes(2, "big") + body)


def fragment(msg_type: int, body: bytes, message_seq: int, length: int | None = None,
             offset: int = 0) -> bytes:
    length = len(body) if length is None else length
    return (bytes([msg_type]) + length.to_bytes(3, "big") + message_seq.to_bytes(2, "big")
            + offset.to_bytes(3, "big") + len(body).to_bytes(3, "big") + body)


#: Record-shaped garbage, each of which failed a handshake before it was screened (the
#: reason OpenSSL gave then is in the id).
MALFORMED = {
    "bad change cipher spec": record(20, b"\x07\x07"),
    "invalid alert (length)": record(21, b"\x02"),
    "unknown alert type": record(21, b"\x02\xee"),
    "invalid alert level": record(21, b"\x07\x28"),
    "bad length (fragment past its message)": record(22, fragment(11, b"\x00" * 40, 1, length=20)),
    "handshake record shorter than a fragment header": record(22, b"\x0b\x00\x00"),
    "fragment longer than its record": record(22, fragment(16, b"\x00" * 40, 1)[:30]),
    "unexpected message (a type the peer never sends)": record(22, fragment(20, b"\x00" * 12, 1)),
    "application data in the clear": record(23, b"hello"),
    "heartbeat": record(24, b"\x01\x00\x10" + b"\x00" * 16),
    "tls12_cid": record(25, b"\x00" * 32),
    "epoch 2": record(22, b"\x00" * 40, epoch=2),
}


def _both_roles_mid_handshake(certs: tuple[Certificate, Certificate], junk: bytes
                              ) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    """Handshake with ``junk`` fed to each side at every step: before anything, after the
    client's first flight, and after the server's answer."""
    client, server = make_pair(*certs)
    server.start(0.0)
    assert server.receive(junk, 0.0) == []  # before the ClientHello
    hello = client.start(0.0)
    flight = [d for h in hello for d in server.receive(h, 0.0)]
    assert server.receive(junk, 0.0) == []  # mid-handshake, waiting for the client's flight
    assert client.receive(junk, 0.0) == []  # mid-handshake, waiting for the server's flight
    answer = [d for f in flight for d in client.receive(f, 0.0)]
    assert client.receive(junk, 0.0) == []  # waiting for the server's Finished
    pump(client, server, [], 0.0)  # nothing left over
    for datagram in answer:
        for reply in server.receive(datagram, 0.0):
            client.receive(reply, 0.0)
    return client, server


@pytest.mark.parametrize("junk", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_record_mid_handshake_is_ignored_and_the_handshake_completes(certs, junk):
    client, server = _both_roles_mid_handshake(certs, junk)
    assert (client.state, server.state) == ("connected", "connected"), server.failure
    ck, sk = client.srtp_keys(), server.srtp_keys()
    assert (ck.local_key, ck.remote_key) == (sk.remote_key, sk.local_key)
    assert server.dropped == 2 and client.dropped == 2


@pytest.mark.parametrize("junk", [
    *MALFORMED.values(),
    record(21, b"\x02\x28"),  # a well-formed fatal alert, in the clear
    record(22, fragment(1, b"\xfe\xfd" + b"\x00" * 60, 5)),  # a ClientHello: renegotiation
    record(23, b"\x00" * 48, epoch=1),  # forged application data (fails authentication)
    record(21, b"\x00" * 26, epoch=1),  # a forged encrypted alert
], ids=[*MALFORMED, "fatal alert epoch 0", "renegotiation hello", "forged app data",
        "forged encrypted alert"])
def test_garbage_after_the_handshake_changes_nothing(certs, junk):
    client, server = make_pair(*certs)
    handshake(client, server)
    keys = (client.srtp_keys(), server.srtp_keys())
    for endpoint in (client, server):
        for _ in range(3):
            endpoint.receive(junk, 1.0)
        assert endpoint.state == "connected"
    assert (client.srtp_keys(), server.srtp_keys()) == keys


def test_through_the_core_garbage_from_the_validated_address_is_survived() -> None:
    """The media core, the browser's DTLS flights, garbage from the browser's own (checked)
    address before, between and after them: the peer connects and audio flows."""
    from .memnet import Net
    from .test_core import browser, make_core

    net = Net(make_core())
    a = net.join(browser("a", 1))
    b = net.connect(browser("b", 2))
    net.core.set_speaker("r", "a", net.now)
    net.send(a, a.binding_request())  # a's address is validated from here on
    junk = list(MALFORMED.values())
    for g in junk:
        net.send(a, g)
    a.start_dtls(net.now)
    for _ in range(4):  # each round trip of the handshake, with garbage after every step
        net.pump(rounds=1)
        for g in junk:
            net.send(a, g)
    net.pump()
    assert a.srtp is not None
    for g in junk:
        net.send(a, g)
    payload = a.audio()
    net.pump()
    assert [p.payload for p in b.take_received()] == [payload]
    assert [e.kind for e in net.events if e.kind in ("connected", "dtls_failed", "closed",
                                                     "consent_lost")] == ["connected", "connected"]
    stats = net.core.peer_stats("a")
    assert stats is not None and stats["dtls"] == "connected"
    assert stats["dtls_cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256"


# -- what we negotiate -------------------------------------------------------------------


def _raw_peer(cert: Certificate, ciphers: bytes, profiles: bytes, client: bool) -> SSL.Connection:
    """A plain pyOpenSSL DTLS peer with the cipher suites and SRTP profiles we choose."""
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert.cert)
    ctx.use_privatekey(cert.key)
    ctx.set_cipher_list(ciphers)
    ctx.set_tlsext_use_srtp(profiles)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state() if client else conn.set_accept_state()
    return conn


def _run(ours: DtlsEndpoint, raw: SSL.Connection, raw_is_client: bool) -> None:
    """Carry datagrams between our endpoint and the raw peer until both are quiet."""

    def flush() -> list[bytes]:
        out = []
        try:
            while True:
                out.append(raw.bio_read(65536))
        except SSL.WantReadError:
            return out

    def step() -> None:
        try:
            raw.do_handshake()
        except SSL.WantReadError:
            pass

    pending = ours.start(0.0)
    if raw_is_client:
        step()
    for _ in range(20):
        for datagram in pending:
            raw.bio_write(datagram)
        if pending:
            try:
                step()
            except SSL.Error:
                pass
        sent = flush()
        pending = [r for d in sent for r in ours.receive(d, 0.0)]
        if not sent and not pending:
            return


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
                                   "ECDHE-ECDSA-AES128-SHA256"])
@pytest.mark.parametrize("our_role", ["server", "client"])
def test_a_peer_offering_only_cbc_suites_is_refused(certs, suite, our_role):
    peer_cert, our_cert = certs
    ours = DtlsEndpoint(our_cert, our_role, [("sha-256", peer_cert.fingerprint())])
    raw = _raw_peer(peer_cert, suite.encode(), b"SRTP_AEAD_AES_128_GCM", our_role == "server")
    _run(ours, raw, our_role == "server")
    assert ours.state == "failed"
    assert "cipher" in (ours.failure or "") or "handshake failure" in (ours.failure or "")


@pytest.mark.parametrize("our_role", ["server", "client"])
def test_gcm_suites_are_negotiated_with_a_peer_that_also_offers_cbc(certs, our_role):
    peer_cert, our_cert = certs
    ours = DtlsEndpoint(our_cert, our_role, [("sha-256", peer_cert.fingerprint())])
    offered = b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"
    raw = _raw_peer(peer_cert, offered, b"SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
                    our_role == "server")
    _run(ours, raw, our_role == "server")
    assert ours.state == "connected", ours.failure
    assert ours.cipher in DTLS_CIPHERS


def test_only_gcm_aes_suites_and_two_srtp_profiles_are_configured(certs):
    assert DTLS_CIPHERS == ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert DEFAULT_SRTP_PROFILES == ("AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80")
    conn = SSL.Connection(certs[1].context(), None)
    dtls12 = [c for c in conn.get_cipher_list() if not c.startswith("TLS_")]  # not TLS 1.3's
    assert dtls12 == list(DTLS_CIPHERS)


def test_a_peer_offering_only_the_32_bit_tag_profile_is_refused(certs):
    peer_cert, our_cert = certs
    ours = DtlsEndpoint(our_cert, "server", [("sha-256", peer_cert.fingerprint())])
    raw = _raw_peer(peer_cert, b"ECDHE-ECDSA-AES128-GCM-SHA256", b"SRTP_AES128_CM_SHA1_32", True)
    _run(ours, raw, True)
    assert ours.state == "failed" and "SRTP" in (ours.failure or "")
