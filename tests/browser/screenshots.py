"""Make the README screenshots of the room page while someone talks.

Run by hand from the repository root, inside a loopback-only namespace (it starts the real
server and Chromium)::

    unshare -n sh -c 'ip link set lo up; ip addr add 127.0.0.2/8 dev lo; \
        python -m tests.browser.screenshots'

Writes docs/screenshots/room-phone.png (390x844, the talker's own view: Ana holds Talk),
room-desktop.png (1280x800, a listener's view: Ben hears Ana, meter moving) and
landing-phone.png. The audio is real: four pages in one Chromium whose fake mic plays a
440 Hz tone, through the real signaling server and SFU. The server keeps audio for say-again
(`--replay 120`) and records (`--record`, into a temporary directory), so the pictures show
the say-again list (Chloé spoke first) and the Recording badge every member sees.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from . import roomkit as rk
from .harness import CHROMIUM, CHROMIUM_ARGS, REPO, chromium_skip_reason, start_server, write_tone

OUT = REPO / "docs" / "screenshots"
ROOM = "legal-winner-thank-year-wave-sausage"  # as "Create a new room" makes them
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def main() -> int:
    reason = chromium_skip_reason()
    if reason:
        print(f"screenshots: {reason}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tone = write_tone(tmp / "tone440.wav")
        server = start_server(tmp, "--replay", "120", "--record", str(tmp / "recordings"))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={tone}"],
                )
                phone = browser.new_context(
                    viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
                )
                desktop = browser.new_context(viewport=DESKTOP)

                landing = phone.new_page()
                landing.goto(server.url + "/")
                landing.get_by_label("Your name").fill("Ana")
                landing.wait_for_timeout(200)
                landing.screenshot(path=str(OUT / "landing-phone.png"))
                landing.close()

                ana = phone.new_page()
                ana.goto(server.room_url(ROOM, "Ana"))
                ben = desktop.new_page()
                ben.goto(server.room_url(ROOM, "Ben"))
                others = [desktop.new_page() for _ in range(2)]
                for page, name in zip(others, ("Chloé", "Dmitri")):
                    page.goto(server.room_url(ROOM, name))
                for page in (ana, ben, *others):
                    rk.wait_ready(page)
                    rk.wait_members(page, 4)

                # Chloé spoke first: her message is in everyone's say-again list.
                rk.hold(others[0])
                rk.wait_floor(others[0], "talking")
                rk.wait_tone(ben)
                others[0].wait_for_timeout(1500)
                rk.let_go(others[0])
                rk.wait_floor(others[0], "idle")
                ben.locator("#replay-list button[data-id]").first.wait_for(timeout=10000)

                # Ana holds Talk with a finger (touch -> pointer events, as on a phone).
                box = ana.get_by_role("button", name="Talk").bounding_box()
                assert box is not None
                point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
                cdp = phone.new_cdp_session(ana)
                cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
                rk.wait_floor(ana, "talking")
                rk.wait_talker(ben, "Ana")
                rk.wait_tone(ben)
                # Dmitri asks meanwhile: queued, so the talker card shows "1 waiting".
                rk.hold(others[1])
                rk.wait_floor(others[1], "queued")
                ana.wait_for_timeout(1200)  # let the meters and the countdown settle

                ana.screenshot(path=str(OUT / "room-phone.png"))
                ben.screenshot(path=str(OUT / "room-desktop.png"))

                rk.let_go(others[1])
                cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
                browser.close()
        finally:
            server.stop()
    for name in ("room-phone.png", "room-desktop.png", "landing-phone.png"):
        print(OUT / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
