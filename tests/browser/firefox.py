"""Debian's Firefox ESR for the browser tests: a PulseAudio null sink, a profile, a BiDi tab.

Why this exists: Playwright cannot drive Debian's Firefox (it needs its own patched build), so
the tab is reached over WebDriver BiDi directly (tests/firefox_bidi.py has the client;
this module reuses it). Headless Firefox has no audio output of its own, and without one its
``AudioContext`` never runs and remote ``<audio>`` never plays, so a PulseAudio daemon with a
null sink is started for it and handed over in ``PULSE_SERVER``. Every process here is started
and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.firefox_bidi import (
    FIREFOX_PREFS,
    FirefoxPage,
    connect_when_up,
    firefox_binary,
    free_port,
)

from . import roomkit as rk
from .harness import loopback_only

# On top of tests/firefox_bidi.py's FIREFOX_PREFS (fake 1 kHz mic, no permission prompt, loopback ICE,
# microphone allowed): let the remote <audio> and the AudioContext start without a user
# gesture, as Chromium's --autoplay-policy=no-user-gesture-required does for its tests; and
# keep a test browser from reaching for updates, telemetry or a first-run page.
TEST_PREFS = FIREFOX_PREFS + """
user_pref("media.autoplay.default", 0);
user_pref("media.autoplay.block-webaudio", false);
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
"""


def firefox_skip_reason() -> str | None:
    """Why the Firefox tests cannot run here, or None when they can."""
    if firefox_binary() is None:
        return "firefox-esr is missing (apt-get install firefox-esr)"
    if shutil.which("pulseaudio") is None:
        return "pulseaudio is missing (apt-get install pulseaudio): headless Firefox needs an audio output"
    if not loopback_only() and os.environ.get("WALKIE_BROWSER_ANY_NETWORK") != "1":
        return (
            "browser tests run only in a loopback-only network namespace: use ci/test, or "
            "unshare -n sh -c 'ip link set lo up; ip addr add 127.0.0.2/8 dev lo; "
            "python -m pytest -q tests/browser/test_firefox_e2e.py'"
        )
    return None


def _stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@contextlib.contextmanager
def pulseaudio_null_sink(workdir: Path) -> Iterator[str]:
    """Run a private PulseAudio with one null sink; yield its PULSE_SERVER value.

    Private on purpose: its own runtime dir, home and socket under ``workdir``, anonymous auth,
    no D-Bus, no autospawn, so it neither finds nor disturbs any other sound server.
    """
    runtime = workdir / "pulse-run"
    home = workdir / "pulse-home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    socket_path = runtime / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(home)}
    env.pop("PULSE_SERVER", None)
    log = open(workdir / "pulseaudio.log", "wb")  # noqa: SIM115 - closed right below
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         "--disallow-exit", "--log-target=stderr",
         "-L", "module-null-sink sink_name=walkie_null",
         "-L", f"module-native-protocol-unix socket={socket_path} auth-anonymous=1"],
        env=env, stdout=log, stderr=log,
    )
    log.close()
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "pulseaudio did not start:\n"
                    + (workdir / "pulseaudio.log").read_text(errors="replace")
                )
            time.sleep(0.05)
        yield f"unix:{socket_path}"
    finally:
        _stop(proc)


class FirefoxTab(FirefoxPage):
    """A BiDi tab with the small waits and gestures the e2e test needs."""

    def wait_for(self, js: str, arg: object = None, timeout_s: float = 15.0, what: str = "",
                 check: Callable[[Any], bool] = bool) -> Any:
        """Poll a JS function (may be async) until ``check`` accepts its result; return it.

        The last result goes into the failure message, so a timeout says what was seen.
        """
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = self.evaluate(js, arg)
            if check(last):
                return last
            time.sleep(0.1)
        raise AssertionError(f"Firefox: timed out waiting for {what or js} (last: {last!r})")

    def wait_tone(self, lo: float, hi: float, timeout_s: float = 10.0) -> float:
        """Wait until the page's remote stream has a dominant tone in [lo, hi] Hz (roomkit's probe)."""
        found = self.wait_for(
            rk.PROBE_JS, timeout_s=timeout_s, what=f"a {lo:.0f}-{hi:.0f} Hz tone",
            check=lambda p: bool(p) and p["db"] > rk.TONE_DB and lo <= p["hz"] <= hi)
        return float(found["hz"])

    def _pointer(self, kind: str) -> None:
        """A trusted pointer press or release (BiDi input.performActions) on the Talk button.

        Trusted input, rather than a synthetic PointerEvent, so the page's pointer capture and
        user-activation logic see exactly what a real mouse gives them.
        """
        box = self.evaluate(
            """() => { const r = document.getElementById('ptt').getBoundingClientRect();
            return {x: r.x + r.width / 2, y: r.y + r.height / 2}; }"""
        )
        assert isinstance(box, dict)
        actions: list[dict[str, Any]] = [
            {"type": "pointerMove", "x": int(box["x"]), "y": int(box["y"])}
        ]
        actions.append({"type": kind, "button": 0})
        self.call("input.performActions", {
            "context": self.context,
            "actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                         "actions": actions}],
        })

    def hold(self) -> None:
        self._pointer("pointerDown")

    def let_go(self) -> None:
        self._pointer("pointerUp")


@contextlib.contextmanager
def firefox_tab(url: str, pulse_server: str, workdir: Path) -> Iterator[FirefoxTab]:
    """Headless Firefox ESR (fake 1 kHz mic, sound into ``pulse_server``) showing ``url``."""
    binary = firefox_binary()
    if binary is None:
        raise RuntimeError("firefox-esr is not installed")
    profile = Path(tempfile.mkdtemp(prefix="walkie-ff-", dir=workdir))
    (profile / "user.js").write_text(TEST_PREFS)
    port = free_port()
    env = {**os.environ, "PULSE_SERVER": pulse_server, "MOZ_CRASHREPORTER_DISABLE": "1"}
    log = open(workdir / "firefox.log", "wb")  # noqa: SIM115 - closed right below
    proc = subprocess.Popen(
        [binary, "--headless", f"--remote-debugging-port={port}", "--profile", str(profile),
         "--no-remote"],
        env=env, stdout=log, stderr=log,
    )
    log.close()
    try:
        with connect_when_up(f"ws://127.0.0.1:{port}/session") as ws:
            yield FirefoxTab(ws, url)
    finally:
        _stop(proc)
        shutil.rmtree(profile, ignore_errors=True)
