"""Microphone problems are explained, not swallowed.

Chromium without --use-fake-ui-for-media-stream refuses getUserMedia (NotAllowedError, as if
the user clicked "Block"); without --use-fake-device-for-media-stream this machine has no
capture device (NotFoundError). Each case needs its own browser launch.
"""

from __future__ import annotations

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser


def launch_without(playwright_instance, flag: str):
    return playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=[a for a in CHROMIUM_ARGS if a != flag]
    )


@pytest.mark.parametrize(
    ("missing_flag", "expected"),
    [
        ("--use-fake-ui-for-media-stream", "Microphone access was denied"),
        ("--use-fake-device-for-media-stream", "No microphone was found"),
    ],
)
def test_mic_problem_is_explained_with_a_retry(playwright_instance, server, missing_flag, expected) -> None:
    browser = launch_without(playwright_instance, missing_flag)
    try:
        page = browser.new_page()
        page.goto(server.room_url("mic-test", "Mo"))
        page.wait_for_function("() => window.walkie.connection === 'failed'")
        assert expected in page.locator("#notice-text").inner_text()
        assert page.get_by_role("button", name="Try again").is_visible()
        assert page.locator("body").get_attribute("data-conn") == "failed"
        # Nobody joined: the server never saw this page.
        assert page.evaluate("() => window.walkie.you") is None
    finally:
        browser.close()
