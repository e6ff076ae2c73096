"""The page, the WebSocket and the audio over HTTPS/WSS with ``walkie serve --self-signed``.

Chromium is told to accept the self-signed certificate (``ignore_https_errors``), as a
person does once by clicking through the warning. Then the page must be a secure context,
talk ``wss://``, and carry audio between two pages. A page from a foreign origin that opens a
WebSocket to the server must be refused by the server's Origin check.
"""

from __future__ import annotations

import re
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import roomkit as rk
from .harness import REPO, Server
from tests.blank_page import blank_page

pytestmark = pytest.mark.browser


def start_https_server(tmp_path: Path) -> Server:
    """harness.start_server for --self-signed (its health check cannot verify this cert)."""
    log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "walkie", "serve", "--host", "127.0.0.1",
             "--port", "0", "--udp-port", "0", "--self-signed",
             "--cert-dir", str(tmp_path / "tls")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log_file, text=True,
        )
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"open (https://[^/\s]+)/", line)
        url = match.group(1) if match else None
    if url is None:
        proc.kill()
        proc.wait(timeout=5)
        raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    trusted = ssl.create_default_context(cafile=str(tmp_path / "tls" / "walkie-self-signed.pem"))
    with urllib.request.urlopen(url + "/healthz", context=trusted, timeout=5) as resp:
        assert resp.status == 200
    return Server(proc, url, log_path)


@pytest.fixture
def https_server(tmp_path: Path, browser) -> Iterator[Server]:
    server = start_https_server(tmp_path)
    yield server
    server.stop()


def test_page_websocket_and_audio_over_https(browser, https_server: Server) -> None:
    context = browser.new_context(ignore_https_errors=True)
    sockets: list[str] = []
    room = "tls-" + secrets.token_hex(3)
    alice = context.new_page()
    alice.on("websocket", lambda ws: sockets.append(ws.url))
    alice.goto(https_server.room_url(room, "Alice"))
    bob = rk.open_room(context, https_server.room_url(room, "Bob"))
    for page in (alice, bob):
        rk.wait_ready(page)
        rk.wait_members(page, 2)
    assert alice.evaluate("() => [location.protocol, window.isSecureContext]") == ["https:", True]
    assert sockets and all(url.startswith("wss://") for url in sockets)

    rk.hold(alice)
    rk.wait_talker(bob, "Alice")
    assert 430 <= rk.wait_tone(bob) <= 450
    rk.let_go(alice)
    context.close()


# What a page of another site runs to reach walkie in its visitor's name.
EVIL_JS = """async (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); resolve("open"); };
  ws.onerror = () => resolve("refused");
  setTimeout(() => resolve("timeout"), 5000);
})"""


@pytest.fixture
def other_site() -> Iterator[str]:
    """Another web site on this machine (another port: another origin), serving one page.

    It is a real server on loopback rather than a Playwright-routed name because Chromium's
    Local Network Access blocks a public site's socket to 127.0.0.1 before it reaches us;
    a local site is the case only walkie's own check can stop.
    """
    with blank_page("another site") as url:
        yield url


def test_a_page_from_another_origin_is_refused(browser, https_server: Server,
                                               other_site: str) -> None:
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(other_site + "/")
    wss = https_server.url.replace("https://", "wss://") + "/ws"
    assert page.evaluate(EVIL_JS, wss) == "refused"
    expected = f"refused a WebSocket from origin '{other_site}'"
    deadline = time.monotonic() + 5
    while expected not in https_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert expected in https_server.log()
    # The server's own page still gets its socket (same browser, same moment).
    own = context.new_page()
    own.goto(https_server.url + "/")
    assert own.evaluate(EVIL_JS, wss) == "open"
    context.close()
