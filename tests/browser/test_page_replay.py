"""Say-again's page module (www/replay.js), sans-IO, run in Chromium as the page loads it:
what the page says about keeping audio, the list, our own replay and its ends, and that a
server's odd message cannot make it show something it was not told."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

ANN = {"id": "t1", "talker": {"id": "m1", "name": "Ann"}, "started_at": 1_764_556_980_000,
       "duration_ms": 4180, "truncated": False}
BOB = {**ANN, "id": "t2", "talker": {"id": "m2", "name": "<b>Bob</b>"}, "truncated": True}

RUN_JS = """async (messages) => {
  const r = await import('/static/replay.js');
  const s = new r.SayAgain();
  const out = [];
  for (const m of messages) {
    let sent = null;
    if (m.request !== undefined) sent = s.request(m.request);
    else if (m.stop) sent = s.stop();
    else s.handle(m);
    out.push({sent, keeps: s.keeps, seconds: s.seconds, ids: s.items.map((t) => t.id),
              playing: s.playing && s.playing.id, pending: s.pending, note: s.note,
              now: r.describePlaying(s.playing, 0)});
  }
  return out;
}"""


def run(page: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return page.evaluate(RUN_JS, messages)


def test_what_the_page_says_about_keeping_audio(page: Any) -> None:
    said = page.evaluate("""async () => {
      const r = await import('/static/replay.js');
      return [r.describeKeeping(120), r.describeKeeping(60), r.describeKeeping(45),
              r.describeKeeping(90), r.describeKeeping(undefined)];
    }""")
    assert said == [
        "This room keeps the last 2 minutes of audio for say-again. Only you hear what you replay.",
        "This room keeps the last minute of audio for say-again. Only you hear what you replay.",
        "This room keeps the last 45 seconds of audio for say-again. Only you hear what you replay.",
        "This room keeps the last 90 seconds of audio for say-again. Only you hear what you replay.",
        "",
    ]


def test_a_play_button_names_talker_time_and_length(page: Any) -> None:
    got = page.evaluate("""async ([ann, bob]) => {
      const r = await import('/static/replay.js');
      const s = new r.SayAgain();
      s.handle({type: 'joined', replay: {seconds: 120, transmissions: [ann, bob]}});
      return s.items.map((t) => r.describeItem(t, 0));
    }""", [ANN, BOB])
    assert got == [  # newest first; a name is text, never markup
        {"text": "<b>Bob</b> · 02:43 · 0:04 (cut short)",
         "label": "Play again: <b>Bob</b> at 02:43, 0:04 (cut short)"},
        {"text": "Ann · 02:43 · 0:04", "label": "Play again: Ann at 02:43, 0:04"},
    ]


def test_a_replay_from_request_to_its_end(page: Any) -> None:
    steps = run(page, [
        {"type": "joined", "replay": {"seconds": 120, "transmissions": [ANN]}},
        {"request": "nope"},
        {"request": "t1"},
        {"type": "replay_started", **ANN},
        {"stop": True},
        {"type": "replay_ended", "id": "t1", "reason": "done"},
        {"stop": True},
    ])
    assert [s["keeps"] for s in steps] == [True] * 7 and steps[0]["seconds"] == 120
    assert steps[1]["sent"] is None  # not kept: nothing to ask
    assert steps[2]["sent"] == {"type": "replay", "id": "t1"} and steps[2]["pending"] == "t1"
    assert steps[3]["playing"] == "t1" and steps[3]["now"] == "Replaying Ann, 02:43"
    assert steps[4]["sent"] == {"type": "replay_stop"}
    assert steps[5]["playing"] is None and steps[5]["note"] == "" and steps[5]["now"] == ""
    assert steps[6]["sent"] is None


@pytest.mark.parametrize(("ending", "note"), [
    ({"type": "replay_ended", "id": "t1", "reason": "live"}, "Replay stopped: someone is talking."),
    ({"type": "replay_ended", "id": "t1", "reason": "gone"}, "That message is no longer kept."),
    ({"type": "error", "code": "rate_limited", "message": "x", "fatal": False},
     "Too many replays. Wait a moment."),
    ({"type": "error", "code": "replay_unavailable", "message": "your audio is not connected yet",
      "fatal": False}, "Cannot replay: your audio is not connected yet."),
])
def test_a_refused_or_interrupted_replay_says_why(page: Any, ending: dict[str, Any], note: str) -> None:
    steps = run(page, [
        {"type": "joined", "replay": {"seconds": 60, "transmissions": [ANN]}},
        {"request": "t1"},
        ending,
    ])
    assert steps[-1]["note"] == note and steps[-1]["pending"] is None
    assert steps[-1]["playing"] is None


def test_a_room_that_keeps_nothing_and_odd_messages(page: Any) -> None:
    steps = run(page, [
        {"type": "joined"},  # no replay field: the room keeps no audio
        {"type": "replay_list", "transmissions": [ANN]},  # ignored: we were not told it keeps
        {"type": "joined", "replay": {"seconds": 30, "transmissions": "junk"}},
        {"type": "replay_list", "transmissions": [ANN, {"id": 5}, None, {"id": "x"}]},
        {"type": "replay_ended", "id": "t1", "reason": "live"},  # not ours: no note
        {"type": "replay_list", "transmissions": []},
    ])
    assert steps[0]["keeps"] is False and steps[1]["ids"] == []
    assert steps[2]["keeps"] is True and steps[2]["ids"] == []
    assert steps[3]["ids"] == ["t1"]  # malformed entries skipped
    assert steps[4]["note"] == ""
    assert steps[5]["ids"] == []
