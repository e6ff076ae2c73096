"""A real signed join link in Chromium (issue 11): `walkie token` makes it, the page opens it.

The server runs with `--token-secret`; the links come from the real command (a subprocess,
and its `run` function for a link that expired an hour ago). Checked in the browser:

* the link admits its member under the token's name;
* the token never reaches the server in a URL or a `Referer`: the browser talks to the
  server through a recording TCP relay, and every byte it sent is searched for it (its
  request lines and headers are plain text; only the `join` message carries the token,
  inside a WebSocket frame, masked), and so is the server's debug log;
* an expired link and a tampered one stop the page with a clear sentence;
* a listen-only link has no Talk button, never calls getUserMedia, offers `recvonly`, is
  answered `a=sendonly` by the media plane, and hears the talker;
* a member of higher priority takes the floor from a talker, whose page says by whom.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from walkie import cli, tokencmd

from . import roomkit as rk
from .harness import REPO

pytestmark = pytest.mark.browser

SECRET = "e2e-token-secret-" + "s" * 32

# Counts the page's getUserMedia calls (installed before any script of the page runs).
COUNT_MIC_JS = """(() => {
  window.__micAsks = 0;
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const ask = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (...args) => { window.__micAsks += 1; return ask(...args); };
})();"""


class RecordingRelay:
    """A TCP relay on 127.0.0.1 in front of the server that keeps every byte the browser
    sends: what the server receives, request lines and headers included. Closed by close()."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self.lock:
                        self.sent += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def browser_sent(self) -> bytes:
        with self.lock:
            return bytes(self.sent)

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def walkie_token(url: str, name: str, *extra: str) -> str:
    """`walkie token --room ops --name NAME --ttl 1h ...`, run as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "walkie", "token", "--room", "ops", "--name", name, "--ttl", "1h",
         "--url", url + "/", *extra],
        cwd=REPO, env={**os.environ, "WALKIE_TOKEN_SECRET": SECRET},
        capture_output=True, text=True, timeout=60, check=True)
    (line,) = done.stdout.splitlines()
    return line


def expired_link(url: str) -> str:
    """The command's own `run`, issued an hour and a half ago with a 1 h TTL."""
    args: argparse.Namespace = cli.build_parser().parse_args(
        ["token", "--room", "ops", "--name", "Old", "--ttl", "1h", "--url", url + "/"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = tokencmd.run(args, {"WALKIE_TOKEN_SECRET": SECRET}, now=time.time() - 5400)
    assert status == 0
    return out.getvalue().strip()


def token_of(link: str) -> str:
    return link.split("#token=", 1)[1]


def tampered(link: str) -> str:
    """The same link with the name in its claims changed and the signature kept."""
    head, claims, signature = token_of(link).split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["name"] = "Mallory"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return link.split("#token=", 1)[0] + f"#token={head}.{forged}.{signature}"


class Frames:
    """What a page sends and receives on its WebSockets (only watched, never changed)."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: Any) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def one(self, kind: str, sent: bool) -> dict[str, Any]:
        found = [m for m in (self.sent if sent else self.received) if m.get("type") == kind]
        assert len(found) == 1, (kind, found)
        return found[0]


def open_link(context: Any, link: str, count_mic: bool = False) -> tuple[Any, Frames]:
    page = context.new_page()
    if count_mic:
        page.add_init_script(COUNT_MIC_JS)
    frames = Frames(page)
    page.goto(link)
    return page, frames


def sdp_lines(message: dict[str, Any]) -> list[str]:
    return message["sdp"].split("\r\n")


def wait_notice(page: Any) -> str:
    page.locator("#notice").wait_for(state="visible", timeout=15000)
    return page.locator("#notice-text").inner_text()


def test_a_signed_link_from_walkie_token_in_chromium(browser, server_factory) -> None:
    server = server_factory("--token-secret", SECRET, "--log-level", "debug")
    relay = RecordingRelay(server.port)  # the browser reaches the server only through it
    try:
        check_signed_links(browser, server, relay)
    finally:
        relay.close()


def check_signed_links(browser: Any, server: Any, relay: RecordingRelay) -> None:
    ann_link = walkie_token(relay.url, "Ann")
    lee_link = walkie_token(relay.url, "Lee", "--listen-only")
    boss_link = walkie_token(relay.url, "Boss", "--priority", "5")
    assert ann_link.startswith(f"{relay.url}/r/ops#token=")
    links = [ann_link, lee_link, boss_link, expired_link(relay.url)]
    links.append(tampered(ann_link))

    context = browser.new_context()
    try:
        # The link admits Ann under the token's name.
        ann, ann_frames = open_link(context, ann_link)
        rk.wait_ready(ann)
        assert rk.state(ann)["you"]["name"] == "Ann"
        assert ann_frames.one("join", sent=True) == {"type": "join", "room": "ops",
                                                     "token": token_of(ann_link)}

        # Listen-only: no Talk button, no mic, recvonly up, sendonly down, and it hears Ann.
        lee, lee_frames = open_link(context, lee_link, count_mic=True)
        rk.wait_ready(lee)
        rk.wait_members(lee, 2)
        assert rk.state(lee)["you"]["name"] == "Lee"
        assert lee.locator("#ptt").is_hidden()
        assert lee.locator("#ptt").get_attribute("data-state") == "listening"
        assert "listen only" in lee.locator("#self-status").inner_text()
        assert lee_frames.one("joined", sent=False)["permissions"] == {
            "listen_only": True, "priority": 0}
        offer, answer = lee_frames.one("offer", sent=True), lee_frames.one("answer", sent=False)
        assert "a=recvonly" in sdp_lines(offer) and "a=sendrecv" not in sdp_lines(offer)
        assert "a=sendonly" in sdp_lines(answer) and "a=sendrecv" not in sdp_lines(answer)
        rk.hold(ann)
        assert rk.wait_floor(ann, "talking") == "talking"
        rk.wait_talker(lee, "Ann")
        assert 430 <= rk.wait_tone(lee) <= 450
        stats = lee.evaluate("() => window.walkie.stats()")
        assert stats["packetsSent"] == 0 and stats["packetsReceived"] > 0
        assert lee.evaluate("() => window.__micAsks") == 0  # never asked for the mic

        # Priority: Boss (5) takes the floor from Ann (0), whose page says by whom.
        boss, _ = open_link(context, boss_link)
        rk.wait_ready(boss)
        rk.hold(boss)
        assert rk.wait_floor(boss, "talking") == "talking"
        assert rk.wait_floor(ann, "revoked") == "revoked"
        assert "Pre-empted by Boss" in ann.locator("#self-status").inner_text()
        assert ann.locator("#ptt-sub").inner_text() == "Pre-empted"
        rk.wait_talker(lee, "Boss")
        rk.let_go(ann)
        rk.let_go(boss)

        # An expired link and a tampered one: a clear sentence, and the page stops.
        old, _ = open_link(context, links[3])
        assert wait_notice(old) == "This link has expired. Ask whoever sent it for a new one."
        forged, _ = open_link(context, links[4])
        text = wait_notice(forged)
        assert text.startswith("This link does not let you in") and "signature" in text
        for page in (old, forged):
            assert page.evaluate("() => window.walkie.connection") == "failed"
        assert len(rk.state(lee)["members"]) == 3  # the refused links changed nothing
    finally:
        context.close()

    # No token ever reached the server in a URL or a Referer: not in any byte the browser
    # sent (the request lines and headers are plain text; the join's WebSocket frame is
    # masked), nor in the server's debug log.
    wire = relay.browser_sent()
    heads = re.findall(rb"^(?:GET|HEAD|POST) (\S+) HTTP/1\.1\r\n", wire, re.MULTILINE)
    # (The page is served with Referrer-Policy: no-referrer, so there should be none; a
    # Referer never holds a fragment anyway. Either way, none may hold a token.)
    referers = re.findall(rb"^Referer: (.*)\r$", wire, re.MULTILINE | re.IGNORECASE)
    assert b"/r/ops" in heads and b"/ws" in heads  # the page itself, and its WebSocket
    log = server.log()
    assert "joined room ops" in log  # the debug log is there
    for link in links:
        token = token_of(link).encode()
        assert token not in wire and token.split(b".")[2] not in wire
        assert not any(b"token" in head for head in heads)
        assert not any(token in ref for ref in referers)
        assert token.decode() not in log and token.split(b".")[2].decode() not in log


