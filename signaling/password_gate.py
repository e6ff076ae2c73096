"""Which password checks the server runs, and which it refuses at once.

A password check is an scrypt derivation (``RoomRegistry.password_key``: ~30 ms of CPU and
16 MiB), run off the event loop two at a time. Unbounded, one address guessing passwords
kept both cores busy and made a legitimate password join wait over a second behind the
guesses. The :class:`PasswordGate` decides before any derivation starts:

* **at most one check in flight per address** (an IPv6 /64 is one address): an address's
  guesses run one after another, so they never fill the queue ahead of anyone else;
* **exponential backoff after wrong passwords, per address**: the first few mistakes are
  free (people mistype), then each further one makes the address wait 1, 2, 4 ... up to 60 s
  before its next check; the count of failures leaks away (one a minute), so a person who
  mistyped is soon back to normal;
* **and per room**, for guessing from many addresses at one room: more lenient (10 free,
  one leaking away every 6 s, waits up to 30 s), so one address, held back by its own
  backoff, never makes a room wait for others;
* **a bounded queue**: at most ``max_pending`` checks admitted and not finished, server-wide
  (running + waiting for a slot); beyond it, refuse rather than queue forever.

Every refusal is the non-fatal ``try_later`` with the seconds after which a retry may pass:
the session goes on and the client may send its ``join`` again (docs/PROTOCOL.md).

Sans-IO: time is passed in; ``tests/signaling/test_budgets.py`` runs it on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from .budgets import Refusal, address_key

__all__ = ["ADDRESS_RULE", "Backoff", "BackoffRule", "MAX_PENDING", "PasswordGate", "ROOM_RULE"]

#: Checks admitted and not finished, server-wide: two run (one per core), the rest wait.
#: The longest wait is about (MAX_PENDING / 2) derivations, ~150 ms on the reference VM.
MAX_PENDING = 8
#: Seconds a client is told to wait when its own check is still running or the queue is full.
BUSY_RETRY = 0.5


@dataclass(frozen=True, slots=True)
class BackoffRule:
    """``free`` failures cost nothing; the next one makes the key wait ``base`` s, each
    further one twice as long, up to ``cap``; the failure count falls by one every ``decay`` s."""

    free: int
    base: float
    cap: float
    decay: float


ADDRESS_RULE = BackoffRule(free=3, base=1.0, cap=60.0, decay=60.0)
ROOM_RULE = BackoffRule(free=10, base=1.0, cap=30.0, decay=6.0)


@dataclass(slots=True)
class _Failures:
    count: float
    at: float           # when ``count`` was last brought up to date
    until: float        # no attempt before this time


class Backoff:
    """Failures per key under one :class:`BackoffRule`."""

    def __init__(self, rule: BackoffRule) -> None:
        self.rule = rule
        self._keys: dict[str, _Failures] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def wait(self, key: str, now: float) -> float:
        """Seconds ``key`` must still wait before its next attempt (0: go)."""
        entry = self._keys.get(key)
        return max(0.0, entry.until - now) if entry is not None else 0.0

    def failed(self, key: str, now: float) -> None:
        """An attempt by ``key`` failed at ``now``."""
        rule = self.rule
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Failures(0.0, now, now)
        entry.count = self._decayed(entry, now) + 1
        entry.at = now
        beyond = entry.count - rule.free
        if beyond > 0:
            delay = min(rule.cap, rule.base * 2 ** (beyond - 1))
            entry.until = max(entry.until, now + delay)

    def prune(self, now: float) -> None:
        """Forget keys whose failures have leaked away and that need not wait."""
        for key in [k for k, e in self._keys.items()
                    if e.until <= now and self._decayed(e, now) == 0.0]:
            del self._keys[key]

    def _decayed(self, entry: _Failures, now: float) -> float:
        return max(0.0, entry.count - max(0.0, now - entry.at) / self.rule.decay)


class PasswordGate:
    """Admission of password checks: ``admit`` before deriving, ``done`` after (always)."""

    def __init__(self, max_pending: int = MAX_PENDING, address_rule: BackoffRule = ADDRESS_RULE,
                 room_rule: BackoffRule = ROOM_RULE) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._running: set[str] = set()  # addresses with a check admitted and not done
        self.by_address = Backoff(address_rule)
        self.by_room = Backoff(room_rule)

    @property
    def pending(self) -> int:
        """Checks admitted and not finished (one per address at most)."""
        return len(self._running)

    def admit(self, address: str, room: str, now: float) -> Refusal | None:
        """May ``address`` have a password for ``room`` checked now? None: yes (call
        :meth:`done` when finished); else the ``try_later`` refusal to send."""
        key = address_key(address)
        if key in self._running:
            return Refusal("try_later", "a password check from your address is still running",
                           BUSY_RETRY)
        wait = self.by_address.wait(key, now)
        if wait > 0:
            return Refusal("try_later", "too many wrong passwords from your address; "
                           f"wait {wait:.1f} s", wait)
        wait = self.by_room.wait(room, now)
        if wait > 0:
            return Refusal("try_later", "too many wrong passwords for this room; "
                           f"wait {wait:.1f} s", wait)
        if len(self._running) >= self.max_pending:
            return Refusal("try_later", "the server is busy checking passwords", BUSY_RETRY)
        self._running.add(key)
        return None

    def done(self, address: str, room: str, wrong: bool, now: float) -> None:
        """The check admitted for ``address`` finished (``wrong``: the password was wrong)."""
        key = address_key(address)
        self._running.discard(key)
        if wrong:
            self.by_address.failed(key, now)
            self.by_room.failed(room, now)

    def prune(self, now: float) -> None:
        self.by_address.prune(now)
        self.by_room.prune(now)
