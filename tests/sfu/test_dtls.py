"""Tests for sfu.dtls: two in-memory DtlsEndpoints talking through a lossy "wire".

OpenSSL's retransmission timer runs on the real clock (pyOpenSSL cannot replace it), so
the tests that need a retransmission sleep for real (about 1 s each, the DTLS initial
timeout); everything else uses a fake clock.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from sfu.certificate import Certificate
from sfu.dtls import (
    MTU,
    DtlsEndpoint,
    DtlsError,
    SrtpKeys,
    _pack_records,
)

GCM = "AEAD_AES_128_GCM"
CM = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate, Certificate]:
    return Certificate.generate("client"), Certificate.generate("server"), Certificate.generate()


def make_pair(
    client_cert: Certificate,
    server_cert: Certificate,
    *,
    client_expects: Certificate | None = None,
    server_expects: Certificate | None = None,
    client_profiles: tuple[str, ...] | None = None,
    server_profiles: tuple[str, ...] | None = None,
    handshake_timeout: float = 10.0,
) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    """A client and a server that expect each other's certificate (unless told otherwise)."""
    ckw = {} if client_profiles is None else {"srtp_profiles": client_profiles}
    skw = {} if server_profiles is None else {"srtp_profiles": server_profiles}
    client = DtlsEndpoint(
        client_cert,
        "client",
        [("sha-256", (client_expects or server_cert).fingerprint())],
        handshake_timeout=handshake_timeout,
        **ckw,
    )
    server = DtlsEndpoint(
        server_cert,
        "server",
        [("sha-256", (server_expects or client_cert).fingerprint())],
        handshake_timeout=handshake_timeout,
        **skw,
    )
    return client, server


Filter = Callable[[str, bytes], bool]


def pump(
    client: DtlsEndpoint,
    server: DtlsEndpoint,
    first: list[bytes],
    now: float = 0.0,
    deliver: Filter = lambda sender, datagram: True,
    sent: list[tuple[str, bytes]] | None = None,
) -> None:
    """Carry datagrams back and forth until both sides go quiet.

    ``first`` is what the client sent to start; ``deliver(sender, datagram)`` decides
    whether the wire loses a datagram; ``sent`` records everything put on the wire.
    """
    queue: list[tuple[str, bytes]] = [("client", d) for d in first]
    for _ in range(100):
        if not queue:
            return
        sender, datagram = queue.pop(0)
        if sent is not None:
            sent.append((sender, datagram))
        if not deliver(sender, datagram):
            continue
        if sender == "client":
            queue += [("server", d) for d in server.receive(datagram, now)]
        else:
            queue += [("client", d) for d in client.receive(datagram, now)]
    raise AssertionError("handshake did not settle")


def handshake(client: DtlsEndpoint, server: DtlsEndpoint, now: float = 0.0) -> None:
    server.start(now)
    pump(client, server, client.start(now), now)


def wait_and_retransmit(endpoint: DtlsEndpoint) -> list[bytes]:
    """Sleep (for real) until the endpoint's timer is due, then let it retransmit."""
    for _ in range(20):
        due = endpoint.next_timeout()
        assert due is not None
        time.sleep(max(0.0, due - time.monotonic()) + 0.01)
        out = endpoint.handle_timeout(time.monotonic())
        if out:
            return out
    raise AssertionError("no retransmission")


# -- constructor validation ----------------------------------------------------------


def test_fingerprint_list_is_validated(certs):
    a, b, _ = certs
    with pytest.raises(DtlsError):
        DtlsEndpoint(a, "server", [])
    with pytest.raises(DtlsError):  # only weak / unknown hashes
        DtlsEndpoint(a, "server", [("sha-1", hashlib.sha1(b"x").digest()),
                                   ("md5", hashlib.md5(b"x").digest())])
    with pytest.raises(DtlsError):  # wrong digest length for sha-256
        DtlsEndpoint(a, "server", [("sha-256", b.fingerprint("sha-384"))])
    with pytest.raises(DtlsError):
        DtlsEndpoint(a, "listener", [("sha-256", b.fingerprint())])  # type: ignore[arg-type]
    # unknown algorithms next to a good one are ignored
    ep = DtlsEndpoint(a, "server", [("sha-1", b"\0" * 20), ("SHA-256", b.fingerprint())])
    assert ep.state == "new" and ep.role == "server"


def test_srtp_keys_before_connect_raise(certs):
    client, _ = make_pair(certs[0], certs[1])
    with pytest.raises(DtlsError):
        client.srtp_keys()


# -- handshake -------------------------------------------------------------------------


def test_handshake_gives_mirrored_keys_and_prefers_gcm(certs):
    client, server = make_pair(certs[0], certs[1])
    assert client.state == "new"
    hello = client.start(0.0)
    assert client.state == "handshaking" and len(hello) == 1
    assert server.start(0.0) == [] and server.state == "handshaking"
    pump(client, server, hello)
    assert client.state == server.state == "connected"
    assert client.failure is None and server.failure is None
    ck, sk = client.srtp_keys(), server.srtp_keys()
    assert ck.profile == sk.profile == GCM
    assert ck == sk.mirrored()
    assert ck.local_key != ck.remote_key
    assert (len(ck.local_key), len(ck.local_salt)) == (16, 12)
    assert client.dropped == server.dropped == 0


@pytest.mark.parametrize(
    ("client_profiles", "server_profiles", "expected"),
    [
        ((CM,), None, CM),
        (None, (CM,), CM),
        ((GCM,), None, GCM),
        ((CM, GCM), (GCM, CM), GCM),  # the server's preference order decides
        ((GCM, CM), (CM, GCM), CM),
    ],
)
def test_profile_negotiation(certs, client_profiles, server_profiles, expected):
    client, server = make_pair(certs[0], certs[1], client_profiles=client_profiles,
                               server_profiles=server_profiles)
    handshake(client, server)
    assert client.state == server.state == "connected"
    keys = client.srtp_keys()
    assert keys.profile == expected
    assert keys == server.srtp_keys().mirrored()
    assert len(keys.local_salt) == (12 if expected == GCM else 14)


def test_keys_follow_rfc5764_layout(certs):
    """Recompute the split from OpenSSL's exporter: client key | server key | client salt |
    server salt (RFC 5764 §4.2), and check each side got its own half as local."""
    client, server = make_pair(certs[0], certs[1], client_profiles=(CM,))
    handshake(client, server)
    material = client._conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    ck = client.srtp_keys()
    assert ck.local_key == material[:16] and ck.remote_key == material[16:32]
    assert ck.local_salt == material[32:46] and ck.remote_salt == material[46:60]
    assert server.srtp_keys().local_key == material[16:32]


def test_no_common_srtp_profile_fails_both_sides(certs):
    client, server = make_pair(certs[0], certs[1], client_profiles=(GCM,),
                               server_profiles=(CM,))
    handshake(client, server)
    assert client.state == server.state == "failed"
    assert "no SRTP profile" in (client.failure or "")
    assert "no SRTP profile" in (server.failure or "")
    with pytest.raises(DtlsError):
        client.srtp_keys()


def test_role_mismatch_never_connects(certs):
    """Two clients (both sides said 'active'): nothing the other side can answer."""
    a, b, _ = certs
    one = DtlsEndpoint(a, "client", [("sha-256", b.fingerprint())])
    two = DtlsEndpoint(b, "client", [("sha-256", a.fingerprint())])
    pump(one, two, one.start(0.0))
    assert one.state != "connected" and two.state != "connected"


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-384", "sha-512"])
def test_any_supported_hash_and_any_listed_fingerprint_matches(certs, algorithm):
    a, b, other = certs
    client = DtlsEndpoint(a, "client", [("sha-256", other.fingerprint()),
                                         (algorithm.upper(), b.fingerprint(algorithm))])
    server = DtlsEndpoint(b, "server", [(algorithm, a.fingerprint(algorithm))])
    handshake(client, server)
    assert client.state == server.state == "connected"


def test_every_datagram_fits_the_mtu_even_with_a_big_certificate():
    """A certificate of ~2.8 KB forces OpenSSL to fragment the Certificate message; the
    memory BIO hands back the whole flight at once, and it must be re-cut into datagrams
    of at most MTU bytes, each made of whole records."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "big")])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(f"host-{i:03d}.walkie.example") for i in range(100)]
    big = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(key, hashes.SHA256()))
    assert len(big.public_bytes(Encoding.DER)) > 2 * MTU
    big_cert = Certificate(key, big)
    for client_cert, server_cert in ((Certificate.generate(), big_cert),
                                     (big_cert, Certificate.generate())):
        client, server = make_pair(client_cert, server_cert)
        sent: list[tuple[str, bytes]] = []
        server.start(0.0)
        pump(client, server, client.start(0.0), sent=sent)
        assert client.state == server.state == "connected"
        assert max(len(d) for _, d in sent) <= MTU
        assert len(sent) > 4  # the big flight really was split
        for _, datagram in sent:
            assert_whole_records(datagram)


def assert_whole_records(datagram: bytes) -> None:
    pos = 0
    while pos < len(datagram):
        assert datagram[pos] in (20, 21, 22, 23)
        assert datagram[pos + 1] == 0xFE
        pos += 13 + int.from_bytes(datagram[pos + 11 : pos + 13], "big")
    assert pos == len(datagram)


def record(content_type: int, length: int, fill: int = 0) -> bytes:
    return bytes([content_type, 0xFE, 0xFD]) + bytes(8) + length.to_bytes(2, "big") + \
        bytes([fill]) * length


def test_pack_records_cuts_at_record_boundaries():
    recs = [record(22, n, i) for i, n in enumerate([100, 500, 580, 1000, 30, 1300, 10])]
    packed = _pack_records(b"".join(recs), 1200)
    assert b"".join(packed) == b"".join(recs)
    # greedy, whole records (13-byte headers): 113+513 | 593 | 1013+43 | 1313 alone | 23
    assert [len(p) for p in packed] == [626, 593, 1056, 1313, 23]
    for p in packed:
        assert_whole_records(p)


@given(st.lists(st.integers(min_value=0, max_value=1187), min_size=1, max_size=20))
def test_pack_records_property(lengths):
    data = b"".join(record(22, n) for n in lengths)
    packed = _pack_records(data, 1200)
    assert b"".join(packed) == data
    assert all(len(p) <= 1200 for p in packed)
    for p in packed:
        assert_whole_records(p)


# -- loss, duplication, retransmission ----------------------------------------------------


def test_duplicated_datagrams_do_not_break_the_handshake(certs):
    client, server = make_pair(certs[0], certs[1])
    server.start(0.0)
    queue = [("client", d) for d in client.start(0.0)]
    for _ in range(200):
        if not queue:
            break
        sender, datagram = queue.pop(0)
        target, name = (server, "server") if sender == "client" else (client, "client")
        for _copy in range(2):
            queue += [(name, d) for d in target.receive(datagram, 0.0)]
    assert client.state == server.state == "connected"
    assert client.srtp_keys() == server.srtp_keys().mirrored()


def test_lost_server_flight_is_retransmitted(certs):
    client, server = make_pair(certs[0], certs[1])
    now = time.monotonic()
    server.start(now)
    hello = client.start(now)
    lost = [d for h in hello for d in server.receive(h, now)]
    assert lost  # ServerHello ... ServerHelloDone, dropped on the wire
    due = server.next_timeout()
    assert due is not None and now < due <= now + 1.5  # DTLS initial timer: 1 s
    assert server.handle_timeout(now) == []  # not yet due: nothing happens
    again = wait_and_retransmit(server)
    assert [len(d) for d in again] == [len(d) for d in lost]
    now = time.monotonic()
    pump(client, server, [r for d in again for r in client.receive(d, now)], now)
    assert client.state == server.state == "connected"
    assert client.srtp_keys() == server.srtp_keys().mirrored()


def test_lost_final_flight_is_answered_again_by_a_connected_server(certs):
    """The server completes first; if its CCS+Finished is lost, the client retransmits
    its flight and the (already connected) server must send its final flight again."""
    client, server = make_pair(certs[0], certs[1])
    now = time.monotonic()
    dropped: list[bytes] = []

    def lose_final(sender: str, datagram: bytes) -> bool:
        if sender == "server" and server.state == "connected" and not dropped:
            dropped.append(datagram)
            return False
        return True

    server.start(now)
    pump(client, server, client.start(now), now, deliver=lose_final)
    assert dropped and server.state == "connected" and client.state == "handshaking"
    again = wait_and_retransmit(client)
    pump(client, server, again, time.monotonic())
    assert client.state == server.state == "connected"
    assert client.srtp_keys() == server.srtp_keys().mirrored()


# -- failures ---------------------------------------------------------------------------


def test_wrong_fingerprint_on_the_client_side(certs):
    a, b, other = certs
    client, server = make_pair(a, b, client_expects=other)
    handshake(client, server)
    assert client.state == "failed"
    assert client.failure == "certificate fingerprint mismatch"
    # the client's alert reached the server, which fails too (and says why)
    assert server.state == "failed" and server.failure
    assert client.next_timeout() is None
    with pytest.raises(DtlsError):
        client.srtp_keys()


def test_wrong_fingerprint_on_the_server_side(certs):
    a, b, other = certs
    client, server = make_pair(a, b, server_expects=other)
    handshake(client, server)
    assert server.state == "failed"
    assert server.failure == "certificate fingerprint mismatch"
    assert client.state == "failed" and client.failure
    with pytest.raises(DtlsError):
        server.srtp_keys()


def test_handshake_timeout_server_never_hears_anything(certs):
    _, server = make_pair(certs[0], certs[1], handshake_timeout=5.0)
    assert server.next_timeout() is None  # not started
    assert server.start(100.0) == []
    assert server.next_timeout() == 105.0
    assert server.handle_timeout(104.9) == []
    assert server.state == "handshaking"
    assert server.handle_timeout(105.0) == []
    assert server.state == "failed" and server.failure == "handshake timeout"
    assert server.next_timeout() is None
    assert server.receive(b"\x16\xfe\xfd" + bytes(20), 106.0) == []  # ignored after failure


def test_handshake_timeout_client_with_unanswered_hello(certs):
    client, _ = make_pair(certs[0], certs[1], handshake_timeout=3.0)
    assert len(client.start(0.0)) == 1
    due = client.next_timeout()
    assert due is not None and due <= 3.0  # the retransmission timer comes first
    client.handle_timeout(3.0)
    assert client.state == "failed" and client.failure == "handshake timeout"


def test_close_notify_closes_the_peer(certs):
    client, server = make_pair(certs[0], certs[1])
    handshake(client, server)
    bye = client.close()
    assert bye and client.state == "closed"
    assert client.close() == []
    answer = [d for b in bye for d in server.receive(b, 1.0)]
    assert server.state == "closed"
    assert answer  # the server answers with its own close_notify
    assert client.receive(answer[0], 1.0) == []  # closed: ignored
    assert server.srtp_keys() == client.srtp_keys().mirrored()  # keys stay readable


def test_close_during_handshake_sends_nothing(certs):
    client, _ = make_pair(certs[0], certs[1])
    client.start(0.0)
    assert client.close() == []
    assert client.state == "closed" and client.next_timeout() is None


def test_application_data_is_read_and_dropped(certs):
    """A raw pyOpenSSL peer (not our endpoint class) sends application data after the
    handshake: it is discarded, counted, and the association stays up."""
    a, b, _ = certs
    server = DtlsEndpoint(b, "server", [("sha-256", a.fingerprint())])
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(a.cert)
    ctx.use_privatekey(a.key)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    peer = SSL.Connection(ctx, None)
    peer.set_connect_state()

    def flush_peer() -> list[bytes]:
        out = []
        try:
            while True:
                out.append(peer.bio_read(65536))
        except SSL.WantReadError:
            return out

    for _ in range(10):
        try:
            peer.do_handshake()
        except SSL.WantReadError:
            pass
        replies = [r for d in flush_peer() for r in server.receive(d, 0.0)]
        for r in replies:
            peer.bio_write(r)
        if server.state == "connected" and not replies:
            break
    peer.do_handshake()
    assert server.state == "connected"
    assert server.srtp_keys().profile == CM
    peer.send(b"hello from the data channel that does not exist")
    for d in flush_peer():
        assert server.receive(d, 1.0) == []
    assert server.state == "connected"
    assert server.app_data_dropped == len(b"hello from the data channel that does not exist")


# -- garbage in -----------------------------------------------------------------------------


GARBAGE = [
    b"",
    b"\x16",
    b"\x16\xfe\xfd" + bytes(10),  # header only, length 0 -- structurally fine, empty
    b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05abc",  # length longer than the datagram
    b"\x17\xfe\xfd" + bytes(8) + b"\x00\x03abc",  # app data in epoch 0
    b"\x15\xfe\xfd" + bytes(8) + b"\x00\x02\x02\x28",  # fatal alert in epoch 0
    b"\x80" + bytes(100),  # RTP
    b"\x00\x01\x00\x00" + bytes(16),  # STUN
    bytes(range(256)) * 4,
    b"\x16\xfe\xfd" + bytes(8) + b"\x00\x0c" + b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x16" * 20000,
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_never_raises(certs, garbage):
    client, server = make_pair(certs[0], certs[1])
    assert isinstance(server.receive(garbage, 0.0), list)
    assert server.state in ("handshaking", "failed")
    hello = client.start(0.0)
    assert isinstance(client.receive(garbage, 0.0), list)
    if server.state == "handshaking" and client.state == "handshaking":
        pump(client, server, hello)
        assert client.state in ("connected", "failed")
    # and once connected, garbage changes nothing
    c2, s2 = make_pair(certs[0], certs[1])
    handshake(c2, s2)
    for ep in (c2, s2):
        assert isinstance(ep.receive(garbage, 1.0), list)
        assert ep.state in ("connected", "failed", "closed")


def test_malformed_datagrams_are_counted_and_the_handshake_survives(certs):
    client, server = make_pair(certs[0], certs[1])
    for junk in (b"", b"\x16", b"\xff" * 30, b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05abc"):
        server.receive(junk, 0.0)
    assert server.dropped == 4
    handshake(client, server)
    assert client.state == server.state == "connected"


def test_corrupted_real_flights_never_raise(certs):
    """Flip each byte position of the real handshake flights (one at a time)."""
    client, server = make_pair(certs[0], certs[1])
    sent: list[tuple[str, bytes]] = []
    server.start(0.0)
    pump(client, server, client.start(0.0), sent=sent)
    for index, (sender, datagram) in enumerate(sent[:3]):
        for pos in range(0, len(datagram), 7):
            c, s = make_pair(certs[0], certs[1])
            s.start(0.0)
            hello = c.start(0.0)
            prefix = [d for _, d in sent[:index]]
            corrupted = datagram[:pos] + bytes([datagram[pos] ^ 0x5A]) + datagram[pos + 1:]
            # replay the honest prefix against fresh endpoints; the transcript differs
            # (fresh randoms), so the stale bytes are garbage of a realistic shape
            for d in prefix + [corrupted]:
                (s if sender == "client" else c).receive(d, 0.0)
            pump(c, s, hello)
            assert c.state in ("handshaking", "connected", "failed")
            assert s.state in ("handshaking", "connected", "failed")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=1500))
def test_fresh_server_never_raises_on_arbitrary_bytes(certs, data):
    _, server = make_pair(certs[0], certs[1])
    out = server.receive(data, 0.0)
    assert isinstance(out, list)
    assert server.state in ("handshaking", "failed")


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), content_type=st.integers(20, 25))
def test_fresh_server_never_raises_on_record_shaped_bytes(certs, body, content_type):
    """Arbitrary bytes inside a well-formed record header get past the cheap check and
    reach OpenSSL; it must still never raise out of receive."""
    _, server = make_pair(certs[0], certs[1])
    datagram = bytes([content_type, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2, "big") + body
    assert isinstance(server.receive(datagram, 0.0), list)
    assert server.state in ("handshaking", "failed")


def test_srtp_keys_type(certs):
    client, server = make_pair(certs[0], certs[1])
    handshake(client, server)
    assert isinstance(client.srtp_keys(), SrtpKeys)
