"""A minimal WebDriver BiDi client for Debian's Firefox ESR (Playwright cannot drive it).

Used by the SDP interop tests (tests/sfu) and the cross-browser end-to-end test
(tests/browser). The recipe: `firefox-esr --headless
--remote-debugging-port=PORT --profile DIR`, then `session.new`, `browsingContext.navigate`
and `script.callFunction` over a WebSocket; no geckodriver.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import time

from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

FIREFOX_PREFS = """
user_pref("media.navigator.streams.fake", true);
user_pref("media.navigator.permission.disabled", true);
user_pref("media.peerconnection.ice.loopback", true);
user_pref("permissions.default.microphone", 1);
"""


def firefox_binary() -> str | None:
    return shutil.which("firefox-esr") or shutil.which("firefox")


class FirefoxPage:
    """One Firefox tab reached over WebDriver BiDi: navigate, and call JS functions.

    Arguments and results cross as JSON (results are ``JSON.stringify``-ed in the page), which
    is all the SDP tests need and avoids BiDi's remote-value encoding.
    """

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.url = url
        caps = self.call("session.new", {"capabilities": {}})["capabilities"]
        self.version: str = caps.get("browserVersion", "?")
        self.context = self.call("browsingContext.getTree", {})["contexts"][0]["context"]
        self.reload()

    def call(self, method: str, params: dict) -> dict:
        cid = next(self._ids)
        self._ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        while True:  # skip events; commands are answered in order of their id
            msg = json.loads(self._ws.recv(timeout=30))
            if msg.get("id") == cid:
                if msg.get("type") == "error":
                    raise RuntimeError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                return msg["result"]

    def reload(self) -> None:
        """Load the empty page again: a fresh JS realm, so no peer connection survives."""
        self.call("browsingContext.navigate",
                   {"context": self.context, "url": self.url, "wait": "complete"})

    def evaluate(self, function: str, arg: object = None) -> object:
        """Call the JS ``function`` (may be async) with one JSON argument; return its result."""
        wrapper = f"async (json) => JSON.stringify(await ({function})(JSON.parse(json)))"
        res = self.call("script.callFunction", {
            "functionDeclaration": wrapper,
            "arguments": [{"type": "string", "value": json.dumps(arg)}],
            "target": {"context": self.context},
            "awaitPromise": True,
        })
        if res.get("type") != "success":
            raise RuntimeError(f"page script failed: {res.get('exceptionDetails', res)}")
        return json.loads(res["result"]["value"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect_when_up(url: str) -> ClientConnection:
    """Firefox opens its BiDi port a second or two after start: retry until it answers."""
    for _ in range(150):
        try:
            return ws_connect(url, max_size=None)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("Firefox's BiDi endpoint did not come up")
