"""``walkie serve`` over HTTPS: self-signed, certificate files, SIGHUP reload, and the warning
for plain HTTP where other devices would be refused the microphone."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from signaling import tls

from tests.ws_status import ws_status

from .serverproc import walkie


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
    printed = server.wait_for(r"SHA-256 ([0-9A-F:]{95})").group(1)
    assert printed == _served_fingerprint(server.url)
    assert "self-signed certificate (made)" in server.output()
    cert_path = cert_dir / tls.CERT_FILE
    assert str(cert_path) in server.output()
    # A client that trusts exactly this certificate gets the page and a WSS session.
    trusted = ssl.create_default_context(cafile=str(cert_path))
    assert server.healthz(trusted)["status"] == "ok"
    wss = server.url.replace("https://", "wss://") + "/ws"
    assert asyncio.run(ws_status(wss, server.url, ssl=trusted)) == 101
    assert asyncio.run(ws_status(wss, "https://evil.example", ssl=trusted)) == 403
    assert server.stop() == 0
    # The next start reuses it: devices that accepted it are not asked again.
    again = serve("--self-signed", "--cert-dir", str(cert_dir))
    assert "self-signed certificate (reused)" in again.wait_for("reused").string
    assert _served_fingerprint(again.url) == printed


def test_certificate_files_and_sighup_reload(serve, tmp_path: Path) -> None:
    first = tls.ensure_self_signed(tmp_path / "a", ["127.0.0.1"])
    live_cert, live_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    live_cert.write_bytes(first.cert_path.read_bytes())
    live_key.write_bytes(first.key_path.read_bytes())
    server = serve("--cert", str(live_cert), "--key", str(live_key))
    assert server.url.startswith("https://127.0.0.1:")
    assert _served_fingerprint(server.url) == first.fingerprint
    assert "SIGHUP reloads it" in server.output()
    # A renewal: new files in place, then SIGHUP (what certbot's deploy hook does).
    second = tls.ensure_self_signed(tmp_path / "b", ["127.0.0.1"])
    live_cert.write_bytes(second.cert_path.read_bytes())
    live_key.write_bytes(second.key_path.read_bytes())
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for("reloaded the TLS certificate")
    assert _served_fingerprint(server.url) == second.fingerprint
    # A broken file does not take the server down: it keeps the certificate it has.
    live_cert.write_text("broken")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for("certificate reload failed")
    assert _served_fingerprint(server.url) == second.fingerprint
    assert server.stop() == 0


def test_sighup_without_tls_does_not_stop_the_server(serve) -> None:
    server = serve()
    server.proc.send_signal(signal.SIGHUP)  # `systemctl reload` on a plain-HTTP setup
    server.wait_for("no certificate to reload")
    assert server.proc.poll() is None
    assert server.stop() == 0


def test_plain_http_on_a_lan_address_warns(serve) -> None:
    server = serve("--host", "0.0.0.0", "--udp-host", "127.0.0.1")
    warning = server.wait_for(r"WARNING: plain HTTP on 0\.0\.0\.0[^\n]*").group(0)
    assert "refuse the microphone" in warning and "--self-signed" in warning
    assert server.url.startswith("http://127.0.0.1:")  # the announced address, not 0.0.0.0
    local = serve()  # 127.0.0.1: browsers allow the mic on localhost, no warning
    assert "WARNING" not in local.output()


def test_a_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    result = walkie("serve", "--port", "0", "--udp-port", "0",
                    "--cert", str(tmp_path / "none.pem"), "--key", str(tmp_path / "none.key"))
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr
