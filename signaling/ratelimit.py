"""A token bucket: the per-client message rate limit.

Pure (time passed in) so it can be tested without sleeping. A bucket, rather than a fixed
window, lets a client send a short burst (a join, an offer and a few floor requests at
once) while still bounding its sustained rate.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one message costs one token."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available; False means the message must be refused."""
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``cost`` tokens are there (0: now)."""
        self._refill(now)
        return max(0.0, (cost - self._tokens) / self.rate)

    def is_full(self, now: float) -> bool:
        """Refilled to the burst: the bucket remembers nothing any more."""
        self._refill(now)
        return self._tokens >= self.burst

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
