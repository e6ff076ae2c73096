"""Latency histogram of the bench: fixed buckets, so that adding a sample on the hot path is
one list increment (``downlink.DownlinkMonitor`` inlines it), and percentiles stay exact to
the bucket for any number of samples."""

from __future__ import annotations

__all__ = ["LatencyHistogram"]


class LatencyHistogram:
    """Latency counts in 10 µs buckets up to 100 ms; larger values kept exactly (rare)."""

    BUCKET_NS = 10_000
    BUCKETS = 10_000

    __slots__ = ("counts", "max_ns", "overflow", "total")

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.overflow: list[int] = []
        self.max_ns = 0
        self.total = 0

    def add(self, ns: int) -> None:
        """Record one latency (the monitor inlines this; tests and merges use it)."""
        b = ns // self.BUCKET_NS
        if b < self.BUCKETS:
            self.counts[b] += 1
        else:
            self.overflow.append(ns)
        self.max_ns = max(self.max_ns, ns)

    def count(self) -> int:
        return sum(self.counts) + len(self.overflow)

    def merge(self, other: LatencyHistogram) -> None:
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.overflow.extend(other.overflow)
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ms(self, p: float) -> float | None:
        """The p-th percentile (0..100) in ms: the upper edge of its bucket (conservative),
        exact for overflow values. None when empty."""
        n = self.count()
        if n == 0:
            return None
        rank = max(1, -(-p * n // 100))  # ceil(p% of n), at least the first sample
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min((i + 1) * self.BUCKET_NS, self.max_ns) / 1e6
        tail = sorted(self.overflow)
        return tail[int(rank - seen) - 1] / 1e6

    def cdf_ms(self, points: int = 400) -> tuple[list[float], list[float]]:
        """(latency ms, cumulative fraction) pairs for plotting."""
        n = self.count()
        xs: list[float] = []
        ys: list[float] = []
        if n == 0:
            return xs, ys
        seen = 0
        last = max((i for i, c in enumerate(self.counts) if c), default=0)
        step = max(1, (last + 1) // points)
        for i in range(last + 1):
            seen += self.counts[i]
            if i % step == 0 or i == last:
                xs.append((i + 1) * self.BUCKET_NS / 1e6)
                ys.append(seen / n)
        for v in sorted(self.overflow):
            seen += 1
            xs.append(v / 1e6)
            ys.append(seen / n)
        return xs, ys
