"""Quick reconnect (issue 12, network handover): resume secrets and the grace period.

A phone that moves from Wi-Fi to mobile data loses its WebSocket. Without a grace period
its member would leave at once (``member_left`` to everyone, floor and queue place given
up) and come back as a new member a second later (``member_joined``): churn for the whole
room. Instead, each ``joined`` carries a one-time *resume secret*; a socket that dies
without a goodbye (no close frame, or the keepalive gave up on it) leaves its member in the
room for ``grace`` seconds, and a new socket that presents the member's id and secret
(``resume``) takes the member over: same id, name, permissions, floor or queue place.

This module is the sans-IO bookkeeping (secrets and deadlines, time passed in); the hub
(hub.py) decides what a held member keeps. Secrets are 144 random bits, kept only as their
SHA-256 digest, compared in constant time, valid once (each ``joined`` gives a new one),
and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["DEFAULT_GRACE", "MAX_SECRET_CHARS", "ResumeKeeper"]

#: Seconds a member whose socket died waits for its page to resume (``--resume-grace``).
DEFAULT_GRACE = 10.0
#: Longest secret a ``resume`` may carry (ours have 24 characters).
MAX_SECRET_CHARS = 64


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class ResumeKeeper:
    """Each member's current resume secret, and the members held after their socket died."""

    __slots__ = ("grace", "_digests", "_held")

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        if grace < 0:
            raise ValueError("the resume grace must be 0 (off) or more seconds")
        self.grace = grace
        self._digests: dict[str, bytes] = {}
        self._held: dict[str, float] = {}  # member id -> deadline

    @property
    def enabled(self) -> bool:
        return self.grace > 0

    def issue(self, member_id: str) -> str:
        """A new secret for ``member_id`` (for its ``joined``); any earlier one stops working."""
        secret = secrets.token_urlsafe(18)  # 144 bits
        self._digests[member_id] = _digest(secret)
        return secret

    def matches(self, member_id: str, secret: str) -> bool:
        """``secret`` is ``member_id``'s current secret (constant-time comparison)."""
        digest = self._digests.get(member_id)
        return digest is not None and hmac.compare_digest(digest, _digest(secret))

    def hold(self, member_id: str, now: float) -> float:
        """``member_id``'s socket died: keep it until the returned deadline."""
        deadline = now + self.grace
        self._held[member_id] = deadline
        return deadline

    def is_held(self, member_id: str) -> bool:
        return member_id in self._held

    def release(self, member_id: str) -> None:
        """The member resumed: it is no longer held (its secret was replaced by the caller)."""
        self._held.pop(member_id, None)

    def forget(self, member_id: str) -> None:
        """The member left for good: its secret and hold are gone."""
        self._digests.pop(member_id, None)
        self._held.pop(member_id, None)

    def expired(self, now: float) -> list[str]:
        """Held members whose grace ran out (they stay held until the caller forgets them)."""
        return [member_id for member_id, deadline in self._held.items() if now >= deadline]

    def held_count(self) -> int:
        return len(self._held)
