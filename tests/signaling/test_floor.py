"""The floor state machine: grant, deny, queue, release, revoke, leave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.floor import (
    Denied,
    Effect,
    Floor,
    FloorChanged,
    FloorSettings,
    Granted,
    Queued,
    Released,
    Revoked,
)


def test_request_when_idle_is_granted_and_broadcast() -> None:
    floor = Floor()
    assert floor.request("a", 0.0) == [Granted("a", 60000), FloorChanged("a", 0)]
    assert floor.holder == "a"


def test_busy_is_denied_when_queueing_is_off() -> None:
    floor = Floor(FloorSettings(queue=False))
    floor.request("a", 0.0)
    assert floor.request("b", 1.0) == [Denied("b", "busy", "a")]
    assert floor.holder == "a"
    assert floor.queue == ()


def test_busy_is_queued_in_order_with_positions() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    assert floor.request("b", 1.0) == [Queued("b", 1), FloorChanged("a", 1)]
    assert floor.request("c", 2.0) == [Queued("c", 2), FloorChanged("a", 2)]
    assert floor.queue == ("b", "c")
    assert floor.position("c") == 2
    assert floor.position("a") is None


def test_repeated_requests_change_nothing() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    floor.request("b", 0.0)
    assert floor.request("b", 1.0) == [Queued("b", 1)]
    assert floor.request("a", 10.0) == [Granted("a", 50000)]
    assert floor.queue == ("b",)


def test_release_passes_floor_to_the_next_in_queue() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    floor.request("b", 1.0)
    floor.request("c", 2.0)
    assert floor.release("a", 3.0) == [
        Released("a"),
        Granted("b", 60000),
        Queued("c", 1),
        FloorChanged("b", 1),
    ]
    assert floor.holder == "b"
    assert floor.queue == ("c",)


def test_release_with_empty_queue_goes_idle() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    assert floor.release("a", 1.0) == [Released("a"), FloorChanged(None, 0)]
    assert floor.holder is None
    assert floor.deadline() is None


def test_release_by_a_non_holder_is_only_acknowledged() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    assert floor.release("x", 1.0) == [Released("x")]
    assert floor.holder == "a"


def test_queued_member_releasing_leaves_the_queue_and_others_move_up() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    for m in "bcd":
        floor.request(m, 1.0)
    assert floor.release("b", 2.0) == [
        Released("b"),
        Queued("c", 1),
        Queued("d", 2),
        FloorChanged("a", 2),
    ]
    # Removing the last one moves nobody.
    assert floor.release("d", 2.0) == [Released("d"), FloorChanged("a", 1)]
    assert floor.holder == "a"
    assert floor.queue == ("c",)


def test_max_talk_time_revokes_and_grants_next() -> None:
    floor = Floor(FloorSettings(max_talk_time=2.0))
    floor.request("a", 10.0)
    floor.request("b", 10.5)
    assert floor.deadline() == 12.0
    assert floor.tick(11.99) == []
    assert floor.tick(12.0) == [Revoked("a", "max_talk_time"), Granted("b", 2000), FloorChanged("b", 0)]
    # b's own talk time counts from its grant, not from a's.
    assert floor.deadline() == 14.0
    assert floor.tick(13.0) == []
    assert floor.tick(14.5) == [Revoked("b", "max_talk_time"), FloorChanged(None, 0)]
    assert floor.tick(100.0) == []


def test_unlimited_talk_time_never_revokes() -> None:
    for limit in (None, 0.0):
        floor = Floor(FloorSettings(max_talk_time=limit))
        assert floor.request("a", 0.0) == [Granted("a", None), FloorChanged("a", 0)]
        assert floor.deadline() is None
        assert floor.tick(1e9) == []


def test_leave_of_holder_releases_at_once_without_ack() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    floor.request("b", 0.0)
    assert floor.leave("a", 5.0) == [Granted("b", 60000), FloorChanged("b", 0)]
    assert floor.leave("b", 6.0) == [FloorChanged(None, 0)]


def test_leave_of_queued_member() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    floor.request("b", 0.0)
    floor.request("c", 0.0)
    assert floor.leave("b", 1.0) == [Queued("c", 1), FloorChanged("a", 1)]
    assert floor.leave("zz", 1.0) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["request", "release", "leave", "tick"]),
                          st.sampled_from("abcde"), st.floats(0, 5)), max_size=40),
       st.booleans())
def test_invariants_hold_for_any_sequence(ops: list[tuple[str, str, float]], queue: bool) -> None:
    floor = Floor(FloorSettings(max_talk_time=3.0, queue=queue))
    now = 0.0
    for op, member, dt in ops:
        now += dt
        if op == "tick":
            effects = floor.tick(now)
        else:
            effects = getattr(floor, op)(member, now)
        assert_invariants(floor, effects)
        if not queue:
            assert floor.queue == ()


def assert_invariants(floor: Floor, effects: list[Effect]) -> None:
    """What holds after every operation, with or without priorities."""
    q = floor.queue
    assert len(set(q)) == len(q)
    assert floor.holder not in q
    if floor.holder is None:
        assert q == ()
    changed = [e for e in effects if isinstance(e, FloorChanged)]
    assert len(changed) <= 1
    if changed:
        assert changed[0] == FloorChanged(floor.holder, len(q))
        assert effects[-1] is changed[0]
    # Every queued position announced is the member's real position afterwards.
    for e in effects:
        if isinstance(e, Queued):
            assert floor.position(e.member) == e.position


# -- the end-of-media timer (no_media) ---------------------------------------------------------

NO_MEDIA = FloorSettings(max_talk_time=60.0, no_media_timeout=3.0, media_wait=10.0)


def test_no_media_is_off_unless_asked_for() -> None:
    floor = Floor(FloorSettings(max_talk_time=None))
    floor.request("a", 0.0)
    floor.media_silent("a", 5.0, 5.0)
    assert floor.media_deadline() is None
    assert floor.tick(1e9) == []


def test_a_holder_never_heard_is_revoked_after_the_media_wait() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.request("b", 101.0)
    assert floor.media_deadline() == 110.0
    assert floor.tick(109.9) == []
    assert floor.tick(110.0) == [Revoked("a", "no_media"), Granted("b", 60000), FloorChanged("b", 0)]
    # b's wait counts from its own grant.
    assert floor.media_deadline() == 120.0


def test_a_holder_whose_audio_flows_keeps_the_floor_until_it_stops() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.media_active("a")
    assert floor.media_deadline() is None
    assert floor.tick(150.0) == []
    # Silent since 150.0 (reported one second later): revoked three seconds after the last packet.
    floor.media_silent("a", 151.0, 1.0)
    assert floor.media_deadline() == 153.0
    assert floor.tick(152.9) == []
    assert floor.tick(153.0) == [Revoked("a", "no_media"), FloorChanged(None, 0)]


def test_audio_back_in_time_cancels_the_revoke() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.media_active("a")
    floor.media_silent("a", 121.0, 1.0)
    floor.media_active("a")  # a lost packet burst, not a frozen client
    assert floor.tick(130.0) == []


def test_silence_counts_from_the_grant_at_the_earliest() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.media_silent("a", 101.0, 30.0)  # e.g. about a talk that ended before this grant
    assert floor.media_deadline() == 103.0


def test_media_events_about_others_change_nothing() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.request("b", 100.0)
    floor.media_active("a")
    floor.media_silent("b", 105.0, 5.0)
    floor.media_lost("b", 105.0)
    assert floor.media_deadline() is None
    assert floor.tick(200.0) == [Revoked("a", "max_talk_time"), Granted("b", 60000),
                                 FloorChanged("b", 0)]


def test_a_holder_whose_media_is_set_up_again_gets_the_media_wait_again() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.media_active("a")
    floor.media_lost("a", 120.0)  # media reset: the page offers again
    assert floor.media_deadline() == 130.0
    floor.media_active("a")  # heard on the new connection
    assert floor.tick(140.0) == []
    assert floor.holder == "a"


def test_max_talk_time_wins_when_both_fall_due() -> None:
    floor = Floor(FloorSettings(max_talk_time=5.0, no_media_timeout=3.0, media_wait=5.0))
    floor.request("a", 0.0)
    assert floor.tick(5.0) == [Revoked("a", "max_talk_time"), FloorChanged(None, 0)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["request", "release", "leave", "tick", "active",
                                           "silent", "lost"]),
                          st.sampled_from("abc"), st.floats(0, 5)), max_size=40))
def test_no_media_revokes_only_a_holder_unheard_for_its_timeout(
    ops: list[tuple[str, str, float]],
) -> None:
    """Whatever happens, a no_media revoke hits the holder, and only when it was due."""
    floor = Floor(NO_MEDIA)
    now = 0.0
    for op, member, dt in ops:
        now += dt
        due = floor.media_deadline()
        holder = floor.holder
        if op == "tick":
            effects = floor.tick(now)
        elif op == "active":
            effects, _ = [], floor.media_active(member)
        elif op == "silent":
            effects, _ = [], floor.media_silent(member, now, dt)
        elif op == "lost":
            effects, _ = [], floor.media_lost(member, now)
        else:
            effects = getattr(floor, op)(member, now)
        for e in effects:
            if isinstance(e, Revoked) and e.reason == "no_media":
                assert e.member == holder and due is not None and now >= due
        if floor.holder is not None and floor.holder != holder:
            assert floor.media_deadline() is not None  # a new holder is on the media wait


# -- pre-emptive priority (MCPTT pre-emption) --------------------------------------------------


def test_a_higher_priority_takes_the_floor_at_once() -> None:
    floor = Floor()
    floor.request("a", 0.0, priority=1)
    assert floor.request("b", 2.0, priority=2) == [
        Revoked("a", "preempted", by="b"),
        Granted("b", 60000),
        FloorChanged("b", 0),
    ]
    assert floor.holder == "b"
    assert floor.holder_priority() == 2
    # The pre-empted talker is not queued again; its talk time is the pre-emptor's own.
    assert floor.queue == ()
    assert floor.deadline() == 62.0


def test_equal_or_lower_priority_behaves_as_without_priorities() -> None:
    for queue in (True, False):
        floor = Floor(FloorSettings(queue=queue))
        floor.request("a", 0.0, priority=5)
        for member, priority in (("b", 5), ("c", 4), ("d", 0)):
            effects = floor.request(member, 1.0, priority=priority)
            if queue:
                assert effects[0] == Queued(member, floor.position(member))
            else:
                assert effects == [Denied(member, "busy", "a")]
        assert floor.holder == "a"
        assert floor.queue == (("b", "c", "d") if queue else ())


def test_everyone_at_priority_zero_is_the_floor_without_priorities() -> None:
    floor = Floor()
    floor.request("a", 0.0)
    assert floor.request("b", 1.0) == [Queued("b", 1), FloorChanged("a", 1)]
    assert floor.holder_priority() == 0


def test_a_queued_member_of_higher_priority_leaves_the_queue_when_it_pre_empts() -> None:
    floor = Floor()
    floor.request("a", 0.0, priority=1)
    floor.request("b", 1.0, priority=0)
    floor.request("c", 1.0, priority=1)  # equal to the holder: queued
    floor.request("d", 1.0, priority=0)
    # c asks again with a higher priority (its token's, e.g. after a rejoin): it pre-empts.
    assert floor.request("c", 2.0, priority=3) == [
        Revoked("a", "preempted", by="c"),
        Queued("d", 2),
        Granted("c", 60000),
        FloorChanged("c", 2),
    ]
    assert floor.queue == ("b", "d")


def test_the_queue_keeps_working_after_a_pre_emption() -> None:
    floor = Floor()
    floor.request("a", 0.0, priority=1)
    floor.request("b", 1.0, priority=1)  # waits behind a
    floor.request("boss", 2.0, priority=9)
    assert floor.queue == ("b",)
    # The pre-emptor releases: the queue's head (not the pre-empted a) is next.
    assert floor.release("boss", 3.0) == [
        Released("boss"), Granted("b", 60000), FloorChanged("b", 0)]
    assert floor.holder_priority() == 1
    # Priorities are those each request came with: a (1) cannot pre-empt b (1).
    assert floor.request("a", 4.0, priority=1) == [Queued("a", 1), FloorChanged("b", 1)]


def test_a_pre_emptor_can_itself_be_pre_empted_by_a_higher_one() -> None:
    floor = Floor()
    floor.request("a", 0.0, priority=1)
    floor.request("b", 1.0, priority=2)
    assert floor.request("c", 2.0, priority=3)[0] == Revoked("b", "preempted", by="c")
    assert floor.request("a", 3.0, priority=1) == [Queued("a", 1), FloorChanged("c", 1)]


def test_a_pre_emption_restarts_the_media_wait() -> None:
    floor = Floor(NO_MEDIA)
    floor.request("a", 100.0)
    floor.media_active("a")
    floor.request("b", 105.0, priority=1)
    assert floor.media_deadline() == 115.0  # b's own wait, from its grant
    # a's audio (its tail) changes nothing for b.
    floor.media_active("a")
    assert floor.media_deadline() == 115.0


def test_the_holder_s_repeated_request_is_answered_whatever_its_priority() -> None:
    floor = Floor()
    floor.request("a", 0.0, priority=1)
    assert floor.request("a", 1.0, priority=7) == [Granted("a", 59000)]
    assert floor.holder_priority() == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["request", "release", "leave", "tick"]),
                          st.sampled_from("abcde"), st.integers(0, 3), st.floats(0, 5)),
                max_size=40),
       st.booleans())
def test_pre_emption_rules_hold_for_any_sequence(
    ops: list[tuple[str, str, int, float]], queue: bool,
) -> None:
    """Only a strictly higher priority pre-empts; the pre-empted talker is never queued."""
    floor = Floor(FloorSettings(max_talk_time=3.0, queue=queue))
    now = 0.0
    for op, member, priority, dt in ops:
        now += dt
        holder, holder_priority = floor.holder, floor.holder_priority()
        if op == "request":
            effects = floor.request(member, now, priority)
        elif op == "tick":
            effects = floor.tick(now)
        else:
            effects = getattr(floor, op)(member, now)
        preempted = [e for e in effects if isinstance(e, Revoked) and e.reason == "preempted"]
        if preempted:
            assert op == "request" and holder is not None and holder_priority is not None
            assert priority > holder_priority and holder != member
            assert preempted == [Revoked(holder, "preempted", by=member)]
            assert floor.holder == member and floor.holder_priority() == priority
            assert holder not in floor.queue
            assert effects.index(preempted[0]) == 0
        elif op == "request" and holder not in (None, member):
            assert floor.holder == holder
        assert_invariants(floor, effects)
