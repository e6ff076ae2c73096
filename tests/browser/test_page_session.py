"""Unit tests of the room page's session machine (www/session.js + www/negotiation.js).

The machine is sans-IO: inputs in, actions out. Here it runs in Chromium as the page loads
it, driven step by step through every transition (join, backoff, media failures, the media
reset and its automatic re-offer, fatal errors, leaving), then by hypothesis over random
event sequences, replaying its actions against a model of the sockets, peer connections and
timers a real driver would hold, to check the invariants: never two peer connections at
once, never a message on a socket that is not the current open one, at most one offer
waiting for its answer, the mic following the floor into every new peer connection, and
nothing automatic (no socket, no timer, no offer) once the visit stopped after a fatal
error, a failure or leaving.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.browser

# Runs [op, ...args] steps on a fresh Session. "$socket" / "$peer" / "$timer" stand for the
# number of the last socket / peer connection / timer the machine opened or started,
# "$oldSocket" / "$oldPeer" / "$oldTimer" for the one before (-1 if none): that is how a
# test speaks of "the current one" and "a stale one". Returns one record per step.
RUN_JS = """async (steps) => {
  const {Session} = await import('/static/session.js');
  const s = new Session('ops-1', {rand: () => 0.5});
  const ids = {socket: [], peer: [], timer: []};
  const pick = (kind, back) => { const l = ids[kind]; return l.length > back ? l[l.length - 1 - back] : -1; };
  const resolve = (a) => {
    const m = typeof a === 'string' && /^[$](old)?(socket|peer|timer)$/i.exec(a);
    return m ? pick(m[2].toLowerCase(), m[1] ? 1 : 0) : a;
  };
  const out = [];
  for (const [op, ...raw] of steps) {
    const args = raw.map(resolve);
    const actions = s[op](...args);
    for (const a of actions) {
      if (a.type === 'openSocket') ids.socket.push(a.socket);
      if (a.type === 'openPeer') ids.peer.push(a.peer);
      if (a.type === 'startTimer') ids.timer.push(a.timer);
    }
    out.push({op, args, actions, phase: s.phase, connection: s.connection, detail: s.detail,
              notice: s.notice, mode: s.mode, canTalk: s.canTalk, stopped: s.stopped,
              resets: s.resets, offersSent: s.offersSent});
  }
  return out;
}"""

Record = dict[str, Any]


def run(page: Any, steps: list[list[Any]]) -> list[Record]:
    return page.evaluate(RUN_JS, steps)


def types(record: Record) -> list[str]:
    return [a["type"] for a in record["actions"]]


def action(record: Record, kind: str) -> dict[str, Any]:
    found = [a for a in record["actions"] if a["type"] == kind]
    assert len(found) == 1, (kind, record["actions"])
    return found[0]


def msg(message: dict[str, Any], socket: str = "$socket") -> list[Any]:
    return ["socketMessage", socket, message]


ICE = [{"urls": "turn:127.0.0.1:3478", "username": "9:me", "credential": "c"}]
JOINED_MSG = {
    "type": "joined", "room": "ops-1", "you": {"id": "me", "name": "Ann"},
    "members": [{"id": "me", "name": "Ann"}], "ice_servers": ICE, "ice_transport_policy": "all",
    "floor": {"holder": None, "queue_length": 0}, "max_talk_ms": 60000,
}
JOIN = ["join", "Ann", ""]
MIC = ["micReady"]
OPENED = ["socketOpened", "$socket"]
JOINED = msg(JOINED_MSG)
OFFER = ["offerReady", "$peer", "v=0 offer"]
ANSWER = msg({"type": "answer", "sdp": "v=0 answer"})
CONNECTED = msg({"type": "media", "state": "connected"})
RESET = msg({"type": "media", "state": "reset", "reason": "media worker restarted"})
MEDIA_FAILED = msg({"type": "media", "state": "failed", "reason": "no ICE consent for 30 s"})
TO_READY = [JOIN, MIC, OPENED, JOINED, OFFER, ANSWER, CONNECTED]
# After a reset: the new peer connection's offer, its answer, connected.
REOFFER = [OFFER, ANSWER, CONNECTED]


def error(code: str, fatal: bool, text: str = "why") -> list[Any]:
    return msg({"type": "error", "code": code, "message": text, "fatal": fatal})


def test_join_to_ready_step_by_step(page) -> None:
    join, mic, opened, joined, offer, answer, connected = run(page, TO_READY)
    assert join["actions"] == [{"type": "openMic"}] and join["connection"] == "mic"
    assert types(mic) == ["wakeLock", "openSocket"] and mic["connection"] == "connecting"
    socket = action(mic, "openSocket")["socket"]
    assert opened["actions"] == [
        {"type": "send", "socket": socket, "message": {"type": "join", "room": "ops-1", "name": "Ann"}}
    ]
    assert types(joined) == ["room", "openPeer"] and joined["phase"] == "media"
    assert joined["detail"] == "Connecting audio…" and not joined["canTalk"]
    peer = action(joined, "openPeer")
    assert peer["iceServers"] == ICE and peer["policy"] == "all" and peer["sending"] is False
    assert offer["actions"] == [
        {"type": "send", "socket": socket, "message": {"type": "offer", "sdp": "v=0 offer"}}
    ]
    assert answer["actions"] == [{"type": "acceptAnswer", "peer": peer["peer"], "sdp": "v=0 answer"}]
    assert connected["actions"] == [] and connected["phase"] == "ready"
    assert connected["connection"] == "ready" and connected["canTalk"] and connected["offersSent"] == 1


def test_password_goes_with_join_and_a_wrong_one_shows_the_form(page) -> None:
    *_, opened, wrong = run(page, [["join", "Ann", "pw"], MIC, OPENED, error("bad_password", True)])
    assert opened["actions"][0]["message"] == {"type": "join", "room": "ops-1", "name": "Ann", "password": "pw"}
    assert types(wrong) == ["closeSocket", "leaveRoom", "showForm"] and wrong["mode"] == "join"
    assert action(wrong, "showForm")["passwordError"] == "Wrong password. Try again."
    *_, asked = run(page, [JOIN, MIC, OPENED, error("bad_password", True)])
    assert action(asked, "showForm")["passwordError"] == "This room has a password. Please enter it."
    *_, form, again = run(page, [JOIN, MIC, OPENED, error("bad_name", True, "too long"), ["join", "Bo", ""]])
    assert action(form, "showForm")["nameError"] == "That name cannot be used: too long"
    assert types(again) == ["wakeLock", "openSocket"]  # the mic stays open across the form


def test_a_password_for_an_open_room_shows_the_form_with_why(page) -> None:
    *_, refused, again = run(page, [["join", "Ann", "pw"], MIC, OPENED, error("room_not_protected", True),
                                    ["join", "Ann", ""]])
    assert types(refused) == ["closeSocket", "leaveRoom", "showForm"] and refused["mode"] == "join"
    text = action(refused, "showForm")["passwordError"]
    assert "without a password" in text and "anyone who knows its name can listen" in text
    assert types(again) == ["wakeLock", "openSocket"]  # joining without one is the user's call


def test_a_signed_link_joins_with_its_token_and_its_refusals_stop(page) -> None:
    *_, opened, expired = run(page, [["join", "Ann", "", "h.p.s"], MIC, OPENED,
                                     error("token_expired", True)])
    # The token alone admits and names us: no name, no password goes with it.
    assert opened["actions"][0]["message"] == {"type": "join", "room": "ops-1", "token": "h.p.s"}
    assert expired["phase"] == "failed" and expired["stopped"] and expired["notice"]["retry"] == ""
    assert "expired" in expired["detail"]
    *_, bad = run(page, [["join", "", "", "h.p.s"], MIC, OPENED, error("bad_token", True, "for another room")])
    assert bad["phase"] == "failed" and "for another room" in bad["detail"]


def test_a_listen_only_link_never_asks_for_the_mic_and_only_receives(page) -> None:
    join, opened, joined, *_, connected, reset = run(page, [
        ["join", "Lee", "", "h.p.s", True], OPENED, JOINED, OFFER, ANSWER, CONNECTED, RESET])
    assert types(join) == ["wakeLock", "openSocket"] and join["connection"] == "connecting"
    assert opened["actions"][0]["message"] == {"type": "join", "room": "ops-1", "token": "h.p.s"}
    assert action(joined, "openPeer")["listenOnly"] is True
    assert connected["phase"] == "ready"
    assert action(reset, "openPeer")["listenOnly"] is True  # every new peer connection too
    *_, ordinary = run(page, [["join", "Ann", "", "h.p.s"], MIC, OPENED, JOINED])
    assert action(ordinary, "openPeer")["listenOnly"] is False


def test_try_later_rejoins_after_the_time_the_server_gives(page) -> None:
    busy = msg({"type": "error", "code": "try_later", "message": "wait 4.0 s", "fatal": False,
                "retry_ms": 4000})
    *_, refused, fired, opened = run(page, [["join", "Ann", "pw"], MIC, OPENED, busy,
                                           ["timerFired", "$timer"], OPENED])
    assert types(refused) == ["closeSocket", "leaveRoom", "startTimer"]
    assert refused["phase"] == "backoff" and action(refused, "startTimer")["delay"] == 4000
    assert refused["notice"]["text"] == "The server is busy (wait 4.0 s). Retrying in 4 s…"
    assert types(fired) == ["openSocket"]
    assert opened["actions"][0]["message"]["password"] == "pw"  # the same join, later
    *_, ready_busy = run(page, [*TO_READY, busy])
    assert ready_busy["actions"] == [] and ready_busy["phase"] == "ready"  # joined: ignored


def test_reset_reoffers_on_the_same_socket_and_keeps_the_room(page) -> None:
    records = run(page, [*TO_READY, RESET, ["offerReady", "$oldPeer", "v=0 stale"], *REOFFER])
    ready, reset, stale, offer, answer, connected = records[6:]
    socket = action(records[1], "openSocket")["socket"]
    old = action(records[3], "openPeer")["peer"]
    # The old peer connection goes, a new one comes with the same ICE settings; the socket,
    # the membership (no leaveRoom), the room and the floor are untouched.
    assert types(reset) == ["closePeer", "openPeer"]
    assert action(reset, "closePeer")["peer"] == old
    new = action(reset, "openPeer")
    assert new["peer"] != old and new["iceServers"] == ICE and new["policy"] == "all"
    assert reset["phase"] == "resetting" and reset["connection"] == "resetting" and reset["canTalk"]
    assert reset["notice"] == {"text": "Reconnecting audio…", "retry": ""} and reset["resets"] == 1
    assert stale["actions"] == []  # the closed peer connection's late offer goes nowhere
    assert offer["actions"] == [{"type": "send", "socket": socket, "message": {"type": "offer", "sdp": "v=0 offer"}}]
    assert answer["actions"] == [{"type": "acceptAnswer", "peer": new["peer"], "sdp": "v=0 answer"}]
    assert connected["phase"] == "ready" and connected["notice"] == {"text": "", "retry": ""}
    assert connected["offersSent"] == 2 and ready["offersSent"] == 1


def test_a_second_joined_replaces_the_room_and_the_reset_uses_the_new_nodes_ice(page) -> None:
    # A cluster moved the room to another node (its node failed, or drained): that node
    # sends `joined` again on the same socket, then `media` `reset`.
    ice = [{"urls": "turn:127.0.0.2:3478", "username": "9:me", "credential": "other"}]
    again = {**JOINED_MSG, "members": [{"id": "me", "name": "Ann"}, {"id": "b", "name": "Bo"}],
             "ice_servers": ice}
    failed = msg({"type": "media", "state": "reset", "reason": "node_failed"})
    records = run(page, [*TO_READY, msg(again), failed, *REOFFER])
    ready, joined, reset, offer, answer, connected = records[6:]
    socket = action(records[1], "openSocket")["socket"]
    # the room's new state goes to the room and the floor machine; nothing else happens yet
    assert joined["actions"] == [{"type": "room", "message": again}]
    assert joined["phase"] == "ready" and joined["canTalk"]
    assert types(reset) == ["closePeer", "openPeer"]
    assert action(reset, "openPeer")["iceServers"] == ice  # the new node's TURN credentials
    assert offer["actions"][0]["socket"] == socket  # the same socket
    assert connected["phase"] == "ready" and connected["resets"] == 1
    # a `joined` that makes no sense is still ignored
    bad = run(page, [*TO_READY, msg({"type": "joined", "you": None})])[-1]
    assert bad["actions"] == [] and bad["phase"] == "ready"


def test_reset_while_talking_carries_the_mic_into_the_new_peer_connection(page) -> None:
    steps = [*TO_READY, ["setMic", True], RESET, ["setMic", False], ["setMic", True], *REOFFER,
             ["setMic", False]]
    records = run(page, steps)
    talk, reset, off, on = records[7:11]
    first = action(records[3], "openPeer")["peer"]
    assert talk["actions"] == [{"type": "sending", "peer": first, "on": True}]
    new = action(reset, "openPeer")
    assert new["sending"] is True  # the floor still says talk: the new sender carries the mic
    assert off["actions"] == [{"type": "sending", "peer": new["peer"], "on": False}]
    assert on["actions"] == [{"type": "sending", "peer": new["peer"], "on": True}]
    assert records[-1]["actions"] == [{"type": "sending", "peer": new["peer"], "on": False}]
    assert all(r["phase"] in ("resetting", "ready") for r in records[8:])


def test_reset_storm_gives_up_after_a_few_in_a_row(page) -> None:
    # Resets with a good connection in between go on for ever...
    records = run(page, [*TO_READY, *([RESET, *REOFFER] * 4)])
    assert records[-1]["phase"] == "ready" and records[-1]["resets"] == 4
    # ...but three in a row without one stop with the "keeps failing" path.
    records = run(page, [*TO_READY, RESET, OFFER, RESET, RESET, ["retry"]])
    first, second, third, retry = records[7], records[9], records[10], records[11]
    assert first["phase"] == "resetting" and second["phase"] == "resetting"
    assert types(third) == ["closeSocket", "closePeer", "leaveRoom"] and third["phase"] == "failed"
    assert third["notice"] == {"text": "The audio connection keeps being reset (media worker restarted).",
                               "retry": "Try again"}
    assert types(retry) == ["openSocket"] and retry["connection"] == "connecting"


def test_failures_and_resets_share_the_bound(page) -> None:
    steps = [*TO_READY, RESET, ["peerFailed", "$peer"], RESET]
    *_, failed, reset = run(page, steps)
    assert failed["phase"] == "resetting"  # the second setback: a new peer connection, same socket
    assert reset["phase"] == "failed" and "keeps being reset" in reset["notice"]["text"]


def test_refused_reoffer_is_retried_later_then_given_up(page) -> None:
    refused = error("bad_offer", False, "media worker unavailable")
    records = run(page, [*TO_READY, RESET, OFFER, refused, ["timerFired", "$timer"], *REOFFER])
    refusal, fired = records[9], records[10]
    assert types(refusal) == ["closePeer", "startTimer"] and refusal["phase"] == "resetting"
    assert action(refusal, "startTimer")["delay"] == 500  # backoffDelay(0) with no jitter
    assert types(fired) == ["openPeer"] and action(fired, "openPeer")["iceServers"] == ICE
    assert records[-1]["phase"] == "ready"
    # A worker that never comes back: a few refusals, then the "keeps failing" path.
    steps = [*TO_READY, RESET] + [OFFER, refused, ["timerFired", "$timer"]] * 4
    records = run(page, steps)
    delays = [action(r, "startTimer")["delay"] for r in records if "startTimer" in types(r)]
    assert delays == [500, 1000, 2000]
    gave_up = records[8 + 3 * 3 + 1]
    assert gave_up["phase"] == "failed" and gave_up["notice"]["retry"] == "Try again"
    assert "keeps failing (media worker unavailable)" in gave_up["notice"]["text"]


def test_bad_offer_of_the_first_offer_stops(page) -> None:
    *_, refused = run(page, [*TO_READY[:5], error("bad_offer", False, "no Opus")])
    assert refused["phase"] == "failed" and types(refused) == ["closeSocket", "closePeer", "leaveRoom"]
    assert refused["notice"]["text"] == "The server could not use this browser's audio setup: no Opus"


def test_an_offer_waits_for_the_outstanding_one(page) -> None:
    # A reset before the first offer was answered (not what the server does, but possible
    # to meet): the new offer is held until that answer, which is for a closed peer connection.
    records = run(page, [*TO_READY[:5], RESET, OFFER, ANSWER, ANSWER, CONNECTED])
    reset, held, stale_answer, answer, connected = records[5:]
    new = action(reset, "openPeer")["peer"]
    assert held["actions"] == []
    assert stale_answer["actions"] == [
        {"type": "send", "socket": action(records[1], "openSocket")["socket"],
         "message": {"type": "offer", "sdp": "v=0 offer"}}
    ]
    assert answer["actions"] == [{"type": "acceptAnswer", "peer": new, "sdp": "v=0 answer"}]
    assert connected["phase"] == "ready"


def test_connected_counts_only_for_the_answered_peer_connection(page) -> None:
    *_, early = run(page, [*TO_READY, RESET, CONNECTED])
    assert early["phase"] == "resetting"  # the new offer is not even answered yet
    *_, browser_says = run(page, [*TO_READY, RESET, ["peerConnected", "$oldPeer"], ["peerConnected", "$peer"]])
    assert browser_says["phase"] == "ready"


def test_lost_socket_backs_off_and_rejoins(page) -> None:
    steps = [*TO_READY, ["socketClosed", "$socket", True], ["timerFired", "$oldTimer"],
             ["timerFired", "$timer"], ["socketClosed", "$socket", False], ["retry"], OPENED, JOINED]
    lost, stale, fired, unreachable, now, opened, joined = run(page, steps)[7:]
    assert types(lost) == ["closePeer", "leaveRoom", "startTimer"] and lost["phase"] == "backoff"
    assert lost["connection"] == "reconnecting" and action(lost, "startTimer")["delay"] == 500
    assert lost["notice"] == {"text": "Connection lost. Retrying in 1 s…", "retry": "Retry now"}
    assert lost["detail"] == "Connection lost. Reconnecting…"
    assert stale["actions"] == []
    assert types(fired) == ["openSocket"] and fired["connection"] == "reconnecting"
    assert fired["notice"] == {"text": "Connection lost. Reconnecting…", "retry": ""}
    assert action(unreachable, "startTimer")["delay"] == 1000
    assert unreachable["notice"]["text"] == "Cannot reach the server. Retrying in 1 s…"
    assert types(now) == ["cancelTimer", "openSocket"]  # "Retry now" does not wait
    assert types(opened) == ["send"] and joined["phase"] == "media"
    assert joined["notice"] == {"text": "", "retry": ""}  # back in the room


def test_media_failures_rejoin_or_reoffer_then_keep_failing(page) -> None:
    # The server lost our media (the session ended): rejoin. The browser's ICE failed (the
    # session goes on): a new peer connection offered on the same socket (a network handover).
    rejoin = [["timerFired", "$timer"], OPENED, JOINED, OFFER, ANSWER]
    records = run(page, [*TO_READY, MEDIA_FAILED, *rejoin, ["peerFailed", "$peer"], OFFER, ANSWER,
                         ["answerRefused", "$peer", "bad SDP"]])
    first, second, third = records[7], records[13], records[-1]
    assert first["phase"] == "backoff" and types(first)[:2] == ["closeSocket", "closePeer"]
    assert first["notice"]["text"].startswith("Audio connection lost (no ICE consent for 30 s).")
    assert second["phase"] == "resetting" and types(second) == ["closePeer", "openPeer"]
    assert third["phase"] == "failed" and third["notice"] == {
        "text": "The audio connection keeps failing (the answer was refused (bad SDP)). A firewall may block UDP.",
        "retry": "Try again",
    }


def test_fatal_errors_stop_for_good(page) -> None:
    cases = {
        "room_full": ("This room is full: why. Try again later.", "Try again"),
        "bad_room": ("This room name cannot be used: why", ""),
        "kicked": ("The server ended the session: why", "Reconnect"),
    }
    for code, (text, retry) in cases.items():
        records = run(page, [*TO_READY, error(code, True), ["socketClosed", "$socket", True],
                             ["timerFired", "$timer"], ["peerFailed", "$peer"], RESET])
        stop = records[7]
        assert stop["phase"] == "failed" and stop["notice"] == {"text": text, "retry": retry}, code
        assert types(stop) == ["closeSocket", "closePeer", "leaveRoom"], code
        assert all(r["actions"] == [] and r["phase"] == "failed" for r in records[8:]), code
    *_, warned, limited = run(page, [*TO_READY, error("bad_message", False), error("rate_limited", False)])
    assert types(warned) == ["warn"] and warned["phase"] == "ready"
    assert types(limited) == ["room"] and limited["phase"] == "ready"


def test_peer_connection_that_cannot_start(page) -> None:
    relay = msg({**JOINED_MSG, "ice_transport_policy": "relay"})
    *_, no_path = run(page, [JOIN, MIC, OPENED, relay, ["peerNoPath", "$peer", "401 Unauthorized"]])
    assert action(run(page, [JOIN, MIC, OPENED, relay])[-1], "openPeer")["policy"] == "relay"
    assert no_path["phase"] == "failed" and no_path["notice"]["text"].startswith(
        "Could not reach the media relay (TURN): 401 Unauthorized.")
    *_, broken = run(page, [JOIN, MIC, OPENED, JOINED, ["peerError", "$peer", "no RTCPeerConnection"]])
    assert broken["notice"]["text"] == "This browser could not set up audio: no RTCPeerConnection"


def test_mic_problems(page) -> None:
    failed, retry = run(page, [JOIN, ["micFailed", "Microphone access was denied."], ["retry"]])[1:]
    assert failed["phase"] == "failed" and failed["notice"]["retry"] == "Try again"
    assert retry["actions"] == [{"type": "openMic"}] and retry["phase"] == "mic"
    *_, ended, rejoin = run(page, [*TO_READY, ["micEnded"], ["retry"]])
    assert types(ended) == ["releaseMic", "closeSocket", "closePeer", "leaveRoom"]
    assert ended["notice"] == {"text": "The microphone stopped (another app may have taken it).", "retry": "Rejoin"}
    assert rejoin["actions"] == [{"type": "openMic"}]  # a new mic, then a new session


def test_leave_and_pagehide_end_everything(page) -> None:
    *_, leave, after = run(page, [*TO_READY, ["leave"], ["retry"]])
    assert types(leave) == ["closeSocket", "closePeer", "leaveRoom", "releaseMic", "releaseWakeLock", "goHome"]
    assert after["actions"] == [] and after["phase"] == "left"
    *_, hidden, timer = run(page, [*TO_READY[:3], ["pageHide"], ["socketClosed", "$socket", True]])
    assert types(hidden) == ["closeSocket", "leaveRoom"] and timer["actions"] == []


# ---- random sequences -------------------------------------------------------------------

MESSAGES = [
    JOINED_MSG,
    {"type": "answer", "sdp": "v=0 answer"},
    {"type": "media", "state": "connected"},
    {"type": "media", "state": "failed", "reason": "gone"},
    {"type": "media", "state": "reset", "reason": "media worker restarted"},
    {"type": "member_joined", "member": {"id": "x", "name": "Xe"}},
    {"type": "floor", "holder": {"id": "me", "name": "Ann"}, "queue_length": 0},
    {"type": "error", "code": "bad_offer", "message": "no", "fatal": False},
    {"type": "error", "code": "rate_limited", "message": "slow", "fatal": False},
    {"type": "error", "code": "bad_message", "message": "odd", "fatal": False},
    {"type": "error", "code": "room_full", "message": "full", "fatal": True},
    {"type": "error", "code": "bad_password", "message": "pw", "fatal": True},
    {"type": "error", "code": "room_not_protected", "message": "open", "fatal": True},
    {"type": "error", "code": "internal", "message": "bye", "fatal": True},
    {"type": "something_new"},
    # network handover (test_page_handover.py): resumable joins, resumes, refused resumes
    {**JOINED_MSG, "resume": {"secret": "s1", "grace_ms": 10000}},
    {**JOINED_MSG, "resumed": True, "resume": {"secret": "s2", "grace_ms": 10000}},
    {"type": "error", "code": "resume_failed", "message": "late", "fatal": False},
]
SOCKET = st.sampled_from(["$socket", "$socket", "$socket", "$oldSocket"])
PEER = st.sampled_from(["$peer", "$peer", "$oldPeer"])
# The messages that drive media (answer, connected, reset) come more often than the rest.
MESSAGE = st.sampled_from([*MESSAGES, *MESSAGES[1:5] * 2])
MESSAGE_STEP = st.tuples(SOCKET, MESSAGE).map(lambda t: ["socketMessage", *t])
OFFER_STEP = PEER.map(lambda p: ["offerReady", p, "v=0 offer"])
STEP = st.one_of(
    st.sampled_from([
        JOIN, ["join", "Ann", "pw"], ["showForm", ""], MIC, ["micFailed", "denied"], ["micEnded"],
        ["retry"], ["leave"], ["pageHide"], ["relay", {"type": "floor_request"}],
        ["networkChanged"],
    ]),
    st.booleans().map(lambda on: ["setMic", on]),
    SOCKET.map(lambda s: ["socketOpened", s]),
    st.tuples(SOCKET, st.booleans()).map(lambda t: ["socketClosed", *t]),
    MESSAGE_STEP, MESSAGE_STEP, MESSAGE_STEP,
    OFFER_STEP, OFFER_STEP,
    st.tuples(st.sampled_from(["peerConnected", "peerFailed", "peerNoPath", "peerError", "answerRefused",
                               "peerDisconnected"]),
              PEER).map(lambda t: [t[0], t[1], "x"]),
    st.sampled_from(["$timer", "$timer", "$oldTimer"]).map(lambda t: ["timerFired", t]),
)
JOINED_PHASES = {"media", "ready", "resetting"}
STOP_ERRORS = {"room_full", "bad_password", "bad_room", "bad_name", "room_not_protected"}


class DriverModel:
    """What a real driver (www/driver.js) holds, rebuilt from the actions, with the checks."""

    def __init__(self) -> None:
        self.sockets: dict[int, str] = {}  # id -> "opening" | "open" | "closed"
        self.peers: dict[int, str] = {}  # id -> "open" | "closed"
        self.timers: set[int] = set()
        self.mic = False
        self.outstanding = 0  # offers sent, reply not yet delivered
        self.phase = "idle"

    def live(self) -> list[int]:
        return [s for s, state in self.sockets.items() if state != "closed"]

    def step(self, r: Record) -> None:
        op, args, before = r["op"], r["args"], self.phase
        state = self.sockets.get(args[0]) if args and op.startswith("socket") else None
        delivered = state in ("opening", "open")  # a real driver gets no event of a closed one
        if op == "socketOpened" and delivered:
            self.sockets[args[0]] = "open"
        elif op == "socketClosed" and delivered:
            self.sockets[args[0]] = "closed"
            self.outstanding = 0
        elif op == "socketMessage" and delivered and self.sockets[args[0]] == "open":
            m = args[1]
            if m["type"] == "answer" or (m["type"] == "error" and m["code"] == "bad_offer"):
                self.outstanding = max(0, self.outstanding - 1)
        elif op == "timerFired":
            self.timers.discard(args[0])
        elif op == "setMic":
            self.mic = args[0]
        for a in r["actions"]:
            self.act(a)
        self.phase = r["phase"]
        self.check_step(op, args, before, state == "open", r)

    def act(self, a: dict[str, Any]) -> None:
        kind = a["type"]
        if kind == "openSocket":
            assert a["socket"] not in self.sockets and not self.live(), "two sockets at once"
            self.sockets[a["socket"]] = "opening"
        elif kind == "closeSocket":
            assert self.sockets.get(a["socket"]) in ("opening", "open"), "closing a closed socket"
            self.sockets[a["socket"]] = "closed"
            self.outstanding = 0
        elif kind == "send":
            assert self.sockets.get(a["socket"]) == "open", "a message on a socket that is not open"
            if a["message"]["type"] == "offer":
                assert self.outstanding == 0, "a second offer before the first was answered"
                assert "open" in self.peers.values(), "an offer without a peer connection"
                self.outstanding = 1
        elif kind == "openPeer":
            assert "open" not in self.peers.values(), "two peer connections at once"
            assert a["peer"] not in self.peers
            assert a["sending"] == self.mic, "the new peer connection does not follow the floor"
            self.peers[a["peer"]] = "open"
        elif kind == "closePeer":
            assert self.peers.get(a["peer"]) == "open", "closing a closed peer connection"
            self.peers[a["peer"]] = "closed"
        elif kind in ("acceptAnswer", "sending"):
            assert self.peers.get(a["peer"]) == "open", f"{kind} for a closed peer connection"
            if kind == "sending":
                assert a["on"] == self.mic
        elif kind == "startTimer":
            assert not self.timers, "two timers at once"
            self.timers.add(a["timer"])
        elif kind == "cancelTimer":
            assert a["timer"] in self.timers, "cancelling a timer that is not running"
            self.timers.discard(a["timer"])

    def check_step(self, op: str, args: list[Any], before: str, was_open: bool, r: Record) -> None:
        kinds = set(types(r))
        if before == "left":
            assert r["actions"] == [] and r["phase"] == "left", "something happened after leaving"
        if before in ("idle", "form", "failed", "left") and op not in ("join", "retry"):
            # Stopped: nothing starts on its own (no reconnect, no offer, no timer).
            assert not kinds & {"openSocket", "openPeer", "startTimer", "send", "openMic"}, (op, kinds)
        if op == "socketMessage" and was_open:
            m = args[1]
            if m["type"] == "error" and before in JOINED_PHASES | {"connecting"}:
                if m["fatal"] or m["code"] in STOP_ERRORS:
                    assert r["phase"] in ("failed", "form") and r["stopped"], m
            if m["type"] == "media" and m["state"] == "reset" and before in JOINED_PHASES:
                assert r["phase"] in ("resetting", "failed"), r["phase"]
                if r["phase"] == "resetting":
                    assert not kinds & {"closeSocket", "openSocket", "leaveRoom", "room"}, kinds
        if r["phase"] in JOINED_PHASES:
            assert [self.sockets[s] for s in self.live()] == ["open"], "joined without an open socket"
        if r["phase"] == "backoff":
            assert not self.live() and len(self.timers) == 1
        assert r["canTalk"] == (r["phase"] in ("ready", "resetting"))


# Random steps seldom build a whole join on their own: start most examples from a point of
# interest (nothing yet, an offer waiting for its answer, ready, talking, resetting).
PREFIXES = [[], TO_READY[:5], TO_READY, [*TO_READY, ["setMic", True]], [*TO_READY, RESET]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), steps=st.lists(STEP, max_size=40))
def test_invariants_over_random_event_sequences(page, prefix, steps) -> None:
    model = DriverModel()
    for record in run(page, [*prefix, *steps]):
        model.step(record)


# Media only, from a joined session: resets (storms of them), offers of current and replaced
# peer connections, answers, refusals, the mic switching, re-offer timers.
MEDIA_STEP = st.sampled_from([
    RESET, RESET, OFFER, OFFER, ["offerReady", "$oldPeer", "v=0 offer"], ANSWER, CONNECTED,
    error("bad_offer", False), ["timerFired", "$timer"], ["setMic", True], ["setMic", False],
    ["peerConnected", "$peer"], ["peerFailed", "$peer"], ["peerConnected", "$oldPeer"],
    ["peerDisconnected", "$peer"],
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES[1:]), steps=st.lists(MEDIA_STEP, max_size=30))
def test_invariants_over_random_media_sequences(page, prefix, steps) -> None:
    model = DriverModel()
    for record in run(page, [*prefix, *steps]):
        model.step(record)
