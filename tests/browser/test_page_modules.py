"""Unit tests of the page's plain JS modules, run in Chromium as the page loads them.

The floor state machine (www/ptt.js) is sans-IO: inputs and server messages in, actions
out. Here it is driven step by step, plus a hypothesis test over random input sequences
checking the invariant that matters most for a walkie: the mic is switched in exactly while
we are requesting or talking, never while queued, busy, revoked or idle. Then the room state
(www/room.js), the Talk input rules (www/input.js) and the Talk button's texts (www/view.js);
the room names and display-name rules (www/names.js) against the server's.
The session machine has its own file, test_page_session.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.roomsweep import measure_name_space
from signaling.names import NameRefused, check_name
from tests.name_cases import ACCEPTED, REFUSED

pytestmark = pytest.mark.browser

# Runs a list of [op, arg] steps on a fresh FloorMachine; returns one record per step.
RUN_JS = """async ([steps, ready]) => {
  const {FloorMachine} = await import('/static/ptt.js');
  const m = new FloorMachine();
  if (ready) m.setReady('me');
  const out = [];
  for (const [op, arg] of steps) {
    let actions;
    if (op === 'msg') actions = m.handle(arg);
    else if (op === 'ready') actions = m.setReady(arg);
    else actions = m[op]();
    out.push({actions, state: m.state, position: m.position, pending: m.pending,
              held: m.held, reason: m.reason});
  }
  return out;
}"""


def run(page: Any, steps: list[list[Any]], ready: bool = True) -> list[dict[str, Any]]:
    return page.evaluate(RUN_JS, [steps, ready])


GRANTED = ["msg", {"type": "floor_granted", "max_ms": 60000}]
RELEASED = ["msg", {"type": "floor_released"}]


def queued(n: int) -> list[Any]:
    return ["msg", {"type": "floor_queued", "position": n}]


DENIED = ["msg", {"type": "floor_denied", "reason": "busy", "holder": {"id": "x", "name": "Xe"}}]
REVOKED = ["msg", {"type": "floor_revoked", "reason": "max_talk_time"}]
MIC_ON = {"type": "mic", "on": True}
MIC_OFF = {"type": "mic", "on": False}
REQUEST = {"type": "send", "message": {"type": "floor_request"}}
RELEASE = {"type": "send", "message": {"type": "floor_release"}}


def tone(name: str) -> dict[str, str]:
    return {"type": "tone", "name": name}


def test_press_grant_release(page) -> None:
    press, grant, release, ack = run(page, [["press", None], GRANTED, ["release", None], RELEASED])
    # Sending starts on the press itself (the SFU's pre-roll keeps the first syllable).
    assert press["actions"] == [MIC_ON, REQUEST] and press["state"] == "requesting"
    assert grant["actions"] == [tone("permit")] and grant["state"] == "talking"
    assert release["actions"] == [MIC_OFF, RELEASE, tone("end")] and release["state"] == "idle"
    assert ack["actions"] == [] and ack["state"] == "idle" and ack["pending"] == 0


def test_queued_then_promoted(page) -> None:
    steps = [["press", None], queued(2), queued(1), GRANTED, ["release", None]]
    press, q2, q1, grant, release = run(page, steps)
    assert q2["actions"] == [MIC_OFF] and (q2["state"], q2["position"]) == ("queued", 2)
    assert q1["actions"] == [] and q1["position"] == 1  # unsolicited position update
    assert grant["actions"] == [MIC_ON, tone("permit")] and grant["state"] == "talking"
    assert release["actions"] == [MIC_OFF, RELEASE, tone("end")]


def test_release_while_queued_leaves_queue_without_mic_action(page) -> None:
    *_, release = run(page, [["press", None], queued(1), ["release", None]])
    assert release["actions"] == [RELEASE] and release["state"] == "idle"


def test_denied_is_busy_until_release(page) -> None:
    _, denied, release = run(page, [["press", None], DENIED, ["release", None]])
    assert denied["actions"] == [MIC_OFF, tone("busy")] and denied["state"] == "busy"
    assert release["actions"] == [] and release["state"] == "idle"  # nothing to take back


def test_revoked_stops_sending(page) -> None:
    *_, revoked, release = run(page, [["press", None], GRANTED, REVOKED, ["release", None]])
    assert revoked["actions"] == [MIC_OFF, tone("end")]
    assert (revoked["state"], revoked["reason"]) == ("revoked", "max_talk_time")
    assert release["actions"] == [] and release["state"] == "idle"


def test_stale_grant_after_quick_release_and_repress_is_ignored(page) -> None:
    # press, release, press within one round trip: the first grant answers a request
    # already taken back; only the second reply counts.
    steps = [["press", None], ["release", None], ["press", None], GRANTED, RELEASED, GRANTED]
    out = run(page, steps)
    assert out[3]["actions"] == [] and out[3]["state"] == "requesting" and out[3]["pending"] == 1
    assert out[5]["actions"] == [tone("permit")] and out[5]["state"] == "talking"


def test_grant_after_release_is_ignored(page) -> None:
    *_, late = run(page, [["press", None], ["release", None], GRANTED])
    assert late["actions"] == [] and late["state"] == "idle" and late["pending"] == 0


def test_latch_toggle(page) -> None:
    on, grant, off, again = run(page, [["toggle", None], GRANTED, ["toggle", None], ["toggle", None]])
    assert on["actions"] == [MIC_ON, REQUEST] and on["held"] is True
    assert off["actions"] == [MIC_OFF, RELEASE, tone("end")] and off["held"] is False
    assert again["state"] == "requesting"
    # After a revoke one tap starts a new request (not just clearing the old state).
    *_, tap = run(page, [["toggle", None], GRANTED, REVOKED, ["toggle", None]])
    assert tap["actions"] == [MIC_ON, REQUEST] and tap["state"] == "requesting"


def test_floor_lost_without_revoke_stops_sending(page) -> None:
    other = ["msg", {"type": "floor", "holder": {"id": "x", "name": "Xe"}, "queue_length": 0}]
    mine = ["msg", {"type": "floor", "holder": {"id": "me", "name": "Me"}, "queue_length": 0}]
    *_, keep, lost = run(page, [["press", None], GRANTED, mine, other])
    assert keep["actions"] == [] and keep["state"] == "talking"
    assert lost["actions"] == [MIC_OFF, tone("end")] and lost["reason"] == "lost"


def test_rate_limited_request_counts_as_denied(page) -> None:
    limited = ["msg", {"type": "error", "code": "rate_limited", "message": "slow", "fatal": False}]
    _, out = run(page, [["press", None], limited])
    assert out["state"] == "busy" and out["pending"] == 0 and out["reason"] == "rate_limited"


def test_not_ready_press_does_nothing_and_reset_stops_mic(page) -> None:
    press, release = run(page, [["press", None], ["release", None]], ready=False)
    assert press["actions"] == [] and release["actions"] == []
    *_, reset = run(page, [["press", None], GRANTED, ["reset", None], ["press", None]])
    assert reset["actions"] == [] and reset["state"] == "idle"  # not ready after a reset
    *_, reset = run(page, [["press", None], GRANTED, ["reset", None]])
    assert reset["actions"] == [MIC_OFF] and reset["held"] is False


STEP = st.one_of(
    st.sampled_from([["press", None], ["release", None], ["toggle", None], GRANTED, DENIED,
                     REVOKED, RELEASED, ["reset", None], ["ready", "me"]]),
    st.integers(min_value=1, max_value=4).map(queued),
    st.sampled_from([None, "me", "x"]).map(
        lambda h: ["msg", {"type": "floor", "holder": h and {"id": h, "name": h}, "queue_length": 0}]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=25))
def test_mic_is_on_exactly_while_requesting_or_talking(page, steps) -> None:
    mic = False
    requests = releases = 0
    for record in run(page, steps):
        for action in record["actions"]:
            if action["type"] == "mic":
                assert action["on"] != mic, "redundant mic switch"
                mic = action["on"]
            elif action["type"] == "send":
                kind = action["message"]["type"]
                requests += kind == "floor_request"
                releases += kind == "floor_release"
                # Every release takes back one earlier request.
                assert releases <= requests
        assert mic == (record["state"] in ("requesting", "talking")), record
        assert record["pending"] >= 0
        assert (record["position"] > 0) == (record["state"] == "queued")


def test_names_and_backoff(page) -> None:
    got = page.evaluate(
        """async () => {
      const n = await import('/static/names.js');
      const s = await import('/static/signaling.js');
      const m = await import('/static/meter.js');
      const rooms = Array.from({length: 200}, () => n.randomRoomName());
      return {
        rooms,
        norm: ['  Blue Otter_42 ', 'a/b', '', 'x'.repeat(64), 'x'.repeat(65), 'ÄB'].map(n.normalizeRoom),
        names: [' Sam ', '', '   ', 'a'.repeat(32), 'a'.repeat(33), '😀'.repeat(32),
                'bad\\u0007name', '<b>x</b>'].map(n.cleanName),
        delays: [0, 1, 2, 5, 30].map((i) => [s.backoffDelay(i, () => 0), s.backoffDelay(i, () => 1)]),
        url: s.signalingUrl({protocol: 'https:', host: 'example.org:8443'}),
        levels: [0, -1, 0.001, 1, 2].map(m.levelToFraction),
      };
    }"""
    )
    assert all(re.fullmatch(r"([a-z]{3,8}-){5}[a-z]{3,8}", r) for r in got["rooms"])
    assert len(set(got["rooms"])) == 200  # random, not a fixed list
    assert got["norm"] == ["blue-otter-42", None, None, "x" * 64, None, None]
    assert got["names"] == ["Sam", None, None, "a" * 32, None, "😀" * 32, None, "<b>x</b>"]
    assert got["delays"][0] == [375, 625]
    assert got["delays"][1] == [750, 1250]
    assert got["delays"][4] == [7500, 12500]  # capped at 10 s +- 25 %
    assert got["url"] == "wss://example.org:8443/ws"
    assert got["levels"][0] == 0 and got["levels"][1] == 0
    assert got["levels"][2] == pytest.approx(0.0, abs=1e-9)  # -60 dB is the floor
    assert got["levels"][3] == 1 and got["levels"][4] == 1


def test_generated_room_names_have_64_bits_from_the_csprng(page) -> None:
    # Issue 9, finding 1: 144,000 names were swept in minutes. The probe drives the real
    # generator with a scripted crypto.getRandomValues (Math.random throws): every draw's
    # choices, multiplied, are the names it can make (bench/roomsweep.py).
    space = measure_name_space(page)
    assert space.bits >= 64, space
    assert space.valid and space.longest <= 64
    words = page.evaluate("async () => (await import('/static/words.js')).ROOM_WORDS")
    # Read aloud: short common words, none sharing its first four letters with another.
    assert len(words) == len(set(words)) == 2048
    assert all(re.fullmatch(r"[a-z]{3,8}", w) for w in words)
    assert len({w[:4] for w in words}) == 2048
    assert 6 * max(map(len, words)) + 5 <= 64  # six of the longest still make a valid room name
    source = (Path(__file__).resolve().parents[2] / "www" / "names.js").read_text()
    assert "Math.random(" not in source
    typed = page.evaluate(
        """async () => {
      const n = await import('/static/names.js');
      return ['ops', 'team-alpha', n.randomRoomName(), 'abandon-ability-able-about-above-absent',
              'abandon-ability-able-about-above', 'zoo-zoo-zoo-zoo-zoo-zoo-zoo'].map(n.isGeneratedRoomName);
    }"""
    )
    assert typed == [False, False, True, True, False, False]


CHECK_NAMES_JS = """async (text) => {
  const {checkName} = await import('/static/names.js');
  return JSON.parse(text).map((raw) => checkName(raw));
}"""


def page_check(page: Any, raws: list[str]) -> list[dict[str, str]]:
    # As JSON text with \u escapes: lone surrogates and all reach the page unchanged.
    return page.evaluate(CHECK_NAMES_JS, json.dumps(raws))


def server_check(raw: str) -> dict[str, str]:
    try:
        return {"name": check_name(raw), "error": ""}
    except NameRefused as exc:
        return {"name": "", "error": str(exc)}


def test_display_name_rules_are_the_servers(page) -> None:
    raws = [raw for raw, _ in ACCEPTED + REFUSED]
    expected = [{"name": name, "error": ""} for _, name in ACCEPTED]
    expected += [{"name": "", "error": message} for _, message in REFUSED]
    assert page_check(page, raws) == expected


NAME_CHARS = st.sampled_from(
    list("aZ0 -(") + ["é", "e\u0301", "\u0301", "\u0336", "\u094d", "क", "ی", "😀", "👩",
                     "\ufe0f", "\u200d", "\u200c", "\u200b", "\u200e", "\u2060", "\u00ad",
                     "\u202e", "\u2028", "\ufeff", "\x07", "\t", "\u00a0", "\u3000", "\u3164",
                     "\U000e0041", "\ud800", "Ａ", "ß"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(NAME_CHARS, max_size=40).map("".join), min_size=1, max_size=40))
def test_random_names_get_the_same_verdict_from_page_and_server(page, raws: list[str]) -> None:
    assert page_check(page, raws) == [server_check(raw) for raw in raws]


def test_privacy_texts(page) -> None:
    got = page.evaluate(
        """async () => {
      const {describePrivacy} = await import('/static/view.js');
      const {RoomState} = await import('/static/room.js');
      const r = new RoomState();
      const before = r.passwordProtected;
      r.handle({type: 'joined', you: {id: 'a', name: 'A'}, members: [], floor: {}, password_protected: true}, 0);
      const known = r.passwordProtected;
      r.clear();
      return {before, known, cleared: r.passwordProtected,
              cases: [[false, null], [true, null], [false, true], [true, false], [false, false]]
                .map(([g, p]) => describePrivacy(g, p))};
    }"""
    )
    assert (got["before"], got["known"], got["cleared"]) == (None, True, None)
    typed_form, link_form, locked, link, public = got["cases"]
    assert "typed" in typed_form["joinNote"] and "guesses the name" in typed_form["joinNote"]
    assert "link" in link_form["joinNote"] and not typed_form["lock"] and not link_form["roomNote"]
    assert locked["lock"] is True and locked["state"] == "protected" and "password" in locked["roomNote"]
    assert link["lock"] is False and link["state"] == "link" and "link" in link["roomNote"]
    assert public["state"] == "public" and "public" in public["roomNote"]
    assert "guesses the name" in public["roomNote"]


def test_recording_is_said_before_and_after_joining(page) -> None:
    """recording.js: the join form's note from /healthz, the badge from joined.recorded."""
    got = page.evaluate(
        """async () => {
      const {describeRecording, serverRecords} = await import('/static/recording.js');
      const {RoomState} = await import('/static/room.js');
      const r = new RoomState();
      const before = r.recorded;
      r.handle({type: 'joined', you: {id: 'a', name: 'A'}, members: [], floor: {}, recorded: true}, 0);
      const recorded = r.recorded;
      r.handle({type: 'joined', you: {id: 'a', name: 'A'}, members: [], floor: {}, recorded: 'yes'}, 0);
      const strict = r.recorded;
      r.clear();
      const reply = (body, ok = true) => async () => ({ok, json: async () => body});
      return {before, recorded, strict, cleared: r.recorded,
              cases: [[null, null], [true, null], [false, true], [true, true]]
                .map(([s, j]) => describeRecording(s, j)),
              asked: [await serverRecords(reply({recording: true})),
                      await serverRecords(reply({recording: false})),
                      await serverRecords(reply({status: 'ok'})),
                      await serverRecords(reply({}, false)),
                      await serverRecords(async () => { throw new TypeError('offline'); }),
                      await serverRecords()]};
    }"""
    )
    assert (got["before"], got["recorded"], got["strict"], got["cleared"]) == (None, True, False, None)
    unknown, server_records, joined, both = got["cases"]
    assert unknown == {"badge": False, "joinNote": ""}
    assert "records" in server_records["joinNote"] and not server_records["badge"]
    assert joined["badge"] is True and joined["joinNote"] == ""
    assert both["badge"] is True and both["joinNote"]
    assert got["asked"] == [True, False, None, None, None, False]  # the last: this server


def test_room_state_follows_the_server(page) -> None:
    snaps = page.evaluate(
        """async () => {
      const {RoomState} = await import('/static/room.js');
      const r = new RoomState();
      const snap = () => ({you: r.you, members: [...r.members.values()], talker: r.talker,
                           queue: r.queueLength, deadline: r.talkDeadline});
      const out = [];
      r.handle({type: 'joined', you: {id: 'me', name: 'Ann'}, floor: {holder: {id: 'b', name: 'Bo'}, queue_length: 2},
                members: [{id: 'me', name: 'Ann'}, {id: 'b', name: 'Bo'}, null, {id: 5, name: 'x'}]}, 0);
      out.push(snap());
      r.handle({type: 'member_joined', member: {id: 'c', name: '<i>C</i>'}}, 0);
      r.handle({type: 'member_left', id: 'b'}, 0);
      r.handle({type: 'floor', holder: null, queue_length: 'x'}, 0);
      out.push(snap());
      r.handle({type: 'floor_granted', max_ms: 60000}, 1000);
      out.push(snap());
      r.handle({type: 'floor_granted', max_ms: null}, 1000);
      r.handle({type: 'something_new'}, 0);
      out.push(snap());
      r.clear();
      out.push(snap());
      return out;
    }"""
    )
    joined, changed, granted, unlimited, cleared = snaps
    assert joined == {"you": {"id": "me", "name": "Ann"}, "talker": {"id": "b", "name": "Bo"}, "queue": 2,
                      "members": [{"id": "me", "name": "Ann"}, {"id": "b", "name": "Bo"}], "deadline": None}
    assert changed["members"] == [{"id": "me", "name": "Ann"}, {"id": "c", "name": "<i>C</i>"}]
    assert changed["talker"] is None and changed["queue"] == 0
    assert granted["deadline"] == 61000 and unlimited["deadline"] is None
    assert cleared == {"you": None, "members": [], "talker": None, "queue": 0, "deadline": None}


INPUT_JS = """async (steps) => {
  const {TalkInput} = await import('/static/input.js');
  const input = new TalkInput();
  return steps.map(([op, ...args]) => input[op](...args));
}"""


def test_talk_input_rules(page) -> None:
    steps = [
        ["pointerDown", 1], ["pointerDown", 2], ["pointerUp", 2], ["pointerUp", 1],  # second finger
        ["keyDownEvent", False], ["keyDownEvent", True], ["keyDownEvent", False],  # repeats
        ["keyUpEvent"], ["keyUpEvent"],
        ["pointerDown", 3], ["lostFocus"], ["pointerUp", 3],  # blur / hidden releases
    ]
    assert page.evaluate(INPUT_JS, steps) == [
        "press", None, None, "release",
        "press", None, None,
        "release", None,
        "press", "release", None,
    ]
    latch = [
        ["setLatch", True], ["pointerDown", 4], ["pointerUp", 4], ["pointerDown", 5],
        ["keyDownEvent", False], ["keyUpEvent"], ["lostFocus"], ["setLatch", False],
    ]
    # Latched: each press toggles, nothing on release or blur; turning latch off releases.
    assert page.evaluate(INPUT_JS, latch) == [None, "toggle", None, "toggle", "toggle", None, None, "release"]


def test_talk_button_texts(page) -> None:
    got = page.evaluate(
        """async () => {
      const {describeTalk} = await import('/static/view.js');
      const floor = (state, extra = {}) => ({state, position: 0, reason: '', busyHolder: null, ...extra});
      const base = {canTalk: true, connection: 'ready', detail: '', latch: false, talker: null,
                    talkDeadline: null, now: 0, floor: floor('idle')};
      const cases = [
        {canTalk: false, connection: 'failed', detail: 'Room full.'},
        {canTalk: false, connection: 'connecting', detail: ''},
        {},
        {talker: {id: 'b', name: 'Bo'}},
        {connection: 'resetting', floor: floor('talking'), talkDeadline: 61000, now: 0},
        {floor: floor('talking'), latch: true},
        {floor: floor('queued', {position: 2}), talker: {id: 'b', name: 'Bo'}},
        {floor: floor('busy', {reason: 'busy', busyHolder: {id: 'x', name: 'Xe'}})},
        {floor: floor('busy', {reason: 'rate_limited'})},
        {floor: floor('revoked', {reason: 'max_talk_time'})},
        {floor: floor('revoked', {reason: 'no_media'})},
        {floor: floor('revoked', {reason: 'preempted', revokedBy: 'Boss'})},
        {floor: floor('revoked', {reason: 'preempted'})},
        {listenOnly: true, talker: {id: 'b', name: 'Bo'}},
        {listenOnly: true},
        {listenOnly: true, canTalk: false, connection: 'connecting'},
      ];
      return cases.map((c) => describeTalk({...base, ...c}));
    }"""
    )
    assert got == [
        {"state": "disabled", "sub": "Not connected", "status": "Room full."},
        {"state": "disabled", "sub": "Connecting…", "status": "Connecting…"},
        {"state": "idle", "sub": "Hold to talk", "status": "Ready. The channel is clear."},
        {"state": "idle", "sub": "Hold to talk", "status": "Bo is talking."},
        # While audio re-establishes after a media reset, the floor goes on as it was.
        {"state": "talking", "sub": "Release to stop", "status": "You are on air · 1:01 left"},
        {"state": "talking", "sub": "Tap to stop", "status": "You are on air."},
        {"state": "queued", "sub": "Queued #2", "status": "You are #2 in line, after Bo. Keep holding to talk next."},
        {"state": "busy", "sub": "Busy", "status": "Busy: Xe is talking."},
        {"state": "busy", "sub": "Busy", "status": "Too many presses. Wait a moment."},
        {"state": "revoked", "sub": "Stopped", "status": "Time is up: release, then press again to talk more."},
        {"state": "revoked", "sub": "No audio", "status": "Your audio stopped reaching the room, so your "
         "turn ended. Check your connection and microphone, then press again."},
        {"state": "revoked", "sub": "Pre-empted",
         "status": "Pre-empted by Boss. Press again when the channel is clear."},
        {"state": "revoked", "sub": "Pre-empted", "status": "Your turn was taken by someone "
         "with priority. Press again when the channel is clear."},
        # A listen-only member (signed link): no Talk button (ui.js hides "listening").
        {"state": "listening", "sub": "Listen only", "status": "Bo is talking. You can listen only."},
        {"state": "listening", "sub": "Listen only", "status": "You can listen only. The channel is clear."},
        {"state": "disabled", "sub": "Connecting…", "status": "Connecting…"},
    ]


def test_a_signed_link_and_its_permissions(page) -> None:
    got = page.evaluate(
        """async () => {
      const {tokenFromFragment} = await import('/static/joinlink.js');
      const {RoomState} = await import('/static/room.js');
      const {FloorMachine} = await import('/static/ptt.js');
      const b64 = (o) => btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o))))
        .replace(/=+$/, '').replace(/[+]/g, '-').replace(/[/]/g, '_');
      const jwt = `${b64({alg: 'HS256'})}.${b64({room: 'ops', name: 'Zoë', exp: 1})}.sig`;
      const r = new RoomState();
      r.handle({type: 'joined', you: {id: 'me', name: 'Lee'}, members: [], floor: {},
                permissions: {listen_only: true, priority: 0}}, 0);
      const listenOnly = r.listenOnly;
      r.clear();
      const m = new FloorMachine();
      m.setReady('me');
      m.press();
      m.handle({type: 'floor_granted', max_ms: 1000});
      m.handle({type: 'floor_revoked', reason: 'preempted', by: {id: 'b', name: 'Boss'}});
      return {link: tokenFromFragment('#token=' + jwt), garbage: tokenFromFragment('#token=abc'),
              none: tokenFromFragment(''), other: tokenFromFragment('#x=1'),
              listenOnly, cleared: r.listenOnly, state: m.state, reason: m.reason, by: m.revokedBy};
    }"""
    )
    assert got["link"]["name"] == "Zoë" and got["link"]["token"].endswith(".sig")
    assert got["garbage"] == {"token": "abc", "name": ""}  # the server judges it
    assert got["none"] is None and got["other"] is None
    assert got["listenOnly"] is True and got["cleared"] is False
    assert (got["state"], got["reason"], got["by"]) == ("revoked", "preempted", "Boss")
