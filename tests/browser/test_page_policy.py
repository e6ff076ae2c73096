"""The page under its own Content-Security-Policy, and a DNS-rebinding name refused, in Chromium.

Why a browser: only a browser enforces the CSP, so only a real session (landing page, join,
media, talk, hear) shows that the policy leaves the page whole. Every page records the
`securitypolicyviolation` events and console errors from its first instant (an init
script, which CSP does not govern); a session must end with none. A positive control (an
injected inline script and a socket to another host, both blocked and reported) proves the
recording works, so "no violation" cannot pass by accident.

The rebinding test maps a name to 127.0.0.1 inside Chromium (`--host-resolver-rules`), which
is exactly where DNS rebinding leaves a victim's browser: a page of that name now reaches the
server on loopback, sending its own name as Host.
"""

from __future__ import annotations

import secrets

import pytest

from . import roomkit as rk
from .harness import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

RECORD_JS = """(() => {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
  });
})();"""


def watch(context, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Record CSP violations in every page of ``context`` and its console errors in ``errors``."""
    context.add_init_script(RECORD_JS)

    def on_page(page) -> None:  # type: ignore[no-untyped-def]
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))

    context.on("page", on_page)


def violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate("() => window.__violations")


def test_the_page_works_under_its_csp(browser, server) -> None:
    context = browser.new_context()
    errors: list[str] = []
    watch(context, errors)

    landing = context.new_page()
    response = landing.goto(server.url + "/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["permissions-policy"].startswith("microphone=(self)")
    landing.fill("#name", "Ann")
    landing.click("#create")  # a random room: /r/<room>, its join form filled in
    landing.wait_for_url("**/r/*")
    landing.click("#join-submit")
    rk.wait_ready(landing)

    room = "csp-" + secrets.token_hex(3)
    alice, bob = (rk.open_room(context, server.room_url(room, n)) for n in ("Alice", "Bob"))
    for page in (alice, bob):
        rk.wait_ready(page)
        rk.wait_members(page, 2)
    rk.hold(alice)
    rk.wait_floor(alice, "talking")
    assert 430 <= rk.wait_tone(bob) <= 450  # media, remote audio and WebAudio under the CSP
    rk.let_go(alice)
    rk.wait_talker(bob, None)

    for page in (landing, alice, bob):
        assert violations(page) == [], page.url
    assert errors == []

    # The control: what the policy forbids is blocked, and the recording sees it.
    bob.evaluate("""() => {
      const s = document.createElement("script");
      s.textContent = "window.__injected = true";
      document.body.append(s);
      try { new WebSocket("ws://127.0.0.2:9/ws"); } catch (e) {}
    }""")
    bob.wait_for_function("() => window.__violations.length >= 2")
    assert bob.evaluate("() => window.__injected") is None
    seen = violations(bob)
    assert any(v.startswith("script-src") and v.endswith("inline") for v in seen), seen
    assert any(v.startswith("connect-src") and "127.0.0.2" in v for v in seen), seen
    context.close()


def test_a_rebound_name_gets_no_page(playwright_instance, server) -> None:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
    try:
        page = browser.new_page()
        rebound = f"http://rebind.test:{server.port}"
        response = page.goto(rebound + "/")
        assert response.status == 421
        assert "does not answer to the name 'rebind.test'" in page.content()
        # Nor its socket (the Origin matches the Host, so only the Host check stops it).
        assert page.evaluate("""(url) => new Promise((done) => {
          const ws = new WebSocket(url);
          ws.onopen = () => { ws.close(); done("open"); };
          ws.onerror = () => done("refused");
        })""", rebound.replace("http", "ws") + "/ws") == "refused"
        # The same browser still reaches the server by its address.
        assert page.goto(server.url + "/").status == 200
    finally:
        browser.close()
