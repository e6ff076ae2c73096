"""Chromium's and Firefox's verdicts on our SDP answers: each browser makes its own offer, we
answer it (sfu/sdp), and the browser must apply the answer as intended.
"""
from __future__ import annotations

import contextlib
import pathlib

import pytest

from sfu.sdp import (
    AudioSelection,
    Fingerprint,
    LocalParams,
    build_answer,
    local_setup_for,
    parse_offer,
    select_audio,
)
from tests.chromium import CHROMIUM_ARGS
from tests.sfu.sdp_helpers import certificate_der, make_local

CHROMIUM = pathlib.Path("/usr/bin/chromium")


# Builds the peer connection like walkie's page (mic track on an audio transceiver) plus the
# extra m-lines under test, and returns the browser's own offer.
OFFER_JS = """
async ([direction, video, data, videoFirst, maxBundle]) => {
  const pc = new RTCPeerConnection(maxBundle ? {bundlePolicy: 'max-bundle'} : {});
  window.pc = pc;
  window.remoteStreams = [];
  pc.ontrack = (e) => window.remoteStreams.push(e.streams.map(s => s.id));
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  if (videoFirst) pc.addTransceiver('video');
  pc.addTransceiver(stream.getAudioTracks()[0], {direction, streams: [stream]});
  if (video) pc.addTransceiver('video');
  if (data) window.dc = pc.createDataChannel('chat');
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
}
"""

APPLY_ANSWER_JS = """
async (sdp) => {
  try {
    await pc.setRemoteDescription({type: 'answer', sdp});
  } catch (e) {
    return {error: String(e)};
  }
  return {
    signalingState: pc.signalingState,
    transceivers: pc.getTransceivers().map(t => ({
      mid: t.mid, kind: t.receiver.track.kind, direction: t.direction,
      currentDirection: t.currentDirection})),
    remoteStreams: window.remoteStreams,
    dataChannel: window.dc ? window.dc.readyState : null,
  };
}
"""

# (offered audio direction, video after audio, data channel, video first, max-bundle,
#  expected currentDirection of the audio transceiver)
BROWSER_CASES = [
    ("sendrecv", False, False, False, False, "sendrecv"),
    ("sendonly", False, False, False, False, "sendonly"),
    ("recvonly", False, False, False, False, "recvonly"),
    ("sendrecv", True, False, False, False, "sendrecv"),
    ("sendrecv", False, True, False, False, "sendrecv"),
    ("sendrecv", False, False, True, False, "sendrecv"),
    ("sendrecv", True, True, False, True, "sendrecv"),
]
BROWSER_IDS = ["audio", "audio-sendonly", "audio-recvonly", "audio+video", "audio+data",
               "video-first", "audio+video+data-max-bundle"]


def _answer_browser_offer(offer_sdp: str) -> tuple[AudioSelection, LocalParams, str]:
    """Our answer to a browser's offer, with a real certificate's fingerprint."""
    offer = parse_offer(offer_sdp)
    sel = select_audio(offer)
    local = make_local(fingerprint=Fingerprint.of_certificate(certificate_der()),
                       setup=local_setup_for(sel.setup))
    return sel, local, build_answer(offer, sel, local)


def _check_applied(result: dict, sel: AudioSelection, local: LocalParams, answer: str,
                   offered: str, current: str) -> None:
    assert "error" not in result, f"{result.get('error')}\n{answer}"
    assert result["signalingState"] == "stable"
    audio = [t for t in result["transceivers"] if t["kind"] == "audio"]
    assert len(audio) == 1 and audio[0]["mid"] == sel.mid
    assert audio[0]["direction"] == offered and audio[0]["currentDirection"] == current
    for t in result["transceivers"]:
        if t["kind"] != "audio":  # the rejected video m-line: its transceiver is stopped
            assert t["kind"] == "video" and t["currentDirection"] == "stopped"
    # When we send, the browser sees our msid stream on its remote track.
    expected_streams = [[local.msid_stream]] if current in ("sendrecv", "recvonly") else []
    assert result["remoteStreams"] == expected_streams


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """One headless Chromium for this module's browser tests (each test gets a new context)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def _blank_page(chromium):  # type: ignore[no-untyped-def]
    """A page of its own (new browser context) on http://localhost, closed afterwards."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        # getUserMedia needs a secure context; Playwright serves http://localhost itself.
        page.route("http://localhost/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>sdp</title>"))
        page.goto("http://localhost/")
        yield page
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize(("offered", "video", "data", "video_first", "max_bundle", "current"),
                         BROWSER_CASES, ids=BROWSER_IDS)
def test_chromium_accepts_answer(chromium, offered: str, video: bool, data: bool,  # type: ignore[no-untyped-def]
                                 video_first: bool, max_bundle: bool, current: str) -> None:
    with _blank_page(chromium) as page:
        offer_sdp = page.evaluate(OFFER_JS, [offered, video, data, video_first, max_bundle])
        sel, local, answer = _answer_browser_offer(offer_sdp)
        result = page.evaluate(APPLY_ANSWER_JS, answer)
    _check_applied(result, sel, local, answer, offered, current)
    if data:  # Chromium closes a data channel whose m-line the answer rejected
        assert result["dataChannel"] == "closed"


@pytest.mark.browser
def test_chromium_max_bundle_cannot_move_the_bundle_tag(chromium) -> None:  # type: ignore[no-untyped-def]
    """A known limit, kept visible: with bundlePolicy 'max-bundle' Chromium creates a transport
    only for the first m-line of the BUNDLE group. If that m-line is video, our answer (reject
    it, bundle on the audio m-line: RFC 8843 §7.3.1 allows this in an initial answer, and
    Firefox accepts it) is refused. Walkie's page must add its audio transceiver first; with
    the default 'balanced' policy the order does not matter (case video-first above).
    If this test starts failing, Chromium has lifted the limit: delete the test.
    """
    with _blank_page(chromium) as page:
        offer_sdp = page.evaluate(OFFER_JS, ["sendrecv", False, False, True, True])
        _sel, _local, answer = _answer_browser_offer(offer_sdp)
        result = page.evaluate(APPLY_ANSWER_JS, answer)
    assert "Failed to setup RTCP mux" in result.get("error", "")


@pytest.fixture(scope="module")
def firefox():  # type: ignore[no-untyped-def]
    """One headless Firefox ESR over WebDriver BiDi; skipped when firefox-esr is missing
    (`apt-get install firefox-esr` to run these; ci/test installs it)."""
    pytest.importorskip("websockets.sync.client")
    from tests.sfu import capture_offers as capture

    if capture.firefox_binary() is None:
        pytest.skip("firefox-esr is not installed")
    with capture.firefox_page() as page:
        yield page


@pytest.mark.browser
@pytest.mark.parametrize(("offered", "video", "data", "video_first", "max_bundle", "current"),
                         BROWSER_CASES, ids=BROWSER_IDS)
def test_firefox_accepts_answer(firefox, offered: str, video: bool, data: bool,  # type: ignore[no-untyped-def]
                                video_first: bool, max_bundle: bool, current: str) -> None:
    firefox.reload()
    offer_sdp = firefox.evaluate(OFFER_JS, [offered, video, data, video_first, max_bundle])
    sel, local, answer = _answer_browser_offer(offer_sdp)
    result = firefox.evaluate(APPLY_ANSWER_JS, answer)
    _check_applied(result, sel, local, answer, offered, current)


@pytest.mark.browser
def test_firefox_accepts_bundle_only_audio_behind_rejected_video(firefox) -> None:  # type: ignore[no-untyped-def]
    """Firefox's max-bundle offer with video first marks the audio m-line bundle-only (port 0);
    we reject the video tag and bundle on the audio m-line, which Firefox accepts."""
    firefox.reload()
    offer_sdp = firefox.evaluate(OFFER_JS, ["sendrecv", False, False, True, True])
    assert parse_offer(offer_sdp).media[1].bundle_only
    sel, local, answer = _answer_browser_offer(offer_sdp)
    result = firefox.evaluate(APPLY_ANSWER_JS, answer)
    _check_applied(result, sel, local, answer, "sendrecv", "sendrecv")
