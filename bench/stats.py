"""Summaries of samples for the report (nearest-rank percentiles, as everywhere in the bench)."""

from __future__ import annotations

__all__ = ["percentiles"]


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p95/p99/max (ms values in, rounded) and the count."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        return round(ordered[max(0, -(-int(p * n) // 100) - 1)], 3)

    return {"n": n, "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(ordered[-1], 3)}
