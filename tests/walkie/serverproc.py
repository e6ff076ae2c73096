"""``python -m walkie serve`` as a subprocess, as an operator starts it.

Output goes to files (not pipes), so a test can read everything printed so far at any time
and a chatty server can never block on a full pipe. Ports are ephemeral; the URL is read
back from the ``walkie: open ...`` line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[2]
#: The environment of every walkie subprocess: the repo importable, no WALKIE_ setting
#: inherited from whoever runs the tests.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("WALKIE_")}
BASE_ENV["PYTHONPATH"] = str(REPO)


def walkie(*argv: str, env: dict[str, str] | None = None, timeout: float = 30
           ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m walkie ARGV`` to completion."""
    return subprocess.run([sys.executable, "-m", "walkie", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**BASE_ENV, **(env or {})})


class Serve:
    """A running ``walkie serve --port 0 --udp-port 0 ARGV``."""

    def __init__(self, tmp: Path, *argv: str, env: dict[str, str] | None = None) -> None:
        self.out_path = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err_path = self.out_path.with_suffix(".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "walkie", "serve", "--port", "0",
                 "--udp-port", "0", *argv],
                cwd=REPO, stdout=out, stderr=err, env={**BASE_ENV, **(env or {})},
            )
        try:
            self.url = self.wait_for(r"open (https?://[^/\s]+)/").group(1)
        except AssertionError:
            self.stop()
            raise

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first match of ``pattern`` in the output, once it is there."""
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

    def healthz(self, context: ssl.SSLContext | None = None) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/healthz", timeout=5, context=context) as resp:
            return json.loads(resp.read())

    def stop(self) -> int:
        """SIGTERM (by PID), then the exit status; killed if it does not stop in 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)
