"""Harness for the browser tests: the real walkie server, Debian's Chromium, a test tone.

Why the real server: the page is only correct if it talks the real protocol to the real
signaling + media plane, so nothing here imitates them. The server runs as a subprocess on
127.0.0.1 with an ephemeral port (read back from its "walkie: open http://..." line) and is
killed by PID.

Chromium gets exactly the flags of tests/chromium.py: a fake mic that plays a 440 Hz
WAV file, no permission prompt, loopback ICE, autoplay allowed. These tests must run in a
loopback-only network namespace (ci/test does that); if other interfaces are visible they
skip rather than let a browser near a real network.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from tests.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: F401 - re-exported to the tests here

REPO = Path(__file__).resolve().parents[2]
TONE_HZ = 440


def loopback_only() -> bool:
    """True when the only network interface is loopback (a fresh `unshare -n` namespace)."""
    return all(name == "lo" for _, name in socket.if_nameindex())


def chromium_skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; ci/test does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed"
    if not loopback_only() and os.environ.get("WALKIE_BROWSER_ANY_NETWORK") != "1":
        return (
            "browser tests run only in a loopback-only network namespace: use ci/test, or "
            "unshare -n sh -c 'ip link set lo up; ip addr add 127.0.0.2/8 dev lo; "
            "python -m pytest -q tests/browser'"
        )
    return None


def write_tone(path: Path, hz: int = TONE_HZ, seconds: float = 5.0) -> Path:
    """A 48 kHz mono 16-bit sine WAV at half scale; Chromium's fake mic loops it.

    Made with sox when it exists, else written directly (the same samples either way).
    """
    sox = shutil.which("sox")
    if sox:
        subprocess.run(
            [sox, "-n", "-r", "48000", "-c", "1", "-b", "16", str(path),
             "synth", str(seconds), "sine", str(hz), "vol", "0.5"],
            check=True, capture_output=True, timeout=30,
        )
        return path
    rate = 48000
    frames = b"".join(
        struct.pack("<h", int(16383 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


@dataclass
class Server:
    """A running `python -m walkie serve` subprocess."""

    proc: subprocess.Popen[str]
    url: str  # "http://127.0.0.1:PORT"
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def room_url(self, room: str, name: str | None = None, raw: bool = True) -> str:
        from urllib.parse import urlencode

        query = {}
        if name is not None:
            query["name"] = name
        if raw:
            query["raw"] = "1"
        return f"{self.url}/r/{room}" + (f"?{urlencode(query)}" if query else "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthz(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as resp:
            return json.loads(resp.read())

    def is_parent_of(self, pid: int) -> bool:
        """True when `pid` is a running child of this server process (from /proc), so a
        test can signal a process it started, by PID, never one that merely has that name."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        return state != "Z" and int(ppid) == self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # by PID: SIGTERM, the server shuts down cleanly
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(log_dir: Path, *extra: str, www_copy: Path | None = None) -> Server:
    """Start the real server on 127.0.0.1 (ephemeral HTTP and UDP ports) and wait for it.

    ``www_copy``: serve the page from this copy of www/ (a directory named ``www``, found
    first on the server's import path), for tests that change the page's files.
    """
    log_path = log_dir / f"server-{time.monotonic_ns()}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed with the process below
    cwd, env = REPO, None
    if www_copy is not None:
        cwd = www_copy.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(www_copy.parent), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "walkie", "serve", "--host", "127.0.0.1",
         "--port", "0", "--udp-port", "0", *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True,
    )
    log_file.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"open (https?://[^/\s]+)/", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait(timeout=5)
        raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        assert resp.status == 200
    return Server(proc, url, log_path)
