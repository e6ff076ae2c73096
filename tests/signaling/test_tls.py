"""HTTPS/WSS: the self-signed certificate cache and the WebSocket Origin check (a foreign page
is refused). Serving over TLS and SIGHUP reload are ``walkie serve``'s: tests/walkie.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from signaling import tls
from signaling.origin import OriginError, OriginPolicy, format_origin, parse_host, parse_origin
from tests.ws_status import ws_status

UTC = datetime.timezone.utc


# -- origins -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://example.org", ("http", "example.org", 80)),
        ("HTTPS://Example.ORG", ("https", "example.org", 443)),
        ("https://example.org:8443/", ("https", "example.org", 8443)),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
        ("http://[::1]:8080", ("http", "::1", 8080)),
        ("https://[2001:DB8:0::1]", ("https", "2001:db8::1", 443)),
    ],
)
def test_parse_origin(text: str, expected: tuple[str, str, int]) -> None:
    assert parse_origin(text) == expected


@pytest.mark.parametrize(
    "text",
    ["null", "example.org", "ftp://example.org", "https://", "https://example.org/path",
     "https://user@example.org", "https://example.org?x", "https://example.org:0",
     "https://example.org:99999", "https://[::1", "https://[zz]", "https://exa mple.org",
     "https://example.org:80:80"],
)
def test_bad_origins(text: str) -> None:
    with pytest.raises(OriginError):
        parse_origin(text)


@given(st.text(max_size=60))
def test_parse_origin_raises_only_its_own_error(text: str) -> None:
    try:
        origin = parse_origin(text)
    except OriginError:
        return
    assert parse_origin(format_origin(origin)) == origin


@given(st.text(max_size=40), st.integers(1, 65535))
def test_parse_host_raises_only_its_own_error(text: str, port: int) -> None:
    try:
        parse_host(text, port)
    except OriginError:
        pass


def test_origin_policy() -> None:
    policy = OriginPolicy(["https://Intranet.example.org/", "http://[::1]:8080"])
    assert policy.allowed == ("http://[::1]:8080", "https://intranet.example.org")
    assert policy.allows(None, None)  # not a browser
    assert policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080")  # same origin
    assert policy.allows("https://walkie.example.org", "walkie.example.org")  # default port
    assert policy.allows("https://walkie.example.org", "Walkie.Example.org:443")
    assert policy.allows("https://intranet.example.org:443", "walkie.example.org")  # listed
    assert not policy.allows("http://evil.example", "127.0.0.1:8080")
    assert not policy.allows("http://127.0.0.1:8081", "127.0.0.1:8080")  # another port
    assert not policy.allows("https://walkie.example.org", "walkie.example.org:8443")
    assert not policy.allows("null", "127.0.0.1:8080")  # sandboxed frame, file://
    assert not policy.allows("http://127.0.0.1:8080", None)
    assert not policy.allows("http://127.0.0.1:8080", "bad host!")
    with pytest.raises(OriginError):
        OriginPolicy(["intranet.example.org"])


async def test_a_foreign_origin_is_refused(make_server, caplog) -> None:
    server = await make_server(allowed_origins=("https://intranet.example.org",))
    host, port = server.address
    url = f"ws://{host}:{port}/ws"
    assert await ws_status(url, "http://evil.example") == 403
    assert "refused a WebSocket from origin 'http://evil.example'" in caplog.text
    assert await ws_status(url, f"http://{host}:{port}") == 101  # the page's own origin
    assert await ws_status(url, "https://intranet.example.org") == 101  # --allowed-origin
    assert await ws_status(url, None) == 101  # not a browser: no Origin
    assert await ws_status(url, "null") == 403


async def test_two_origin_headers_are_refused(make_server) -> None:
    server = await make_server()
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n"
        "Origin: http://evil.example\r\n\r\n".encode())
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1] == b"403"


async def test_refusals_are_logged_sparingly(make_server, caplog) -> None:
    server = await make_server()
    host, port = server.address
    for _ in range(5):
        assert await ws_status(f"ws://{host}:{port}/ws", "http://evil.example") == 403
    assert caplog.text.count("refused a WebSocket") == 1


# -- the self-signed certificate -----------------------------------------------------------------

def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _san(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*ext.get_values_for_type(x509.DNSName),
            *(str(a) for a in ext.get_values_for_type(x509.IPAddress))}


def test_self_signed_is_made_once_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "state" / "tls"
    info = tls.ensure_self_signed(cache, ["localhost", "127.0.0.1", "192.0.2.10", "::1"])
    assert info.created
    cert = _cert(info.cert_path)
    assert _san(cert) == {"localhost", "127.0.0.1", "192.0.2.10", "::1"}
    ip_entries = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.0.2.10") in ip_entries.get_values_for_type(x509.IPAddress)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert info.fingerprint == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert stat.S_IMODE(info.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) & 0o077 == 0  # only its owner can list it
    # Same names (or fewer): the cached one, byte for byte.
    again = tls.ensure_self_signed(cache, ["127.0.0.1"])
    assert not again.created and again.fingerprint == info.fingerprint
    # The key and the certificate belong together.
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        info.cert_path, info.key_path)


def test_a_new_name_makes_a_certificate_covering_old_and_new(tmp_path: Path) -> None:
    first = tls.ensure_self_signed(tmp_path, ["localhost", "192.0.2.10"])
    second = tls.ensure_self_signed(tmp_path, ["198.51.100.4"])
    assert second.created and second.fingerprint != first.fingerprint
    assert _san(_cert(second.cert_path)) == {"198.51.100.4", "localhost", "192.0.2.10"}


def test_a_certificate_near_its_end_is_replaced(tmp_path: Path) -> None:
    now = datetime.datetime.now(UTC)
    old = tls.ensure_self_signed(tmp_path, ["localhost"], now=now - datetime.timedelta(days=340))
    fresh = tls.ensure_self_signed(tmp_path, ["localhost"], now=now)
    assert fresh.created and fresh.not_after > old.not_after


def test_a_damaged_cache_is_replaced(tmp_path: Path) -> None:
    (tmp_path / tls.CERT_FILE).write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    (tmp_path / tls.KEY_FILE).write_bytes(b"")
    info = tls.ensure_self_signed(tmp_path, ["localhost"])
    assert info.created and _san(_cert(info.cert_path)) == {"localhost"}


def test_names_are_cleaned() -> None:
    names = tls.local_names("0.0.0.0", "203.0.113.9", "[::1]", "not a name", "Walkie.LAN", None)
    assert names[:2] == ["203.0.113.9", "::1"]
    assert "walkie.lan" in names and "localhost" in names and "127.0.0.1" in names
    assert "0.0.0.0" not in names and "not a name" not in names
    with pytest.raises(tls.CertificateError):
        tls.ensure_self_signed(Path("/nonexistent"), ["0.0.0.0", "::"])


def test_default_cert_dir() -> None:
    assert tls.default_cert_dir({"XDG_STATE_HOME": "/srv/state"}) == Path(
        "/srv/state/walkie/tls")
    assert tls.default_cert_dir({}) == Path.home() / ".local" / "state" / "walkie" / "tls"


@given(st.binary(max_size=300))
def test_read_certificate_raises_only_its_own_error(data: bytes) -> None:
    for blob in (data, b"-----BEGIN CERTIFICATE-----\n" + data + b"\n-----END CERTIFICATE-----\n"):
        try:
            tls.read_certificate(blob)
        except tls.CertificateError:
            pass
