"""Capture real SDP offers from Debian's Chromium and Firefox ESR into tests/sfu/fixtures/.

Why: the SDP parser must be tested against what browsers really send, not against what we
think they send. Run by hand, inside a loopback-only namespace (the browsers must not reach
any real network)::

    unshare -n sh -c 'ip link set lo up; ip addr add 127.0.0.2/8 dev lo; \
        python -m tests.sfu.capture_offers'

Each offer is taken after ICE gathering completed, so it contains the host candidates.
Chromium is driven by Playwright; Firefox ESR (Playwright cannot drive Debian's build) by
WebDriver BiDi over a WebSocket (tests/firefox_bidi.py). test_sdp_browsers.py reuses
:func:`firefox_page` to check that Firefox accepts our answers.
"""
from __future__ import annotations

import asyncio
import contextlib
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from tests.blank_page import blank_page
from tests.chromium import CHROMIUM_ARGS
from tests.firefox_bidi import (
    FIREFOX_PREFS,
    FirefoxPage,
    connect_when_up,
    firefox_binary,
    free_port,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


# JS run in the page: build a peer connection the way walkie's page will (mic track, one
# audio transceiver), optionally add video (after the audio, or before it so that the BUNDLE
# tag is a video m-line) / a data channel, optionally with bundlePolicy max-bundle (Firefox then
# marks later m-lines bundle-only, port 0), and return the local offer once gathering is done.
CAPTURE_JS = """
async ([video, data, videoFirst, maxBundle]) => {
  const pc = new RTCPeerConnection(maxBundle ? {bundlePolicy: 'max-bundle'} : {});
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  if (videoFirst) pc.addTransceiver('video');
  pc.addTrack(stream.getAudioTracks()[0], stream);
  if (video) pc.addTransceiver('video');
  if (data) pc.createDataChannel('chat');
  const done = new Promise(r => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await Promise.race([done, new Promise(r => setTimeout(r, 5000))]);
  return pc.localDescription.sdp;
}
"""

# fixture name -> (video after audio, data channel, video before audio, max-bundle)
CHROMIUM_CASES = {
    "chrome_audio.sdp": (False, False, False, False),
    "chrome_audio_video.sdp": (True, False, False, False),
    "chrome_audio_data.sdp": (False, True, False, False),
    "chrome_video_audio.sdp": (False, False, True, False),
}
FIREFOX_CASES = {
    "firefox_audio.sdp": (False, False, False, False),
    "firefox_audio_video.sdp": (True, False, False, False),
    "firefox_audio_data.sdp": (False, True, False, False),
    "firefox_video_audio_maxbundle.sdp": (False, False, True, True),
}


async def capture_chromium() -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        version = browser.version
        page = await browser.new_page()
        # getUserMedia needs a secure context; about:blank and data: are not, http://localhost
        # is. Playwright answers the request itself, so nothing listens and nothing is fetched.
        await page.route("http://localhost/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>capture</title>"))
        await page.goto("http://localhost/")
        for name, flags in CHROMIUM_CASES.items():
            sdp = await page.evaluate(CAPTURE_JS, list(flags))
            # No header comment: the fixture is byte-for-byte what Chromium produced.
            (FIXTURES / name).write_bytes(sdp.encode())
            print(f"{name}: {len(sdp)} bytes from Chromium {version}")
        await browser.close()


# ----------------------------------------------------------------------------- Firefox

@contextlib.contextmanager
def firefox_page() -> Iterator[FirefoxPage]:
    """Headless Firefox ESR with fake media, showing an empty page from 127.0.0.1.

    Firefox needs a secure context for getUserMedia and http://127.0.0.1 is one, so a
    throwaway HTTP server serves the page. Everything is torn down on exit.
    """
    binary = firefox_binary()
    if binary is None:
        raise RuntimeError("firefox-esr is not installed")
    profile = tempfile.mkdtemp(prefix="walkie-ff-")
    pathlib.Path(profile, "user.js").write_text(FIREFOX_PREFS)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--headless", f"--remote-debugging-port={port}", "--profile", profile],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with blank_page("walkie sdp") as site, \
                connect_when_up(f"ws://127.0.0.1:{port}/session") as ws:
            yield FirefoxPage(ws, site + "/")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def capture_firefox() -> None:
    if firefox_binary() is None:
        print("firefox-esr not installed: Firefox offers not captured")
        return
    with firefox_page() as page:
        for name, flags in FIREFOX_CASES.items():
            sdp = page.evaluate(CAPTURE_JS, list(flags))
            assert isinstance(sdp, str)
            (FIXTURES / name).write_bytes(sdp.encode())
            print(f"{name}: {len(sdp)} bytes from Firefox {page.version}")


if __name__ == "__main__":
    FIXTURES.mkdir(exist_ok=True)
    asyncio.run(capture_chromium())
    capture_firefox()
