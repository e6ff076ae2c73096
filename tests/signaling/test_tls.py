"""HTTPS/WSS: the self-signed certificate cache, serving over TLS, SIGHUP reload, the plain-HTTP
warning, and the WebSocket Origin check (a foreign page is refused).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from signaling import cli, tls
from signaling.origin import OriginError, OriginPolicy, format_origin, parse_host, parse_origin

REPO = Path(__file__).resolve().parents[2]
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


async def _ws_status(url: str, origin: str | None, **kwargs: object) -> int:
    """101 when the handshake succeeds (and a join works), else the HTTP status."""
    headers = {"Origin": origin} if origin else {}
    try:
        async with connect(url, additional_headers=headers, open_timeout=5, **kwargs) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_a_foreign_origin_is_refused(make_server, caplog) -> None:
    server = await make_server(allowed_origins=("https://intranet.example.org",))
    host, port = server.address
    url = f"ws://{host}:{port}/ws"
    assert await _ws_status(url, "http://evil.example") == 403
    assert "refused a WebSocket from origin 'http://evil.example'" in caplog.text
    assert await _ws_status(url, f"http://{host}:{port}") == 101  # the page's own origin
    assert await _ws_status(url, "https://intranet.example.org") == 101  # --allowed-origin
    assert await _ws_status(url, None) == 101  # not a browser: no Origin
    assert await _ws_status(url, "null") == 403


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
        assert await _ws_status(f"ws://{host}:{port}/ws", "http://evil.example") == 403
    assert caplog.text.count("refused a WebSocket") == 1


def test_a_bad_allowed_origin_stops_the_start() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        settings("--allowed-origin", "intranet.example.org")
    s = settings("--allowed-origin", "https://a.example", "--allowed-origin", "http://b:8080")
    assert s["allowed_origins"] == ("https://a.example", "http://b:8080")


def test_allowed_origin_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALKIE_ALLOWED_ORIGIN", "https://a.example,https://b.example")
    assert settings()["allowed_origins"] == ("https://a.example", "https://b.example")


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


# -- the command line and the running server ----------------------------------------------------

def settings(*argv: str) -> dict[str, object]:
    return cli._settings(cli.build_parser().parse_args(["serve", *argv]))


def test_tls_flags() -> None:
    s = settings("--cert", "c.pem", "--key", "k.pem")
    assert (s["tls_cert"], s["tls_key"]) == ("c.pem", "k.pem")
    s = settings("--self-signed", "--cert-dir", "/tmp/x")
    assert s["self_signed"] is True and s["cert_dir"] == "/tmp/x"
    with pytest.raises(ValueError, match="exclude each other"):
        settings("--self-signed", "--cert", "c.pem", "--key", "k.pem")
    with pytest.raises(ValueError, match="go together"):
        settings("--cert", "c.pem")


class Serve:
    """``python -m signaling serve`` as a subprocess; output goes to files we can read."""

    def __init__(self, tmp: Path, *argv: str) -> None:
        self.out_path = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err_path = self.out_path.with_suffix(".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "signaling", "serve", "--port", "0",
                 "--udp-port", "0", *argv],
                cwd=REPO, stdout=out, stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        self.url = self._wait_for(r"open (https?://[^/\s]+)/").group(1)

    def _wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the output:\n{self.output()}")

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def make(*argv: str) -> Serve:
        s = Serve(tmp_path, *argv)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def _served_fingerprint(url: str) -> str:
    """The SHA-256 fingerprint of the certificate the server presents."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":").upper()


def test_self_signed_serves_https_and_wss(serve, tmp_path: Path) -> None:
    cert_dir = tmp_path / "tls"
    server = serve("--self-signed", "--cert-dir", str(cert_dir))
    assert server.url.startswith("https://127.0.0.1:")
    printed = server._wait_for(r"SHA-256 ([0-9A-F:]{95})").group(1)
    assert printed == _served_fingerprint(server.url)
    assert "self-signed certificate (made)" in server.output()
    cert_path = cert_dir / tls.CERT_FILE
    assert str(cert_path) in server.output()
    # A client that trusts exactly this certificate gets the page and a WSS session.
    trusted = ssl.create_default_context(cafile=str(cert_path))
    with urllib.request.urlopen(server.url + "/healthz", context=trusted, timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ok"
    wss = server.url.replace("https://", "wss://") + "/ws"
    assert asyncio.run(_ws_status(wss, server.url, ssl=trusted)) == 101
    assert asyncio.run(_ws_status(wss, "https://evil.example", ssl=trusted)) == 403
    assert server.stop() == 0
    # The next start reuses it: devices that accepted it are not asked again.
    again = serve("--self-signed", "--cert-dir", str(cert_dir))
    assert "self-signed certificate (reused)" in again._wait_for("reused").string
    assert _served_fingerprint(again.url) == printed


def test_sighup_reloads_the_certificate(serve, tmp_path: Path) -> None:
    first = tls.ensure_self_signed(tmp_path / "a", ["127.0.0.1"])
    live_cert, live_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    live_cert.write_bytes(first.cert_path.read_bytes())
    live_key.write_bytes(first.key_path.read_bytes())
    server = serve("--cert", str(live_cert), "--key", str(live_key))
    assert _served_fingerprint(server.url) == first.fingerprint
    assert "SIGHUP reloads it" in server.output()
    # A renewal: new files in place, then SIGHUP (what certbot's deploy hook does).
    second = tls.ensure_self_signed(tmp_path / "b", ["127.0.0.1"])
    live_cert.write_bytes(second.cert_path.read_bytes())
    live_key.write_bytes(second.key_path.read_bytes())
    server.proc.send_signal(signal.SIGHUP)
    server._wait_for("reloaded the TLS certificate")
    assert _served_fingerprint(server.url) == second.fingerprint
    # A broken file does not take the server down: it keeps the certificate it has.
    live_cert.write_text("broken")
    server.proc.send_signal(signal.SIGHUP)
    server._wait_for("certificate reload failed")
    assert _served_fingerprint(server.url) == second.fingerprint
    assert server.stop() == 0


def test_sighup_without_tls_does_not_stop_the_server(serve) -> None:
    server = serve()
    server.proc.send_signal(signal.SIGHUP)  # `systemctl reload` on a plain-HTTP setup
    server._wait_for("no certificate to reload")
    assert server.proc.poll() is None
    assert server.stop() == 0


def test_plain_http_on_a_lan_address_warns(serve) -> None:
    server = serve("--host", "0.0.0.0", "--udp-host", "127.0.0.1")
    warning = server._wait_for(r"WARNING: plain HTTP on 0\.0\.0\.0[^\n]*").group(0)
    assert "refuse the microphone" in warning and "--self-signed" in warning
    local = serve()  # 127.0.0.1: browsers allow the mic on localhost, no warning
    assert "WARNING" not in local.output()


def test_a_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signaling", "serve", "--port", "0", "--udp-port", "0",
         "--cert", str(tmp_path / "none.pem"), "--key", str(tmp_path / "none.key")],
        cwd=REPO, capture_output=True, text=True, timeout=20,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr
