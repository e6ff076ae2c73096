"""How every test launches Debian's Chromium (/usr/bin/chromium, driven by Playwright).

Each of the first three flags is needed: without the fake UI getUserMedia fails with
NotAllowedError, without the fake device NotFoundError, and without
--allow-loopback-in-peer-connection no ICE candidate is gathered on loopback. The rest keep
Chromium from reaching for the network this machine does not have.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
