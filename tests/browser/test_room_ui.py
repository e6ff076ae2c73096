"""The page's own behaviour against the real server: landing, join form, password, the lock
and who can listen, inputs (mouse, touch, space bar, latch), names as text and unique, room
full, revoke, reconnect."""

from __future__ import annotations

import re
import secrets

import pytest

from . import roomkit as rk

pytestmark = pytest.mark.browser


def new_room() -> str:
    return "ui-" + secrets.token_hex(3)


def test_landing_creates_a_room_and_remembers_the_name(browser, server) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.get_by_label("Your name").fill("  Dana ")
    assert "anyone who guesses the name can join and listen" in page.locator(".privacy-note").inner_text()
    page.get_by_role("button", name="Create a new room").click()
    page.wait_for_url(re.compile(r".*/r/([a-z]{3,8}-){5}[a-z]{3,8}$"))
    room = page.url.rsplit("/", 1)[1]
    # The room page asks first (its click is the gesture that unlocks audio), name pre-filled.
    assert page.locator("body").get_attribute("data-state") == "join"
    assert page.get_by_label("Your name").input_value() == "Dana"
    assert "microphone" in page.locator(".mic-note").inner_text()
    page.get_by_role("button", name="Join the room").click()
    rk.wait_ready(page)
    assert rk.state(page)["you"]["name"] == "Dana"
    assert page.locator("#room-link").input_value() == f"{server.url}/r/{room}"
    assert page.locator("#room-name").inner_text() == room
    assert page.locator("#room-full").inner_text() == room  # whole, to read out
    assert page.locator("#conn").inner_text() == "Ready"
    # A generated name, no password: anyone with the link, and no lock.
    assert page.locator("body").get_attribute("data-privacy") == "link"
    assert "anyone who has the link" in page.locator("#room-privacy").inner_text()
    assert page.get_by_role("img", name="Password protected").is_hidden()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == f"{server.url}/r/{room}"

    # Joining by typed name normalises it; a bad one is refused on the spot.
    page.goto(server.url + "/")
    assert page.get_by_label("Your name").input_value() == "Dana"  # remembered
    page.get_by_label("Room name").fill("a/b")
    page.get_by_role("button", name="Join", exact=True).click()
    assert "1 to 64" in page.locator("#room-error").inner_text()
    page.get_by_label("Room name").fill(" Team Blue_2 ")
    page.get_by_role("button", name="Join", exact=True).click()
    page.wait_for_url(re.compile(r".*/r/team-blue-2$"))


def test_password_is_asked_again_until_right(browser, server) -> None:
    room = new_room()
    context = browser.new_context()
    owner = context.new_page()
    owner.goto(server.room_url(room))  # no ?name=: the form first
    owner.get_by_label("Your name").fill("Olga")
    owner.locator("#join-pw-box summary").click()
    owner.get_by_label("Room password").fill("s3cret")
    owner.get_by_role("button", name="Join the room").click()
    rk.wait_ready(owner)
    assert owner.get_by_role("img", name="Password protected").is_visible()
    assert owner.locator("body").get_attribute("data-privacy") == "protected"

    guest = context.new_page()
    guest.goto(server.room_url(room, "Gus"))
    error = guest.locator("#join-pw-error")
    error.wait_for(state="visible")
    assert "has a password" in error.inner_text()
    assert guest.locator("body").get_attribute("data-state") == "join"
    assert guest.evaluate("() => document.activeElement.id") == "join-password"
    guest.get_by_label("Room password").fill("wrong")
    guest.get_by_role("button", name="Join the room").click()
    guest.wait_for_function("() => document.getElementById('join-pw-error').textContent.includes('Wrong')")
    assert guest.evaluate("() => document.activeElement.id") == "join-password"
    guest.get_by_label("Room password").fill("s3cret")
    guest.get_by_role("button", name="Join the room").click()
    rk.wait_ready(guest)
    rk.wait_members(owner, 2)
    context.close()


def test_space_bar_touch_and_latch(browser, server) -> None:
    context = browser.new_context(has_touch=True)
    page = context.new_page()
    page.goto(server.room_url(new_room(), "Kim"))
    rk.wait_ready(page)
    button = page.get_by_role("button", name="Talk")

    # Long press must not select, open a callout or menu, or scroll.
    style = button.evaluate(
        "(b) => { const s = getComputedStyle(b); return [s.userSelect, s.touchAction, s.webkitTouchCallout]; }"
    )
    assert style[0] == "none" and style[1] == "none"
    assert button.evaluate(
        "(b) => !b.dispatchEvent(new MouseEvent('contextmenu', {bubbles: true, cancelable: true}))"
    )

    # Space bar: hold to talk, ignoring key repeats.
    page.keyboard.down("Space")
    rk.wait_floor(page, "talking")
    page.keyboard.down("Space")  # auto-repeat
    page.keyboard.up("Space")
    rk.wait_floor(page, "idle")
    assert rk.state(page)["sending"] is False
    # ...but not while typing in a field.
    page.locator("#room-link").focus()
    page.keyboard.press("Space")
    page.wait_for_timeout(300)
    assert rk.state(page)["floor"] == "idle"
    # Enter on the focused button does nothing (talking needs a hold); losing focus while
    # holding the space bar releases.
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert rk.state(page)["floor"] == "idle"
    page.keyboard.down("Space")
    rk.wait_floor(page, "talking")
    page.evaluate("() => window.dispatchEvent(new Event('blur'))")
    rk.wait_floor(page, "idle")
    page.keyboard.up("Space")

    # Touch: a finger down is a press, up a release (CDP touch events -> pointer events).
    box = button.bounding_box()
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    cdp = context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    rk.wait_floor(page, "talking")
    assert button.get_attribute("data-state") == "talking"
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    rk.wait_floor(page, "idle")

    # Latch: tap on, tap off.
    page.locator("label.switch").click()
    assert page.locator("#latch").is_checked()
    assert page.get_by_role("button", name="Tap to Talk").count() == 1
    button.click()
    rk.wait_floor(page, "talking")
    page.wait_for_timeout(300)
    assert rk.state(page)["floor"] == "talking"  # still on after the pointer went up
    assert button.get_attribute("aria-pressed") == "true"
    button.click()
    rk.wait_floor(page, "idle")
    context.close()


def test_a_password_for_an_open_room_is_refused_and_typed_rooms_say_they_are_public(
    browser, server
) -> None:
    room = new_room()
    context = browser.new_context()
    squatter = context.new_page()
    squatter.goto(server.room_url(room))
    assert "typed, not generated" in squatter.locator("#join-privacy").inner_text()
    squatter.get_by_label("Your name").fill("Ann")
    squatter.get_by_role("button", name="Join the room").click()
    rk.wait_ready(squatter)
    assert squatter.locator("body").get_attribute("data-privacy") == "public"
    assert "anyone who guesses the name" in squatter.locator("#room-privacy").inner_text().lower()
    assert squatter.get_by_role("img", name="Password protected").is_hidden()

    # Ann (another one) brings a password: she is told the room is open, not let in.
    ann = context.new_page()
    ann.goto(server.room_url(room))
    ann.get_by_label("Your name").fill("ann")
    ann.locator("#join-pw-box summary").click()
    ann.get_by_label("Room password").fill("s3cret")
    ann.get_by_role("button", name="Join the room").click()
    error = ann.locator("#join-pw-error")
    error.wait_for(state="visible")
    assert "exists without a password" in error.inner_text()
    assert ann.get_by_label("Room password").input_value() == ""
    # Joining without one is her choice; her name is made unique, for everyone.
    ann.get_by_role("button", name="Join the room").click()
    rk.wait_ready(ann)
    assert rk.state(ann)["you"]["name"] == "ann (2)"
    rk.wait_members(squatter, 2)
    assert squatter.locator("#members .member-name").all_inner_texts() == ["Ann", "ann (2)"]
    context.close()


def test_names_are_shown_as_text(browser, server) -> None:
    room = new_room()
    evil = "<img src=x onerror=window.x=1>"  # 30 characters: a valid name
    page = browser.new_page()
    page.goto(server.room_url(room, evil))
    rk.wait_ready(page)
    other = browser.new_page()
    other.goto(server.room_url(room, "Ned"))
    rk.wait_ready(other)
    rk.wait_members(other, 2)
    assert other.locator("#members .member-name").all_inner_texts() == [evil, "Ned"]
    assert other.locator("#members img").count() == 0
    assert other.evaluate("() => window.x") is None
    rk.hold(page)
    rk.wait_talker(other, evil)
    assert other.locator("#talker-label").inner_text().startswith(evil)
    rk.let_go(page)


def test_room_full_is_explained(browser, server_factory) -> None:
    server = server_factory("--max-users", "1")
    room = new_room()
    first = browser.new_page()
    first.goto(server.room_url(room, "One"))
    rk.wait_ready(first)
    second = browser.new_page()
    second.goto(server.room_url(room, "Two"))
    second.wait_for_function("() => window.walkie.connection === 'failed'")
    assert "full" in second.locator("#notice-text").inner_text()
    assert second.locator("body").get_attribute("data-conn") == "failed"
    assert second.get_by_role("button", name="Talk").is_hidden()
    # Once there is room again, "Try again" joins.
    first.close()
    second.get_by_role("button", name="Try again").click()
    rk.wait_ready(second)
    assert [m["name"] for m in rk.state(second)["members"]] == ["Two"]


def test_max_talk_time_revokes_and_hands_over(browser, server_factory) -> None:
    # Long enough that each page sees "talking" and Ben's request lands while Ann still talks,
    # even on a loaded machine (with 1 s the pages could miss a state and time out).
    server = server_factory("--max-talk-time", "4")
    room = new_room()
    context = browser.new_context()
    ann, ben = (context.new_page() for _ in range(2))
    ann.goto(server.room_url(room, "Ann"))
    ben.goto(server.room_url(room, "Ben"))
    for page in (ann, ben):
        rk.wait_ready(page)
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    rk.hold(ben)
    rk.wait_floor(ben, "queued")
    rk.wait_floor(ann, "revoked")
    assert "Time is up" in ann.locator("#self-status").inner_text()
    assert rk.state(ann)["sending"] is False
    rk.wait_floor(ben, "talking", "revoked")  # Ben is granted at once (then revoked in turn)
    rk.let_go(ann)
    rk.wait_floor(ann, "idle")
    rk.let_go(ben)
    context.close()


def test_without_queue_a_second_talker_is_told_busy(browser, server_factory) -> None:
    server = server_factory("--no-queue")
    room = new_room()
    context = browser.new_context()
    ann, ben = (context.new_page() for _ in range(2))
    ann.goto(server.room_url(room, "Ann"))
    ben.goto(server.room_url(room, "Ben"))
    for page in (ann, ben):
        rk.wait_ready(page)
    rk.hold(ann)
    rk.wait_floor(ann, "talking")
    rk.wait_talker(ben, "Ann")
    rk.hold(ben)
    rk.wait_floor(ben, "busy")
    assert ben.locator("#ptt").get_attribute("data-state") == "busy"
    assert "Busy: Ann is talking" in ben.locator("#self-status").inner_text()
    assert rk.state(ben)["sending"] is False
    rk.let_go(ben)
    rk.wait_floor(ben, "idle")
    rk.let_go(ann)
    rk.wait_talker(ben, None)
    rk.hold(ben)  # a new press after the channel cleared gets it
    rk.wait_floor(ben, "talking")
    rk.let_go(ben)
    context.close()


def test_reconnects_and_rejoins_after_a_server_restart(browser, server_factory) -> None:
    server = server_factory()
    room = new_room()
    page = browser.new_page()
    page.goto(server.room_url(room, "Rita"))
    rk.wait_ready(page)
    first_id = rk.state(page)["you"]["id"]
    server.stop()
    page.wait_for_function("() => window.walkie.connection === 'reconnecting'")
    assert page.locator("#notice").is_visible()
    assert page.get_by_role("button", name="Talk").is_disabled()
    server_factory("--port", str(server.port))  # same address, fresh server
    rk.wait_ready(page, timeout_ms=30000)
    assert rk.state(page)["you"]["id"] != first_id  # a new session, joined again
    assert page.locator("#notice").is_hidden()
    rk.hold(page)
    rk.wait_floor(page, "talking")
    rk.let_go(page)
