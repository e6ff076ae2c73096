"""The speaker's uplink watch (sfu/silence.py) through the media core, on a fake clock.

The media half of the end-of-media timer: the core reports ``speaker_active`` when the
room's speaker's RTP arrives (first packet, or first after a silence) and ``speaker_silent``
after ``SILENCE_AFTER`` seconds without any, with how long it has been silent. Nothing is
reported for a talker who merely pauses (Opus DTX: one packet per 400 ms), for anyone who is
not the speaker, or for a speaker who cannot send yet (not connected).
"""

from __future__ import annotations

import pytest

from sfu.core import PeerEvent
from sfu.silence import SILENCE_AFTER

from .memnet import Net
from .test_core import browser, make_core, room_of


@pytest.fixture
def net() -> Net:
    return Net(make_core())


def watch_events(net: Net) -> list[PeerEvent]:
    """The speaker events since the last call (other events are dropped)."""
    events = [e for e in net.events if e.kind.startswith("speaker_")]
    net.events.clear()
    return events


def talk(net: Net, talker: object, seconds: float, every: float = 0.02) -> None:
    """``talker`` sends one packet every ``every`` seconds for ``seconds``."""
    sent = 0.0
    while sent < seconds:
        talker.audio()  # type: ignore[attr-defined]
        net.pump()
        net.advance(every)
        sent += every


def test_a_talker_is_active_once_pauses_of_dtx_are_not_silence_and_a_stop_is(net: Net) -> None:
    a, _b = room_of(net, "a", "b")
    net.events.clear()
    net.core.set_speaker("r", "a", net.now)
    talk(net, a, 0.5)
    assert watch_events(net) == [PeerEvent("speaker_active", "a", "r")]
    talk(net, a, 4.0, every=0.4)  # Opus DTX in silence: one packet per 400 ms
    assert watch_events(net) == []
    net.advance(5.0)  # the client froze
    (silent,) = watch_events(net)
    assert (silent.kind, silent.peer_id, silent.room_id) == ("speaker_silent", "a", "r")
    assert SILENCE_AFTER <= silent.silent_for <= SILENCE_AFTER + 0.4 + 1e-9
    talk(net, a, 0.1)  # it came back
    assert watch_events(net) == [PeerEvent("speaker_active", "a", "r")]
    net.core.set_speaker("r", None, net.now)  # released: nobody is watched
    net.advance(10.0)
    assert watch_events(net) == []


def test_a_speaker_that_never_sends_is_reported_silent_from_its_grant(net: Net) -> None:
    room_of(net, "a", "b")
    net.events.clear()
    granted = net.now
    net.core.set_speaker("r", "a", net.now)
    assert net.core.poll_timeout() is not None and net.core.poll_timeout() <= granted + 1.0
    net.advance(3.0)
    (silent,) = watch_events(net)
    assert silent.kind == "speaker_silent" and silent.silent_for == pytest.approx(SILENCE_AFTER)


def test_a_speaker_is_watched_only_from_when_it_is_connected(net: Net) -> None:
    net.connect(browser("b", 1))
    a = net.join(browser("a", 2))  # offered, not yet checked: it cannot send
    net.core.set_speaker("r", "a", net.now)
    net.advance(5.0)
    assert watch_events(net) == []
    net.send(a, a.binding_request())
    if a.setup != "passive":
        a.start_dtls(net.now)
    net.pump()
    assert any(e.kind == "connected" and e.peer_id == "a" for e in net.events)
    connected = net.now
    net.advance(0.5)
    assert watch_events(net) == []
    net.advance(1.0)
    (silent,) = watch_events(net)
    assert silent.kind == "speaker_silent"
    assert silent.silent_for == pytest.approx(net.now - connected, abs=0.5)


def test_only_the_current_speaker_is_watched(net: Net) -> None:
    a, b, c = room_of(net, "a", "b", "c")
    net.events.clear()
    net.core.set_speaker("r", "a", net.now)
    talk(net, a, 0.2)
    talk(net, b, 0.2)  # not the speaker: pre-roll only, no event
    net.core.set_speaker("r", "b", net.now)  # a's pending check goes stale
    talk(net, b, 0.2)
    assert watch_events(net) == [PeerEvent("speaker_active", "a", "r"),
                                 PeerEvent("speaker_active", "b", "r")]
    net.core.remove_peer("b")  # the speaker left: nothing more about it, ever
    talk(net, c, 3.0)
    net.advance(3.0)
    assert watch_events(net) == []
    assert net.core.poll_timeout() is None or net.core.peer_stats("a") is not None


def test_rooms_are_watched_independently(net: Net) -> None:
    a = net.connect(browser("a", 1), room="one")
    net.connect(browser("b", 2), room="one")
    c = net.connect(browser("c", 3), room="two")
    net.connect(browser("d", 4), room="two")
    net.events.clear()
    net.core.set_speaker("one", "a", net.now)
    net.core.set_speaker("two", "c", net.now)
    talk(net, a, 0.1)
    talk(net, c, 0.1)
    for _ in range(100):  # c goes on talking; a stopped
        c.audio()
        net.pump()
        net.advance(0.02)
    events = watch_events(net)
    assert PeerEvent("speaker_active", "a", "one") in events
    assert PeerEvent("speaker_active", "c", "two") in events
    assert [(e.kind, e.peer_id) for e in events if e.kind == "speaker_silent"] == [
        ("speaker_silent", "a")]
