"""Our DTLS identity and how a peer's identity is judged, for DTLS-SRTP (RFC 5763/5764).

WebRTC certificates are self-signed (RFC 8827 §6.5): the only thing that binds a DTLS peer to
its signaling session is the ``a=fingerprint`` digest carried in the SDP. This module owns
that rule, for both sides:

* ours: :class:`Certificate` (an ECDSA P-256 key and a self-signed certificate), its
  fingerprints, and the OpenSSL context that presents it (:meth:`Certificate.context`);
* theirs: which hash functions a fingerprint may use (:data:`FINGERPRINT_SIZES`), how a
  certificate's digest is computed (:func:`fingerprint_digest`), and the check OpenSSL's
  verify callback applies to the peer's leaf certificate (:class:`FingerprintCheck`).

The SDP code (``sfu/sdp/model.py``) and the DTLS endpoint (``sfu/dtls.py``) both use these,
so an offer we accept always carries a fingerprint the handshake can check. The association
itself (handshake, timers, records, SRTP key export) is ``sfu/dtls.py``.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from .srtp import PROFILES

__all__ = [
    "DEFAULT_SRTP_PROFILES",
    "DTLS_CIPHERS",
    "FINGERPRINT_SIZES",
    "Certificate",
    "CertificateError",
    "CertificateKeeper",
    "FingerprintCheck",
    "fingerprint_digest",
    "srtp_profile_named",
]

#: ``a=fingerprint`` hash functions we accept (RFC 8122 names) and their digest sizes.
#: sha-1 and md5 are deliberately absent: a collision in a weak hash would let an attacker
#: substitute a certificate, and RFC 8827 forbids md5/md2 for DTLS-SRTP.
FINGERPRINT_SIZES: dict[str, int] = {"sha-256": 32, "sha-384": 48, "sha-512": 64}

#: SRTP profiles offered in the DTLS use_srtp extension, in this order, and the only ones
#: accepted: AEAD_AES_128_GCM first (RFC 7714: an AEAD with a 128-bit tag, one AES pass per
#: packet, cheaper than CM + HMAC; Chromium and Firefox both offer it), then
#: AES_CM_128_HMAC_SHA1_80 (RFC 5764: the profile RFC 8827 §6.5 makes mandatory, so any
#: WebRTC peer can connect; its 80-bit HMAC tag is the strongest of the CM profiles).
#: Refused: AES_CM_128_HMAC_SHA1_32 (a 32-bit tag: forgeries are 2^48 times likelier) and
#: the NULL-cipher profiles (no confidentiality).
DEFAULT_SRTP_PROFILES: tuple[str, ...] = tuple(PROFILES)

# RFC 5764 / RFC 7714 profile names <-> OpenSSL's names for use_srtp.
_OPENSSL_PROFILE = {
    "AEAD_AES_128_GCM": b"SRTP_AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80": b"SRTP_AES128_CM_SHA1_80",
}
_PROFILE_FROM_OPENSSL = {v: k for k, v in _OPENSSL_PROFILE.items()}

#: The DTLS 1.2 cipher suites we offer and accept: ECDHE key exchange (forward secrecy),
#: ECDSA authentication, AES-GCM (AEAD) only. ECDSA because both certificates are ECDSA:
#: ours is P-256, and Chromium, Firefox and aiortc make ECDSA P-256 certificates by default
#: (the page never asks for another kind). AES-GCM because it is what both browsers prefer
#: and the only AEAD with hardware support everywhere; CBC-SHA1 suites (MAC-then-encrypt,
#: the Lucky 13 family of padding oracles) and everything without ECDHE are refused, and so
#: is ChaCha20 (no browser needs it: both offer AES-GCM first). OpenSSL names (RFC 5289):
#: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 first, then ..._AES_256_GCM_SHA384.
DTLS_CIPHERS: tuple[str, ...] = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384")
_CIPHERS = ":".join(DTLS_CIPHERS).encode()

#: How long a certificate we make is valid, and how long before its end a new one is made.
#: A week of overlap is far longer than any offer takes to be answered and connected; an
#: association already up does not care (DTLS checked the certificate once, at its start).
CERTIFICATE_LIFETIME = datetime.timedelta(days=30)
RENEW_BEFORE = datetime.timedelta(days=7)

_DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL has no constant for it; OpenSSL's DTLS1_2_VERSION


class CertificateError(ValueError):
    """Misuse or bad configuration: an unsupported fingerprint algorithm or SRTP profile
    (never raised for network input)."""


def fingerprint_digest(der: bytes, algorithm: str = "sha-256") -> bytes:
    """Raw digest of a DER-encoded certificate, as carried (hex-encoded) in ``a=fingerprint``.

    ``algorithm`` is an RFC 8122 name, case-insensitive; only those in
    :data:`FINGERPRINT_SIZES` are accepted.
    """
    name = algorithm.lower()
    if name not in FINGERPRINT_SIZES:
        raise CertificateError(f"unsupported fingerprint algorithm {algorithm!r}")
    return hashlib.new(name.replace("-", ""), der).digest()


def srtp_profile_named(openssl_name: bytes) -> str | None:
    """The RFC name of the SRTP profile OpenSSL reports as negotiated, or None if unknown."""
    return _PROFILE_FROM_OPENSSL.get(openssl_name)


class Certificate:
    """Our DTLS identity: an ECDSA P-256 key and a self-signed certificate.

    One per process (or per worker) is enough: its fingerprint goes into every SDP answer.
    It also caches the OpenSSL contexts built from it, because creating and configuring an
    ``SSL.Context`` costs far more than creating a ``Connection`` from one.
    """

    __slots__ = ("key", "cert", "der", "_contexts")

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generate(cls, common_name: str = "walkie", *, now: float | None = None) -> Certificate:
        """A fresh self-signed certificate valid from a day before ``now`` (Unix seconds;
        default: the clock; the day is for peer clock skew) for ``CERTIFICATE_LIFETIME``,
        with a random serial (two certificates must never look alike)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        if now is None:
            now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        start = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(days=1))
            .not_valid_after(start + CERTIFICATE_LIFETIME)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def expires(self) -> datetime.datetime:
        """When browsers will stop accepting this certificate; regenerate before then."""
        return self.cert.not_valid_after_utc

    def fingerprint(self, algorithm: str = "sha-256") -> bytes:
        """Raw digest of the DER certificate, as carried (hex-encoded) in ``a=fingerprint``."""
        return fingerprint_digest(self.der, algorithm)

    def fingerprint_text(self, algorithm: str = "sha-256") -> str:
        """The SDP form: upper-case hex bytes joined by colons (RFC 8122 §5)."""
        return self.fingerprint(algorithm).hex(":").upper()

    def context(self, srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES) -> SSL.Context:
        """The shared OpenSSL context for this certificate and SRTP profile list.

        One context serves both roles: DTLS_METHOD is role-neutral and the role is set per
        connection (set_connect_state / set_accept_state), so nothing in it differs. Every
        ``Connection`` made from it must carry a :class:`FingerprintCheck` as its app data.
        """
        key = tuple(srtp_profiles)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = _build_context(self, key)
        return ctx


class CertificateKeeper:
    """Our current DTLS certificate, replaced by a new one before it expires.

    Sans-IO: the time is passed in (Unix seconds). Each new peer asks :meth:`current` and
    puts that certificate's fingerprint in its answer; a peer made earlier keeps the one it
    was made with (its DTLS endpoint holds it), so no association ever changes identity and
    nothing is cut off when a new certificate comes in. Making one costs a millisecond or
    two, once every ``CERTIFICATE_LIFETIME - RENEW_BEFORE`` (23 days).
    """

    __slots__ = ("_current", "common_name", "renew_before", "renewals")

    def __init__(self, certificate: Certificate | None = None, *, common_name: str = "walkie",
                 renew_before: datetime.timedelta = RENEW_BEFORE) -> None:
        self._current = certificate or Certificate.generate(common_name)
        self.common_name = common_name
        self.renew_before = renew_before.total_seconds()
        #: certificates made to replace one about to expire
        self.renewals = 0

    @property
    def certificate(self) -> Certificate:
        """The current certificate, as it is (no renewal)."""
        return self._current

    def current(self, now: float) -> Certificate:
        """The certificate for a peer made at ``now``: a new one if less than
        ``renew_before`` is left of the current one's validity."""
        cert = self._current
        if cert.expires.timestamp() - now < self.renew_before:
            cert = self._current = Certificate.generate(self.common_name, now=now)
            self.renewals += 1
        return cert


def _build_context(certificate: Certificate, profiles: tuple[str, ...]) -> SSL.Context:
    if not profiles:
        raise CertificateError("at least one SRTP profile is needed")
    unknown = [p for p in profiles if p not in _OPENSSL_PROFILE]
    if unknown:
        raise CertificateError(f"unsupported SRTP profile(s) {unknown}")
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


class FingerprintCheck:
    """The peer's certificate, judged by the SDP fingerprints of one connection.

    Set as the ``Connection``'s app data, where the shared verify callback finds it. Kept
    apart from the DTLS endpoint so the Connection does not hold a reference back to its
    endpoint: no reference cycle per peer. ``mismatch`` records that the callback refused a
    certificate, so the endpoint can say why the handshake failed.
    """

    __slots__ = ("fingerprints", "mismatch")

    def __init__(self, fingerprints: list[tuple[str, bytes]]) -> None:
        self.fingerprints = fingerprints  # (algorithm in FINGERPRINT_SIZES, digest)
        self.mismatch = False

    def matches(self, cert: x509.Certificate) -> bool:
        """True if the certificate matches any SDP fingerprint we can check.

        Several ``a=fingerprint`` lines may describe several certificates the peer might
        use (RFC 8122 §5), so any match is enough.
        """
        der = cert.public_bytes(serialization.Encoding.DER)
        return any(
            fingerprint_digest(der, algorithm) == digest for algorithm, digest in self.fingerprints
        )


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
    if not isinstance(check, FingerprintCheck):
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
