"""Per-address budgets and the password gate, on a fake clock (both are sans-IO)."""

from __future__ import annotations

import pytest

from signaling.budgets import (MAX_OFFER_BYTES, AddressBudgets, BudgetSettings, address_key,
                               offer_too_large)
from signaling.password_gate import Backoff, BackoffRule, PasswordGate
from signaling.ratelimit import TokenBucket


def always(_room: object) -> bool:
    return True


def test_an_ipv6_address_counts_as_its_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"  # IPv4-mapped: the IPv4 address
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("unix-socket") == "unix-socket"


def test_connections_per_address_count_a_whole_64() -> None:
    budgets = AddressBudgets(BudgetSettings(), connections_per_address=2)
    assert budgets.connect("2001:db8::1") is None
    assert budgets.connect("2001:db8::2") is None
    refusal = budgets.connect("2001:db8::ffff:3")  # another address of the same /64
    assert refusal is not None and refusal.code == "too_many_connections"
    assert budgets.connect("2001:db8:0:1::1") is None  # the next /64 is someone else
    budgets.disconnect("2001:db8::2")
    assert budgets.connect("2001:db8::3") is None
    assert budgets.open_connections("2001:db8::9") == 2


def test_the_server_wide_connection_cap() -> None:
    budgets = AddressBudgets(BudgetSettings(max_connections=2), connections_per_address=0)
    assert budgets.connect("192.0.2.1") is None and budgets.connect("192.0.2.2") is None
    refusal = budgets.connect("192.0.2.3")
    assert refusal is not None and refusal.code == "server_full"
    budgets.disconnect("192.0.2.1")
    assert budgets.connect("192.0.2.3") is None and budgets.connections == 2
    budgets.disconnect("198.51.100.9")  # never admitted: changes nothing
    assert budgets.connections == 2


def test_messages_and_bytes_per_address() -> None:
    settings = BudgetSettings(message_rate=10, message_burst=5, byte_rate=1000, byte_burst=2000)
    budgets = AddressBudgets(settings, 0)
    assert [budgets.message("192.0.2.1", 10, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert budgets.message("192.0.2.2", 10, 0.0)  # another address has its own budget
    assert budgets.message("192.0.2.1", 10, 0.1)  # 0.1 s: one message more
    # bytes: a 1500-byte frame fits the burst once, then waits for the rate
    assert budgets.message("192.0.2.3", 1500, 0.0)
    assert not budgets.message("192.0.2.3", 1500, 0.5)
    assert budgets.message("192.0.2.3", 1500, 1.0)
    off = AddressBudgets(BudgetSettings(message_rate=0, byte_rate=0), 0)
    assert all(off.message("192.0.2.1", 60_000, 0.0) for _ in range(1000))


def test_joins_per_address_burst_then_rate() -> None:
    budgets = AddressBudgets(BudgetSettings(join_rate=2, join_burst=4), 0)
    results = [budgets.join("192.0.2.1", False, 0.0, always) for _ in range(5)]
    assert results[:4] == [None] * 4
    refusal = results[4]
    assert refusal is not None and refusal.code == "try_later"
    assert refusal.retry_after == pytest.approx(0.5)
    assert budgets.join("192.0.2.1", False, 0.5, always) is None
    # sustained: 2 per second, whatever the number of attempts
    granted = sum(budgets.join("192.0.2.1", False, 1.0 + i / 100, always) is None
                  for i in range(1000))
    assert granted == 20 or granted == 21


def test_rooms_created_per_address_count_only_open_rooms() -> None:
    budgets = AddressBudgets(BudgetSettings(rooms_per_address=2, join_rate=0), 0)
    open_rooms = {"a", "b"}

    def alive(room: object) -> bool:
        return room in open_rooms

    budgets.created("192.0.2.1", "a")
    budgets.created("192.0.2.1", "b")
    refusal = budgets.join("192.0.2.1", True, 0.0, alive)
    assert refusal is not None and refusal.code == "too_many_rooms"
    assert budgets.join("192.0.2.1", False, 0.0, alive) is None  # joining an open room: fine
    assert budgets.join("192.0.2.2", True, 0.0, alive) is None  # another address: fine
    open_rooms.discard("a")
    assert budgets.join("192.0.2.1", True, 0.0, alive) is None


def test_prune_forgets_addresses_with_nothing_to_remember() -> None:
    budgets = AddressBudgets(BudgetSettings(join_rate=1, join_burst=2), 0)
    budgets.connect("192.0.2.1")
    budgets.join("192.0.2.2", False, 0.0, always)
    budgets.created("192.0.2.3", "room")
    budgets.prune(0.5, always)
    assert len(budgets) == 3  # a connection, a bucket still refilling, an open room
    budgets.prune(5.0, always)
    assert len(budgets) == 2
    budgets.disconnect("192.0.2.1")
    budgets.prune(5.0, lambda room: False)
    assert len(budgets) == 0


def test_bucket_wait_and_full() -> None:
    bucket = TokenBucket(rate=2, burst=2, now=0.0)
    assert bucket.is_full(0.0) and bucket.wait(0.0) == 0.0
    assert bucket.allow(0.0) and bucket.allow(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.5) and not bucket.is_full(0.5)
    assert bucket.is_full(1.0)


def test_offer_size_cap() -> None:
    assert offer_too_large("v=0\r\n" * 100) is None
    assert offer_too_large("x" * MAX_OFFER_BYTES) is None
    assert "larger than" in (offer_too_large("x" * (MAX_OFFER_BYTES + 1)) or "")


# -- the password gate ----------------------------------------------------------------------

def test_backoff_is_free_then_doubles_up_to_the_cap_and_leaks_away() -> None:
    backoff = Backoff(BackoffRule(free=2, base=1.0, cap=4.0, decay=10.0))
    backoff.failed("k", 0.0)
    backoff.failed("k", 0.0)
    assert backoff.wait("k", 0.0) == 0.0  # two mistakes are free
    backoff.failed("k", 0.0)
    assert backoff.wait("k", 0.0) == pytest.approx(1.0)
    backoff.failed("k", 1.0)
    assert backoff.wait("k", 1.0) == pytest.approx(2.0, abs=0.2)  # 1.87: one failure leaked
    for t in (3.0, 7.0, 11.0):
        backoff.failed("k", t)
    assert backoff.wait("k", 11.0) == pytest.approx(4.0, abs=0.01)  # the cap
    assert backoff.wait("other", 11.0) == 0.0
    backoff.prune(20.0)
    assert len(backoff) == 1  # failures still remembered
    backoff.prune(200.0)
    assert len(backoff) == 0


def test_one_password_check_in_flight_per_address() -> None:
    gate = PasswordGate()
    assert gate.admit("192.0.2.1", "vault", 0.0) is None
    refusal = gate.admit("192.0.2.1", "other-room", 0.0)
    assert refusal is not None and refusal.code == "try_later" and refusal.retry_after
    assert gate.admit("2001:db8::1", "vault", 0.0) is None
    again = gate.admit("2001:db8::2", "vault", 0.0)  # same /64: same address
    assert again is not None and again.code == "try_later"
    assert gate.admit("192.0.2.2", "vault", 0.0) is None  # another address: admitted
    gate.done("192.0.2.1", "vault", wrong=False, now=0.1)
    assert gate.admit("192.0.2.1", "vault", 0.1) is None


def test_wrong_passwords_back_off_one_address_not_the_others() -> None:
    gate = PasswordGate()
    now = 0.0
    evaluated = 0
    for _ in range(1000):  # an attacker retrying every 10 ms for 10 s
        if gate.admit("192.0.2.66", "vault", now) is None:
            evaluated += 1
            gate.done("192.0.2.66", "vault", wrong=True, now=now + 0.05)
        now += 0.01
    assert evaluated <= 10  # 3 free, then after 1, 2, 4 s: far below 5 per second
    # meanwhile a legitimate joiner of that very room from another address goes straight in
    assert gate.admit("192.0.2.88", "vault", now) is None


def test_guessing_one_room_from_many_addresses_backs_the_room_off() -> None:
    gate = PasswordGate()
    for i in range(10):
        assert gate.admit(f"192.0.2.{i}", "vault", 0.0) is None
        gate.done(f"192.0.2.{i}", "vault", wrong=True, now=0.0)
    assert gate.admit("192.0.2.200", "vault", 0.0) is None  # the tenth failure was free
    gate.done("192.0.2.200", "vault", wrong=True, now=0.0)
    refusal = gate.admit("192.0.2.201", "vault", 0.0)
    assert refusal is not None and refusal.code == "try_later" and "room" in refusal.message
    assert gate.admit("192.0.2.201", "another-room", 0.0) is None


def test_the_queue_of_checks_is_bounded() -> None:
    gate = PasswordGate(max_pending=2)
    assert gate.admit("192.0.2.1", "a", 0.0) is None
    assert gate.admit("192.0.2.2", "b", 0.0) is None
    refusal = gate.admit("192.0.2.3", "c", 0.0)
    assert refusal is not None and refusal.code == "try_later" and "busy" in refusal.message
    gate.done("192.0.2.1", "a", wrong=False, now=0.0)
    assert gate.admit("192.0.2.3", "c", 0.0) is None and gate.pending == 2
