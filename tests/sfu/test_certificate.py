"""Tests for sfu/certificate.py: our self-signed identity, its fingerprints and OpenSSL
context, and the fingerprint check a peer's certificate must pass.

The check is exercised end to end by the handshakes in test_dtls.py; here it is judged alone.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sfu.certificate import (
    FINGERPRINT_SIZES,
    Certificate,
    CertificateError,
    FingerprintCheck,
    fingerprint_digest,
)

CM = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture(scope="module")
def cert() -> Certificate:
    return Certificate.generate("walkie-test")


def test_certificate_fingerprints_match_cryptography(cert):
    for name, algo in (("sha-256", hashes.SHA256()), ("sha-384", hashes.SHA384()),
                       ("sha-512", hashes.SHA512())):
        assert cert.fingerprint(name) == cert.cert.fingerprint(algo)
        assert cert.fingerprint(name.upper()) == cert.fingerprint(name)
    text = cert.fingerprint_text()
    assert text == ":".join(f"{b:02X}" for b in cert.fingerprint("sha-256"))
    assert len(text) == 32 * 3 - 1
    with pytest.raises(CertificateError):
        cert.fingerprint("sha-1")
    with pytest.raises(CertificateError):
        cert.fingerprint_text("md5")


def test_certificate_is_self_signed_p256_valid_about_30_days():
    cert = Certificate.generate("walkie-test")
    c = cert.cert
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey)
    assert c.public_key().curve.name == "secp256r1"
    assert c.subject == c.issuer
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "walkie-test"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert c.not_valid_before_utc < now < c.not_valid_after_utc
    assert datetime.timedelta(days=29) < cert.expires - now < datetime.timedelta(days=31)
    c.public_key().verify(c.signature, c.tbs_certificate_bytes,
                          ec.ECDSA(c.signature_hash_algorithm))
    other = Certificate.generate("walkie-test")
    assert other.cert.serial_number != c.serial_number
    assert other.fingerprint() != cert.fingerprint()


def test_context_is_built_once_per_profile_list(cert):
    assert cert.context() is cert.context()
    assert cert.context((CM,)) is cert.context([CM])
    assert cert.context((CM,)) is not cert.context()
    with pytest.raises(CertificateError):
        cert.context(("AES_CM_128_HMAC_SHA1_32",))
    with pytest.raises(CertificateError):
        cert.context(())


def test_fingerprint_rule_is_sha2_only_with_the_right_sizes(cert):
    """The accepted hashes are the ones with the digest sizes the SDP checks rely on."""
    assert FINGERPRINT_SIZES == {"sha-256": 32, "sha-384": 48, "sha-512": 64}
    for algorithm, size in FINGERPRINT_SIZES.items():
        assert len(fingerprint_digest(cert.der, algorithm)) == size
    for weak in ("sha-1", "md5", "sha-224", ""):
        with pytest.raises(CertificateError, match="unsupported fingerprint algorithm"):
            fingerprint_digest(cert.der, weak)


def test_fingerprint_check_matches_any_listed_digest(cert):
    other = Certificate.generate("other")
    assert FingerprintCheck([("sha-256", cert.fingerprint())]).matches(cert.cert)
    assert FingerprintCheck([("sha-256", other.fingerprint()),
                             ("sha-512", cert.fingerprint("sha-512"))]).matches(cert.cert)
    assert not FingerprintCheck([("sha-256", other.fingerprint())]).matches(cert.cert)
    assert not FingerprintCheck([("sha-384", cert.fingerprint())]).matches(cert.cert)
    assert not FingerprintCheck([]).matches(cert.cert)
