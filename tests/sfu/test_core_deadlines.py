"""A timer run at the very deadline the core gave must make progress (found by fuzzing).

The core files each peer at ``Peer.deadline()`` and ``handle_timeout(now)`` runs every
entry with a deadline ``<= now``. Consent and reaping were judged as ``now - since >=
timeout`` while the deadline was ``since + timeout``; in floating point the two disagree
for many ``since`` (``(1000.1 + 30) - 1000.1 < 30``), so at ``now == deadline`` nothing
expired, the peer was filed again at the same deadline and ``handle_timeout`` never
returned: a hung media worker. tests/fuzz's ``core`` target hit it through the in-memory
network, whose clock steps exactly onto each deadline. sfu/silence.py's end-of-media check
had the same shape (``now - heard_at < silence_after`` at ``heard_at + silence_after``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from sfu.ice import IceLiteSession

from .memnet import Net
from .test_core import browser, make_core

#: Start times for which ``(start + 30.0) - start < 30.0`` in IEEE 754 doubles.
STARTS = [1000.08, 1000.1, 1000.12]


def test_these_starts_do_round_below_the_timeout() -> None:
    assert all((start + 30.0) - start < 30.0 for start in STARTS)


@pytest.mark.parametrize("start", STARTS)
def test_consent_expires_at_its_own_deadline(start: float) -> None:
    never_checked = IceLiteSession("rmte", "r" * 22, created=start)
    assert never_checked.consent_expired(never_checked.consent_deadline())
    checked = IceLiteSession("rmte", "r" * 22, created=0.0)
    checked.last_valid_check = start
    assert checked.consent_expired(checked.consent_deadline())
    assert not checked.consent_expired(checked.consent_deadline() - 1e-6)


def _returns(call: Callable[[], None]) -> None:
    """Run ``call``; a hang (the bug) becomes a failure instead of a stuck suite."""
    def hung(*_: object) -> None:
        raise AssertionError("handle_timeout did not return: a timer that never moves on")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("start", STARTS)
def test_a_peer_that_never_connects_is_reaped_exactly_at_its_deadline(start: float) -> None:
    net = Net(make_core(), now=start)
    net.join(browser("a", 1))
    due = net.core.poll_timeout()
    assert due == start + 30.0
    _returns(lambda: net.core.handle_timeout(due))
    assert net.core.peer_count == 0
    assert [(e.kind, e.peer_id) for e in iter(net.core.poll_event, None)] == [
        ("consent_lost", "a")]


@pytest.mark.parametrize("start", STARTS)
def test_a_connected_peer_loses_consent_exactly_at_its_deadline(start: float) -> None:
    net = Net(make_core(), now=start)
    a = net.connect(browser("a", 1))
    net.advance(10.0)  # RTCP timers ran; consent still runs from the check at `start`
    _returns(lambda: net.advance(25.0))
    assert net.core.peer_stats(a.name) is None
    assert ("consent_lost", "a") in [(e.kind, e.peer_id) for e in net.events]


#: Arrival times for which ``(heard + 1.0) - heard < 1.0`` (SILENCE_AFTER is 1 s): the sum
#: crosses into the next power of two, 1024, and loses a low bit.
HEARD = [1023.1, 1023.18]


@pytest.mark.parametrize("heard", HEARD)
def test_the_speaker_is_reported_silent_exactly_at_its_deadline(heard: float) -> None:
    # The same rounding in sfu/silence.py: the check filed at heard + 1 s found "quiet < 1 s"
    # at that very time and filed itself again there, for ever.
    assert (heard + 1.0) - heard < 1.0
    net = Net(make_core(), now=heard - 0.5)
    a = net.connect(browser("a", 1))
    net.connect(browser("b", 2))
    net.core.set_speaker("r", "a", net.now)
    net.now = heard
    a.audio()
    net.pump()
    _returns(lambda: net.advance(2.0))
    assert ("speaker_silent", "a") in [(e.kind, e.peer_id) for e in net.events]
