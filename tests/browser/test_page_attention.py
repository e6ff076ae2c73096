"""Unit tests of the page's pure parts for use without looking at it, run in Chromium as the
page loads them: the Talk key rules (www/settings.js), the vibration patterns
(www/haptics.js), the lock screen's text (www/headset.js), the hidden tab's title and tone and
the live region's sentences (www/attention.js), and the headset's latch in the Talk input
rules (www/input.js). The browser sides are in test_page_headset_e2e.py."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def call(page: Any, module: str, body: str, arg: Any = None) -> Any:
    """Run `body` (a JS function of (m, arg), m = the module) in the page."""
    return page.evaluate(
        f"async ([arg]) => {{ const m = await import('/static/{module}'); return ({body})(m, arg); }}", [arg]
    )


def test_talk_key_labels_choices_and_storage(page) -> None:
    got = call(page, "settings.js", """(m) => ({
      labels: [['Space', ' '], ['KeyT', 't'], ['Digit5', '5'], ['ControlRight', 'Control'], ['F8', 'F8'],
               ['Numpad0', '0'], ['Backquote', '`'], ['IntlRo', 'Unidentified']].map(([c, k]) => m.keyLabel(c, k)),
      chosen: [['KeyT', 't'], ['Tab', 'Tab'], ['Enter', 'Enter'], ['NumpadEnter', 'Enter'], ['Escape', 'Escape'],
               ['', 'x'], ['Key T', 't'], [null, 'x']].map(([c, k]) => m.chooseKey(c, k)),
      stored: ['{"code":"KeyT","label":"T"}', '{"code":"F8"}', '{"code":"KeyT","label":""}', '{"code":"Tab"}',
               '{"code":"a b"}', 'nonsense', '[]', 'null', null, '{"code":"KeyQ","label":"' + 'x'.repeat(30) + '"}']
        .map((t) => m.parseStoredKey(t)),
      matches: [
        m.matchesKey({code: 'Space', key: ' '}, m.DEFAULT_KEY),
        m.matchesKey({code: '', key: ' '}, m.DEFAULT_KEY),  // a phone keyboard without codes
        m.matchesKey({code: 'KeyT', key: 't'}, m.DEFAULT_KEY),
        m.matchesKey({code: 'KeyT', key: 'z'}, {code: 'KeyT', label: 'T'}),  // another layout: same key
        m.matchesKey({code: '', key: ' '}, {code: 'KeyT', label: 'T'}),
      ],
    })""")
    assert got["labels"] == ["Space", "T", "5", "Right Ctrl", "F8", "Numpad 0", "`", "IntlRo"]
    t, tab, enter, numpad_enter, escape, empty, spaced, null = got["chosen"]
    assert t == {"key": {"code": "KeyT", "label": "T"}}
    for refused in (tab, enter, numpad_enter, escape):
        assert refused == {"error": "Tab, Enter and Escape stay for moving around the page. Pick another key."}
    for refused in (empty, spaced, null):
        assert "cannot be told apart" in refused["error"]
    space = {"code": "Space", "label": "Space"}
    assert got["stored"] == [
        {"code": "KeyT", "label": "T"}, {"code": "F8", "label": "F8"}, {"code": "KeyT", "label": "T"},
        space, space, space, space, space, space, {"code": "KeyQ", "label": "Q"},
    ]
    assert got["matches"] == [True, True, False, True, False]


def test_talk_key_is_remembered(page) -> None:
    got = call(page, "settings.js", """(m) => {
      localStorage.removeItem(m.KEY_STORE);
      const before = m.loadTalkKey();
      m.saveTalkKey({code: 'KeyG', label: 'G'});
      const after = m.loadTalkKey();
      const raw = localStorage.getItem(m.KEY_STORE);
      localStorage.removeItem(m.KEY_STORE);
      return {before, after, raw};
    }""")
    assert got == {"before": {"code": "Space", "label": "Space"}, "after": {"code": "KeyG", "label": "G"},
                   "raw": '{"code":"KeyG","label":"G"}'}


def test_vibration_patterns(page) -> None:
    got = call(page, "haptics.js", """(m) => {
      const calls = [];
      const phone = {vibrate: (p) => { calls.push(p); return true; }};
      const refusing = {vibrate: () => false};  // Chrome before the first user gesture
      const throwing = {vibrate: () => { throw new Error('no'); }};
      return {
        results: [m.vibrate('permit', phone), m.vibrate('busy', phone), m.vibrate('end', phone),
                  m.vibrate('attention', phone), m.vibrate('permit', {}), m.vibrate('permit', refusing),
                  m.vibrate('busy', throwing), m.vibrate('toString', phone)],
        calls,
      };
    }""")
    # Grant, deny and end: three rhythms a pocket tells apart; nothing for other tones, and
    # no error where the device has no motor.
    assert got["calls"] == [[60], [90, 60, 90, 60, 90], [30, 50, 30]]
    assert got["results"] == [True, True, True, False, False, False, False, False]


def test_lock_screen_text(page) -> None:
    got = call(page, "headset.js", """(m) => {
      const base = {room: 'ops', joined: true, talker: null, youId: 'me', floor: 'idle'};
      return [
        {joined: false},
        {},
        {talker: {id: 'b', name: 'Bo'}},
        {talker: {id: 'me', name: 'Ann'}, floor: 'talking'},
        {floor: 'requesting'},
        {floor: 'queued', talker: {id: 'b', name: 'Bo'}},
      ].map((c) => m.describeMediaSession({...base, ...c}));
    }""")
    common = {"artist": "#ops", "album": "walkie"}
    assert got == [
        {"title": "Not connected", "playbackState": "none", "micActive": False, **common},
        {"title": "Channel clear", "playbackState": "playing", "micActive": False, **common},
        {"title": "Bo is talking", "playbackState": "playing", "micActive": False, **common},
        {"title": "You are talking", "playbackState": "playing", "micActive": True, **common},
        {"title": "Channel clear", "playbackState": "playing", "micActive": True, **common},
        {"title": "Bo is talking", "playbackState": "playing", "micActive": False, **common},
    ]


def test_media_session_controls_bind_what_the_browser_knows(page) -> None:
    got = call(page, "headset.js", """(m) => {
      const handlers = {};
      const firefoxLike = {setActionHandler(action, h) {
        if (action === 'togglemicrophone') throw new TypeError('unknown action');
        handlers[action] = h;
      }};
      const ops = [];
      const c = new m.MediaSessionControls(firefoxLike, class { constructor(d) { Object.assign(this, d); } });
      const bound = c.bind((op) => ops.push(op));
      handlers.pause(); handlers.play(); handlers.stop();
      c.render({title: 'Bo is talking', artist: '#ops', album: 'walkie', playbackState: 'playing', micActive: false});
      const first = firefoxLike.metadata;
      c.render({title: 'Bo is talking', artist: '#ops', album: 'walkie', playbackState: 'playing', micActive: false});
      const missing = new m.MediaSessionControls(null, null)  // no Media Session in this browser;
      return {bound, ops, title: first.title, artwork: first.artwork, state: firefoxLike.playbackState,
              sameObject: firefoxLike.metadata === first, none: missing.bind(() => {})};
    }""")
    assert got["bound"] == ["play", "pause", "stop"]
    assert got["ops"] == ["toggle", "toggle", "release"]  # taps toggle; stop only ends
    assert got["title"] == "Bo is talking" and got["state"] == "playing"
    assert got["artwork"] == [{"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml"}]
    assert got["sameObject"] is True  # an unchanged description is not drawn again
    assert got["none"] == []


ATTENTION_JS = """(m, steps) => {
  const a = new m.Attention('#ops · walkie');
  return steps.map((s) => a.observe(s));
}"""


def test_hidden_tab_title_and_tone(page) -> None:
    bo, cy, me = {"id": "b", "name": "Bo"}, {"id": "c", "name": "Cy"}, {"id": "me", "name": "Ann"}

    def snap(hidden: bool, talker: dict[str, str] | None) -> dict[str, Any]:
        return {"hidden": hidden, "youId": "me", "talker": talker}

    steps = [
        snap(False, bo),  # visible: nothing
        snap(False, None),
        snap(True, None),  # hidden, nobody talks: nothing
        snap(True, bo),  # Bo starts: title and tone
        snap(True, bo),  # still Bo: nothing again
        snap(True, cy),  # Cy takes over: new title and tone
        snap(True, None),  # stops: title back
        snap(True, me),  # we talk: no attention for ourselves
        snap(True, None),
        snap(False, bo),  # Bo starts while visible...
        snap(True, bo),  # ...then the tab is hidden: title, no tone (he did not just start)
        snap(False, bo),  # visible again: title back
    ]
    title = lambda text: {"type": "title", "text": text}  # noqa: E731
    tone = {"type": "tone", "name": "attention"}
    assert call(page, "attention.js", ATTENTION_JS, steps) == [
        [], [], [],
        [title("● Bo is talking — walkie"), tone],
        [],
        [title("● Cy is talking — walkie"), tone],
        [title("#ops · walkie")],
        [], [], [],
        [title("● Bo is talking — walkie")],
        [title("#ops · walkie")],
    ]


ANNOUNCER_JS = """(m, steps) => {
  const a = new m.Announcer();
  return steps.map((s) => a.observe(s));
}"""


def test_live_region_sentences(page) -> None:
    ann, bo, cy, di, ed, fy = ({"id": i, "name": n} for i, n in
                               [("me", "Ann"), ("b", "Bo"), ("c", "Cy"), ("d", "Di"), ("e", "Ed"), ("f", "Fy")])

    def snap(members: list[dict[str, str]], talker: dict[str, str] | None = None, state: str = "idle",
             you: str | None = "me", **floor: Any) -> dict[str, Any]:
        return {"youId": you, "members": members, "talker": talker,
                "floor": {"state": state, "position": 0, "reason": "", "busyHolder": None, **floor}}

    steps = [
        snap([], you=None),  # not joined yet: nothing
        snap([ann, bo]),  # joined: who is here, once
        snap([ann, bo]),  # a redraw (the countdown): nothing
        snap([ann, bo, cy]),
        snap([ann, bo, cy], bo),
        snap([ann, bo, cy], bo, "busy", reason="busy", busyHolder=bo),
        snap([ann, bo, cy], None, "busy", reason="busy", busyHolder=bo),
        snap([ann, bo, cy], None, "requesting"),
        snap([ann, bo, cy], None, "talking"),
        snap([ann, bo, cy], ann, "talking"),  # the broadcast naming us: nothing more
        snap([ann, bo, cy], None, "idle"),
        snap([ann, bo, cy], cy, "queued", position=2),
        snap([ann, bo, cy], cy, "queued", position=1),
        snap([ann, bo, cy], cy, "revoked", reason="max_talk_time"),
        snap([ann, bo, cy], cy, "busy", reason="rate_limited"),
        snap([ann, cy, di, ed, fy], None),  # four changes in one go: summed up
        snap([ann], None),
        snap([], you=None),  # connection lost: the alert says it, not this
        snap([{"id": "me2", "name": "Ann"}], you="me2"),  # back, alone
    ]
    assert call(page, "attention.js", ANNOUNCER_JS, steps) == [
        [],
        ["You are in the room with Bo."],
        [],
        ["Cy joined."],
        ["Bo is talking."],
        ["Busy: Bo is talking."],
        ["Channel clear."],
        [],
        ["You are on air."],
        [],
        ["You are off air."],
        ["You are number 2 in line.", "Cy is talking."],
        ["You are number 1 in line."],
        ["Your turn ended: time is up."],
        ["Too many presses. Wait a moment."],
        ["Di, Ed and Fy joined.", "Bo left.", "Channel clear."],
        ["4 people left."],
        [],
        ["You are in the room. Nobody else is here yet."],
    ]


def test_headset_talk_survives_a_hidden_page(page) -> None:
    got = page.evaluate("""async () => {
      const {TalkInput} = await import('/static/input.js');
      const input = new TalkInput();
      const out = [];
      // A headset tap latched the floor (held, no pointer, no key): shown as a tap, and
      // locking the screen (page hidden) or leaving the window does not end it.
      out.push(input.latched(true), input.lostFocus(), input.latched(false));
      // A held key does end with the page hidden.
      out.push(input.keyDownEvent(false), input.latched(true), input.lostFocus());
      return out;
    }""")
    assert got == [True, None, False, "press", False, "release"]
