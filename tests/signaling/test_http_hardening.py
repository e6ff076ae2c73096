"""HTTP hardening: only the Host names the server serves (DNS rebinding), and the headers that
restrict what a browser does with our pages (CSP, frame-ancestors, Permissions-Policy).

Over the real server with raw HTTP/1.1, so that the Host header is exactly what a rebinding
attacker's page makes the browser send; plus the pure policy (signaling/hosts.py,
signaling/headers.py) on its edge cases.
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.headers import content_security_policy, security_headers, websocket_sources
from signaling.hosts import HostPolicy, HostRefused, parse_server_name
from signaling.server import SignalingServer

from .conftest import TIMEOUT, ServerFactory, http

PATHS = ["/", "/r/ops", "/static/app.js", "/static/style.css", "/healthz", "/nope"]
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def request(path: str, host: str | None, extra: str = "") -> str:
    host_line = "" if host is None else f"Host: {host}\r\n"
    return f"GET {path} HTTP/1.1\r\n{host_line}{extra}\r\n"


async def status_line(server: SignalingServer, raw: str) -> int:
    """The status of a request whose answer may be a 101 (the socket then stays open)."""
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(raw.encode("latin-1"))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.close()
    return int(line.split()[1])


# -- the Host check over the real server -------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
async def test_a_rebound_name_is_refused_on_every_path(server: SignalingServer, path: str) -> None:
    port = server.address[1]
    status, headers, body = await http(server, request(path, f"evil.example:{port}"))
    assert status == 421
    assert b"does not answer to the name 'evil.example'" in body and b"--server-name" in body
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


async def test_the_rebinding_websocket_is_refused(server: SignalingServer, caplog) -> None:
    """The attack itself: the attacker's page (now resolving to 127.0.0.1) opens /ws with
    its own origin, which matches the Host it sends, so the Origin check alone lets it in."""
    port = server.address[1]
    attack = request("/ws", f"rebind.example:{port}",
                     UPGRADE + f"Origin: http://rebind.example:{port}\r\n")
    assert await status_line(server, attack) == 421
    assert "refused Host 'rebind.example'; if that name is yours, add --server-name" in caplog.text
    own = request("/ws", f"127.0.0.1:{port}", UPGRADE + f"Origin: http://127.0.0.1:{port}\r\n")
    assert await status_line(server, own) == 101


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "[::1]:{port}", "[0:0::1]", "203.0.113.9:443",
    "localhost", "LOCALHOST:{port}", "localhost.:{port}",
])
async def test_addresses_and_localhost_are_served(server: SignalingServer, host: str) -> None:
    status, _, _ = await http(server, request("/", host.format(port=server.address[1])))
    assert status == 200


@pytest.mark.parametrize("host,status", [
    ("walkie.example.org", 200), ("Walkie.Example.ORG.:8443", 200), ("a.rooms.example", 200),
    ("b.rooms.example:443", 200), ("a.b.rooms.example", 421), ("rooms.example", 421),
    ("walkie.example.org.evil.example", 421), ("evilwalkie.example.org", 421),
    ("localhost.evil.example", 421), ("127.0.0.1.nip.io", 421),
])
async def test_configured_names(make_server: ServerFactory, host: str, status: int) -> None:
    server = await make_server(server_names=("walkie.example.org", "*.rooms.example"))
    assert (await http(server, request("/healthz", host)))[0] == status


@pytest.mark.parametrize("raw", [
    request("/", None),
    request("/", "127.0.0.1", "Host: evil.example\r\n"),
    request("/", "bad host"),
    request("/", "[fe80::1%25eth0]:80"),
    request("/", "[::1"),
    request("/", "127.0.0.1:99999"),
    request("/", "a..b"),
], ids=["none", "two", "space", "zone-id", "bracket", "port", "empty-label"])
async def test_a_missing_or_malformed_host_is_a_bad_request(server: SignalingServer,
                                                           raw: str) -> None:
    status, _, body = await http(server, raw)
    assert status == 400 and b"Host" in body


# -- the headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/r/ops", "/static/app.js", "/healthz", "/nope"])
async def test_pages_and_files_carry_the_browser_policy(server: SignalingServer,
                                                        path: str) -> None:
    port = server.address[1]
    status, headers, _ = await http(server, request(path, f"127.0.0.1:{port}"))
    assert status in (200, 404)
    csp = [d.strip() for d in headers["content-security-policy"].split(";")]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    assert f"connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port}" in csp
    assert not any("unsafe" in d or "blob:" in d or "data:" in d for d in csp)
    assert headers["permissions-policy"].startswith("microphone=(self), camera=()")
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"


async def test_refused_origins_carry_the_policy_too(server: SignalingServer) -> None:
    port = server.address[1]
    raw = request("/ws", f"127.0.0.1:{port}", UPGRADE + "Origin: http://evil.example\r\n")
    status, headers, _ = await http(server, raw)
    assert status == 403 and "frame-ancestors 'none'" in headers["content-security-policy"]


def test_the_websocket_source_follows_the_host_and_scheme() -> None:
    assert websocket_sources("walkie.example.org", tls=True) == (
        "'self'", "wss://walkie.example.org")
    # Plain HTTP may sit behind a TLS-terminating proxy: the page is then https (wss).
    assert websocket_sources("localhost:8080", tls=False) == (
        "'self'", "ws://localhost:8080", "wss://localhost:8080")
    # Not writable as a CSP host-source: 'self' covers the socket in CSP 3 browsers.
    for authority in ("[::1]:8080", "[2001:db8::1]", "localhost.:8080", "my_host", None):
        assert websocket_sources(authority, tls=False) == ("'self'",)
    assert "connect-src 'self';" in content_security_policy(None, tls=True)
    assert dict(security_headers("a.example", tls=True))["Permissions-Policy"].startswith(
        "microphone=(self)")


# -- the pure Host policy ----------------------------------------------------------------------

def test_the_policy_canonicalises_what_it_accepts() -> None:
    policy = HostPolicy(["Walkie.Example.org.", "*.Rooms.Example"])
    assert policy.names == ("*.rooms.example", "localhost", "walkie.example.org")
    assert policy.check(["WALKIE.example.org:8443"]) == "walkie.example.org:8443"
    assert policy.check(["[0:0::1]:80"]) == "[::1]:80"
    assert policy.check(["x.rooms.example."]) == "x.rooms.example."
    assert policy.check(["10.1.2.3"]) == "10.1.2.3"
    with pytest.raises(HostRefused) as refused:
        policy.check(["x.y.rooms.example"])
    assert (refused.value.status, refused.value.reason) == (421, "Misdirected Request")
    assert refused.value.host == "x.y.rooms.example"
    with pytest.raises(HostRefused) as refused:
        policy.check([])
    assert refused.value.status == 400 and refused.value.host is None


@pytest.mark.parametrize("text", ["", "*", "*.", "http://a.example", "a.example:443",
                                  "a.example/x", "a b", "a..b", "*.*.a", "a.*.b", "-a.example"])
def test_bad_server_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a host name"):
        parse_server_name(text)


def test_server_names_accept_addresses_and_trailing_dots() -> None:
    assert parse_server_name("192.0.2.1") == "192.0.2.1"
    assert parse_server_name("[2001:DB8::1]") == "2001:db8::1"
    assert parse_server_name(" Walkie.Example.ORG. ") == "walkie.example.org"
