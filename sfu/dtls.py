"""Sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 5763/5764), on pyOpenSSL memory BIOs.

Bytes in, datagrams out: :class:`DtlsEndpoint` never touches a socket or a clock.  The
caller feeds each received DTLS datagram to :meth:`DtlsEndpoint.receive`, sends whatever
comes back, and calls :meth:`DtlsEndpoint.handle_timeout` when
:meth:`DtlsEndpoint.next_timeout` is due.  Once ``state == 'connected'``,
:meth:`DtlsEndpoint.srtp_keys` gives the SRTP master keys.

Trust model (RFC 8827 §6.5): certificates are self-signed; the only thing that binds the
DTLS peer to the signaling session is the ``a=fingerprint`` from its SDP.  So the chain
verdict OpenSSL gives us is ignored and the leaf certificate's digest is compared with the
SDP fingerprint(s) instead, inside the verify callback (a mismatch aborts the handshake
with a ``bad_certificate`` alert, so the peer learns of it at once) and again after the
handshake (belt and braces: keys are never released for an unchecked peer).

Clock caveat: OpenSSL runs its retransmission timer on the real clock, which we cannot
replace through pyOpenSSL.  We mirror it onto the caller's clock (``now +
DTLSv1_get_timeout()`` after every step), which agrees with any monotonic clock that runs
at real speed (``loop.time()``).  The handshake deadline is ours and uses ``now`` only.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from .srtp import PROFILES, SrtpKeys

__all__ = ["Certificate", "DtlsEndpoint", "DtlsError", "SrtpKeys", "DEFAULT_SRTP_PROFILES"]

Role = Literal["client", "server"]

#: Largest datagram we emit.  1200 bytes fits any path MTU a browser will use (it is what
#: Chrome and Firefox themselves assume for DTLS/SRTP) with room for TURN's 36-byte overhead.
MTU = 1200

#: Real DTLS datagrams fit a path MTU.  Bigger input is dropped before OpenSSL sees it, so
#: its DTLS record reader (which reads at most one ~18 KiB "packet" from the memory BIO)
#: can never leave a tail behind that would be misread as the next datagram.
MAX_DATAGRAM = 16384

#: Offered in this order: GCM first (one AES pass per packet, cheaper than CM + HMAC).
DEFAULT_SRTP_PROFILES: tuple[str, ...] = tuple(PROFILES)

# RFC 5764 / RFC 7714 profile names <-> OpenSSL's names for use_srtp.
_OPENSSL_PROFILE = {
    "AEAD_AES_128_GCM": b"SRTP_AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80": b"SRTP_AES128_CM_SHA1_80",
}
_PROFILE_FROM_OPENSSL = {v: k for k, v in _OPENSSL_PROFILE.items()}

# ECDHE suites that Chrome and Firefox offer for DTLS 1.2.  ECDSA first: our certificate is
# P-256, and WebRTC browsers generate ECDSA certificates by default.  RSA suites are kept
# for the case where we are the client and the peer's certificate is RSA.
_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)

_DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL has no constant for it; OpenSSL's DTLS1_2_VERSION

# SDP hash names (RFC 8122 registry) we accept.  sha-1 and md5 are deliberately absent:
# a collision in a weak hash would let an attacker substitute a certificate.
_HASHES = {"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}
_CRYPTO_HASHES = {"sha-256": hashes.SHA256, "sha-384": hashes.SHA384, "sha-512": hashes.SHA512}

_RECORD_HEADER = 13  # DTLS record header: type, version, epoch, sequence number, length
_KEYING_LABEL = b"EXTRACTOR-dtls_srtp"


class DtlsError(ValueError):
    """Misuse or bad configuration of a DTLS endpoint (never raised for network input)."""


class Certificate:
    """Our DTLS identity: an ECDSA P-256 key and a self-signed certificate.

    One per process (or per worker) is enough: its fingerprint goes into every SDP answer.
    It also caches the OpenSSL contexts built from it, because creating and configuring an
    ``SSL.Context`` costs far more than creating a ``Connection`` from one.
    """

    __slots__ = ("key", "cert", "_der", "_contexts")

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self._der = cert.public_bytes(serialization.Encoding.DER)
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generate(cls, common_name: str = "walkie") -> Certificate:
        """A fresh self-signed certificate valid from a day ago (peer clock skew) for 30
        days, with a random serial (two certificates must never look alike)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def expires(self) -> datetime.datetime:
        """When browsers will stop accepting this certificate; regenerate before then."""
        return self.cert.not_valid_after_utc

    def fingerprint(self, algorithm: str = "sha-256") -> bytes:
        """Raw digest of the DER certificate, as carried (hex-encoded) in ``a=fingerprint``."""
        name = _HASHES.get(algorithm.lower())
        if name is None:
            raise DtlsError(f"unsupported fingerprint algorithm {algorithm!r}")
        return hashlib.new(name, self._der).digest()

    def fingerprint_text(self, algorithm: str = "sha-256") -> str:
        """The SDP form: upper-case hex bytes joined by colons (RFC 8122 §5)."""
        return self.fingerprint(algorithm).hex(":").upper()

    def context(self, srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES) -> SSL.Context:
        """The shared OpenSSL context for this certificate and SRTP profile list.

        One context serves both roles: DTLS_METHOD is role-neutral and the role is set per
        connection (set_connect_state / set_accept_state), so nothing in it differs.
        """
        key = tuple(srtp_profiles)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = _build_context(self, key)
        return ctx


def _build_context(certificate: Certificate, profiles: tuple[str, ...]) -> SSL.Context:
    if not profiles:
        raise DtlsError("at least one SRTP profile is needed")
    unknown = [p for p in profiles if p not in _OPENSSL_PROFILE]
    if unknown:
        raise DtlsError(f"unsupported SRTP profile(s) {unknown}")
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_min_proto_version(_DTLS1_2_VERSION)
    ctx.set_max_proto_version(_DTLS1_2_VERSION)
    # NO_QUERY_MTU: a memory BIO cannot report a path MTU; we set it per connection.
    # NO_TICKET / session cache off: WebRTC never resumes sessions, and a cache only
    # grows.  NO_RENEGOTIATION: nothing in DTLS-SRTP needs it, and it is attack surface.
    ctx.set_options(
        SSL.OP_NO_QUERY_MTU
        | SSL.OP_NO_TICKET
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_COMPRESSION
    )
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.use_certificate(certificate.cert)
    ctx.use_privatekey(certificate.key)
    ctx.check_privatekey()
    ctx.set_cipher_list(_CIPHERS)
    ctx.set_tlsext_use_srtp(b":".join(_OPENSSL_PROFILE[p] for p in profiles))
    # Ask for (and insist on) the peer's certificate; the callback judges it by fingerprint.
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    return ctx


class _PeerCheck:
    """What the shared verify callback needs to know about one connection.

    Kept apart from the endpoint (as the Connection's app data) so the Connection does not
    hold a reference back to its endpoint: no reference cycle per peer.
    """

    __slots__ = ("fingerprints", "mismatch")

    def __init__(self, fingerprints: list[tuple[str, bytes]]) -> None:
        self.fingerprints = fingerprints
        self.mismatch = False

    def matches(self, cert: x509.Certificate) -> bool:
        """True if the certificate matches any SDP fingerprint we can check.

        Several ``a=fingerprint`` lines may describe several certificates the peer might
        use (RFC 8122 §5), so any match is enough.
        """
        for algorithm, digest in self.fingerprints:
            if cert.fingerprint(_CRYPTO_HASHES[algorithm]()) == digest:
                return True
        return False


def _verify_callback(
    conn: SSL.Connection, cert: object, errno: int, depth: int, ok: int
) -> bool:
    """Accept any chain (self-signed: error 18, expired, ...) whose leaf matches the SDP.

    Only the leaf (depth 0) is judged: intermediate certificates, if a peer sends any,
    carry no meaning in WebRTC's trust model.
    """
    if depth != 0:
        return True
    check = conn.get_app_data()
    if not isinstance(check, _PeerCheck):
        return False
    try:
        leaf = cert.to_cryptography()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unparsable certificate simply fails the check
        check.mismatch = True
        return False
    if check.matches(leaf):
        return True
    check.mismatch = True
    return False


def _normalize_fingerprints(
    remote_fingerprints: Sequence[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """Keep the fingerprints we can check; reject the set if none is usable.

    Failing here (at offer time) rather than during the handshake lets signaling refuse
    the offer with a clear reason instead of a peer that silently never connects.
    """
    usable: list[tuple[str, bytes]] = []
    for algorithm, digest in remote_fingerprints:
        name = algorithm.lower()
        if name not in _HASHES:
            continue  # RFC 8122 §5: ignore hash functions we do not support
        if not isinstance(digest, bytes):
            raise DtlsError("fingerprint digests must be bytes")
        if len(digest) != hashlib.new(_HASHES[name]).digest_size:
            raise DtlsError(f"{name} fingerprint has the wrong length ({len(digest)} bytes)")
        usable.append((name, digest))
    if not usable:
        raise DtlsError("no usable certificate fingerprint (need sha-256, sha-384 or sha-512)")
    return usable


def _records_well_formed(data: bytes) -> bool:
    """Cheap structural check of a datagram: a chain of whole DTLS records.

    RFC 7983 already routed it here by its first byte (20..63); real content types are
    20..25 (24 is heartbeat, 25 tls12_cid), version major is 0xFE.  Anything else would be
    discarded by OpenSSL anyway; checking first lets us count it as dropped.
    """
    n = len(data)
    if n < _RECORD_HEADER or n > MAX_DATAGRAM:
        return False
    pos = 0
    while pos < n:
        if n - pos < _RECORD_HEADER:
            return False
        if not 20 <= data[pos] <= 25 or data[pos + 1] != 0xFE:
            return False
        pos += _RECORD_HEADER + ((data[pos + 11] << 8) | data[pos + 12])
    return pos == n


def _pack_records(data: bytes, mtu: int) -> list[bytes]:
    """Split what OpenSSL wrote into datagrams of whole records, each at most ``mtu``.

    A memory BIO keeps no datagram boundaries: one ``bio_read`` returns every record of a
    flight back to back.  OpenSSL sizes each record (handshake fragments) for the MTU, but
    it asks the memory BIO how much of the current datagram is used, gets 0, and so the
    concatenation can exceed the MTU.  Re-packing at record boundaries restores what a
    datagram BIO would have done.  A record bigger than the MTU (cannot happen with the MTU
    set) goes out alone rather than being dropped.
    """
    out: list[bytes] = []
    n = len(data)
    start = pos = 0
    while pos < n:
        if n - pos < _RECORD_HEADER:  # not record-shaped: send the rest as it is
            pos = n
            break
        end = pos + _RECORD_HEADER + ((data[pos + 11] << 8) | data[pos + 12])
        if end - start > mtu and pos > start:
            out.append(data[start:pos])
            start = pos
        pos = min(end, n)
    if pos > start:
        out.append(data[start:pos])
    return out


def _ssl_reason(exc: SSL.Error) -> str:
    """A short, human reason from pyOpenSSL's error list [(lib, func, reason), ...]."""
    details = exc.args[0] if exc.args else None
    if isinstance(details, list) and details:
        parts = [str(item[-1]) for item in details if isinstance(item, tuple) and item]
        if parts:
            return "; ".join(parts)
    text = str(exc)
    return text or type(exc).__name__


class DtlsEndpoint:
    """One DTLS association over memory BIOs. Sans-IO: bytes in, datagrams out.

    States: ``new`` -> ``handshaking`` -> ``connected`` -> ``closed``; any of the first
    three can end in ``failed`` (with :attr:`failure` saying why).  Network input never
    raises: malformed datagrams are counted in :attr:`dropped`, and protocol errors fail
    the association (sending OpenSSL's alert, if it made one, so the peer fails fast).
    """

    __slots__ = (
        "role",
        "state",
        "failure",
        "dropped",
        "app_data_dropped",
        "handshake_timeout",
        "_conn",
        "_check",
        "_keys",
        "_deadline",
        "_timer",
    )

    def __init__(
        self,
        certificate: Certificate,
        role: Role,
        remote_fingerprints: Sequence[tuple[str, bytes]],
        handshake_timeout: float = 10.0,
        srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    ) -> None:
        if role not in ("client", "server"):
            raise DtlsError(f"role must be 'client' or 'server', not {role!r}")
        self.role: Role = role
        self.state = "new"
        self.failure: str | None = None
        #: datagrams dropped unread: malformed, oversized, or arriving after the end
        self.dropped = 0
        #: application-data bytes read and discarded (WebRTC audio never sends any)
        self.app_data_dropped = 0
        self.handshake_timeout = handshake_timeout
        self._check = _PeerCheck(_normalize_fingerprints(remote_fingerprints))
        conn = SSL.Connection(certificate.context(srtp_profiles), None)
        conn.set_app_data(self._check)
        conn.set_ciphertext_mtu(MTU)
        if role == "client":
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn = conn
        self._keys: SrtpKeys | None = None
        self._deadline: float | None = None  # handshake deadline, on the caller's clock
        self._timer: float | None = None  # OpenSSL's retransmission timer, on our clock

    # -- public API ---------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake: a client returns its ClientHello flight, a server [] (it
        waits for one).  Starts the handshake deadline either way.  Idempotent."""
        if self.state != "new":
            return []
        self.state = "handshaking"
        self._deadline = now + self.handshake_timeout
        if self.role == "server":
            return []
        return self._handshake(now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Feed one received datagram; return the datagrams to send in answer.

        A server that has not been started is started implicitly: the first ClientHello
        is what starts it in practice.
        """
        if self.state in ("failed", "closed"):
            self.dropped += 1
            return []
        out = self.start(now) if self.state == "new" else []
        if not _records_well_formed(data):
            self.dropped += 1
            return out
        self._conn.bio_write(data)
        if self.state == "handshaking":
            out += self._handshake(now)
        else:
            out += self._read_application_data(now)
        return out

    def next_timeout(self) -> float | None:
        """Absolute time (caller's clock) at which :meth:`handle_timeout` is due, or None."""
        if self.state == "handshaking":
            if self._timer is None:
                return self._deadline
            if self._deadline is None:
                return self._timer
            return min(self._timer, self._deadline)
        if self.state == "connected":
            return self._timer
        return None

    def handle_timeout(self, now: float) -> list[bytes]:
        """Retransmit a lost flight if OpenSSL's timer expired; fail after the deadline."""
        if self.state == "handshaking" and self._deadline is not None and now >= self._deadline:
            self._fail("handshake timeout")
            return []
        if self.state not in ("handshaking", "connected"):
            return []
        if self._timer is None or now < self._timer:
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:  # too many retransmissions
            self._fail(f"DTLS retransmission failed: {_ssl_reason(exc)}")
            return self._drain()
        self._update_timer(now)
        return self._drain()

    def srtp_keys(self) -> SrtpKeys:
        """The SRTP keys from the handshake, local = ours by role (RFC 5764 §4.2)."""
        if self._keys is None:
            raise DtlsError(f"no SRTP keys: DTLS state is {self.state!r}")
        return self._keys

    def close(self) -> list[bytes]:
        """Say goodbye: a close_notify alert if we were connected.  Always ends the
        association (state 'closed', unless it had already failed)."""
        if self.state in ("failed", "closed"):
            return []
        was_connected = self.state == "connected"
        self.state = "closed"
        self._timer = None
        if not was_connected:
            return []
        try:
            self._conn.shutdown()
        except SSL.Error:
            return []
        return self._drain()

    # -- internals ----------------------------------------------------------------

    def _handshake(self, now: float) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._update_timer(now)
            return self._drain()
        except SSL.Error as exc:
            out = self._drain()  # OpenSSL's alert, if any: lets the peer fail fast
            if self._check.mismatch:
                self._fail("certificate fingerprint mismatch")
            elif isinstance(exc, SSL.ZeroReturnError):
                self._fail("peer closed the connection during the handshake")
            else:
                self._fail(f"DTLS handshake failed: {_ssl_reason(exc)}")
            return out
        return self._on_handshake_done(now)

    def _on_handshake_done(self, now: float) -> list[bytes]:
        out = self._drain()
        peer = self._conn.get_peer_certificate(as_cryptography=True)
        if peer is None or not self._check.matches(peer):
            return out + self._fail_connected("certificate fingerprint mismatch")
        raw = self._conn.get_selected_srtp_profile()
        profile = _PROFILE_FROM_OPENSSL.get(raw)
        if profile is None:
            name = raw.decode(errors="replace") or "none"
            return out + self._fail_connected(f"no SRTP profile negotiated ({name})")
        key_len, salt_len = PROFILES[profile]
        material = self._conn.export_keying_material(_KEYING_LABEL, 2 * (key_len + salt_len))
        self._keys = SrtpKeys.from_keying_material(profile, material, self.role)
        self.state = "connected"
        # The same datagram may carry more records (application data, an alert) after
        # the Finished message.
        return out + self._read_application_data(now)

    def _read_application_data(self, now: float) -> list[bytes]:
        """Read (and discard) whatever OpenSSL decrypts, and let it answer retransmitted
        flights from the peer (the server re-sends its last flight this way)."""
        conn = self._conn
        try:
            while True:
                self.app_data_dropped += len(conn.recv(65536))
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:  # close_notify: answer with ours (RFC 5246 §7.2.1)
            self.state = "closed"
            self._timer = None
            try:
                conn.shutdown()
            except SSL.Error:
                pass
        except SSL.Error as exc:
            out = self._drain()
            self._fail(f"DTLS error: {_ssl_reason(exc)}")
            return out
        self._update_timer(now)
        return self._drain()

    def _update_timer(self, now: float) -> None:
        """Mirror OpenSSL's (real-clock) retransmission timer onto the caller's clock."""
        if self.state not in ("handshaking", "connected"):
            self._timer = None
            return
        remaining = self._conn.DTLSv1_get_timeout()
        self._timer = None if remaining is None else now + remaining

    def _drain(self) -> list[bytes]:
        """Everything OpenSSL has written, re-cut into datagrams of at most MTU bytes."""
        chunks: list[bytes] = []
        conn = self._conn
        try:
            while True:
                chunks.append(conn.bio_read(65536))
        except SSL.WantReadError:
            pass
        if not chunks:
            return []
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(data) <= MTU:
            return [data] if data else []
        return _pack_records(data, MTU)

    def _fail_connected(self, reason: str) -> list[bytes]:
        """Fail an association OpenSSL considers established: a close_notify tells the
        peer, which would otherwise believe it is connected and start sending media."""
        self._fail(reason)
        try:
            self._conn.shutdown()
        except SSL.Error:
            return []
        return self._drain()

    def _fail(self, reason: str) -> None:
        self.state = "failed"
        self.failure = reason
        self._timer = None
        self._keys = None
