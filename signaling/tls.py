"""TLS for the page and the WebSocket: certificate files, or a cached self-signed one.

Why TLS at all: browsers give the microphone only to secure pages (https://, or localhost),
so any test with a second device needs HTTPS. On the internet that is a Let's Encrypt
certificate (docs/DEPLOY.md); on a LAN there is no public name to certify, so
``walkie serve --self-signed`` makes one for every name and address this machine answers to.

Why cache it: each device has to accept (or trust) the certificate once; a new one at every
start would ask again each time. It is kept under ``$XDG_STATE_HOME/walkie/tls`` (or
``~/.local/state/walkie/tls``) and reused while it covers the names asked for and has a
month left; otherwise a new one is made that also covers the old names, so moving between
networks does not keep invalidating it.

Why a leaf certificate and not a private CA: Firefox refuses a CA certificate used as a
server certificate, and a CA that a visitor installed could sign certificates for any site.
The SHA-256 fingerprint is printed so people can compare it with what their browser shows.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import re
import secrets
import socket
import ssl
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateError",
    "CertInfo",
    "default_cert_dir",
    "describe",
    "ensure_self_signed",
    "local_names",
    "read_certificate",
    "server_context",
]

CERT_FILE = "walkie-self-signed.pem"
KEY_FILE = "walkie-self-signed.key"
VALIDITY = datetime.timedelta(days=365)
#: A cached certificate with less time than this left is replaced at the next start.
RENEW_BEFORE = datetime.timedelta(days=30)
#: Names one certificate may carry; old names beyond it are dropped (newest kept).
MAX_NAMES = 48

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


class CertificateError(ValueError):
    """A file that is not a usable PEM certificate (or key)."""


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What people need to know about the certificate being served."""

    cert_path: Path
    key_path: Path
    fingerprint: str                  # "AB:CD:...", SHA-256 of the DER certificate
    names: tuple[str, ...]            # subjectAltName entries (DNS names and IP addresses)
    not_after: datetime.datetime      # UTC
    created: bool = False             # made by this call (False: reused from the cache)


def default_cert_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/walkie/tls``, else ``~/.local/state/walkie/tls``."""
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "walkie" / "tls"


def read_certificate(pem: bytes) -> tuple[str, tuple[str, ...], datetime.datetime]:
    """(fingerprint, subjectAltNames, not_after) of the first certificate in ``pem``."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except Exception as exc:  # noqa: BLE001 - cryptography raises several types here
        raise CertificateError(f"not a PEM certificate ({exc})") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [str(n) for n in san.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    except Exception as exc:  # noqa: BLE001 - a malformed extension
        raise CertificateError(f"unreadable subjectAltName ({exc})") from None
    return _fingerprint(cert), names, cert.not_valid_after_utc


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def local_names(*extra: str | None) -> list[str]:
    """Names a LAN visitor may type for this machine: localhost, its host name(s) and IPs.

    ``extra`` (the ``--host`` and ``--announced-ip`` values) come first; wildcard addresses
    (0.0.0.0, ::) and anything that is neither an address nor a DNS name are left out.
    """
    hostname = socket.gethostname()
    candidates: list[str | None] = [*extra, "localhost", "127.0.0.1", "::1"]
    if hostname and "." not in hostname:
        candidates += [hostname, f"{hostname}.local"]  # .local: the mDNS name on most LANs
    elif hostname:
        candidates.append(hostname)
    candidates += _interface_addresses()
    return _clean_names(candidates)


def _clean_names(candidates: Iterable[str | None]) -> list[str]:
    names: list[str] = []
    for raw in candidates:
        if not raw:
            continue
        name = raw.strip().strip("[]").lower()
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if not _DNS_NAME.fullmatch(name) or len(name) > 253:
                continue
        else:
            if address.is_unspecified or address.is_multicast:
                continue
            name = str(address)
        if name not in names:
            names.append(name)
    return names


def _interface_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, and its global IPv6 ones (Linux)."""
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, ifname in socket.if_nameindex():
                request = struct.pack("256s", ifname.encode()[:15])
                try:
                    reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(reply[20:24]))
    except OSError:
        pass
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "00" and len(fields[0]) == 32:  # scope: global
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def ensure_self_signed(
    directory: Path, names: Iterable[str], now: datetime.datetime | None = None
) -> CertInfo:
    """The cached self-signed certificate for ``names``, made (again) when needed."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    wanted = _clean_names(names)
    if not wanted:
        raise CertificateError("no usable name for the certificate")
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    old_names: tuple[str, ...] = ()
    try:
        fingerprint, old_names, not_after = read_certificate(cert_path.read_bytes())
        key_ok = key_path.stat().st_size > 0
    except (OSError, CertificateError):
        key_ok = False
    else:
        if key_ok and set(wanted) <= set(old_names) and not_after - now > RENEW_BEFORE:
            return CertInfo(cert_path, key_path, fingerprint, old_names, not_after)
    all_names = _clean_names([*wanted, *old_names])[:MAX_NAMES]
    return _generate(cert_path, key_path, all_names, now)


def _generate(cert_path: Path, key_path: Path, names: list[str], now: datetime.datetime
              ) -> CertInfo:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "walkie"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"walkie self-signed ({names[0]})"[:64]),
    ])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    not_after = now + VALIDITY
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate skewed clocks
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    not_after = cert.not_valid_after_utc
    return CertInfo(cert_path, key_path, _fingerprint(cert), tuple(names), not_after, True)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write a sibling file and rename it: a crash never leaves half a key behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def server_context(cert_path: Path | str, key_path: Path | str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+) loaded with the certificate chain and key.

    Calling ``load_cert_chain`` again on the same context (see ``walkie serve``'s SIGHUP)
    swaps the certificate for new connections without touching open ones.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def describe(cert_path: Path | str) -> tuple[str, tuple[str, ...], datetime.datetime]:
    """Fingerprint, names and expiry of a certificate file (for the startup line)."""
    try:
        data = Path(cert_path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {cert_path}: {exc.strerror}") from None
    return read_certificate(data)
