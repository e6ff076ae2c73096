"""What listeners received against what they should have received (sans-IO, after a run).

The hot path (``downlink.DownlinkMonitor``) only records *runs* of consecutive talker
sequence numbers and the few packets that arrived late; the talk pattern records, per turn,
the talker sequence numbers every listener must receive (``Turn``). This module compares
the two and splits the expected packets where a figure needs them split:

* :func:`account`: loss, duplicates and reordering against expected ranges;
* :func:`clip`: the expected packets sent inside a time window, given each talker's sequence
  counter at both ends of it (the flood window of the attack mode);
* :func:`outage_holes` and :func:`carve`: the packets that fell into a media outage (a
  ``media reset`` and the re-offer that follows it), so that they are reported as outage and
  never as ordinary loss; :func:`account_listeners` does all of it for a run's listeners.

A range is ``(talker ssrc, first seq, last seq)``, inclusive, in the talker's full (unwrapped)
sequence numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .stats import percentiles

if TYPE_CHECKING:
    from .client import SyntheticClient
    from .scenario import Turn

__all__ = [
    "MAX_NOTICE_FRAMES",
    "OPEN_END",
    "Accounting",
    "OutageMark",
    "SeqRange",
    "account",
    "account_listeners",
    "carve",
    "clip",
    "expected_ranges",
    "outage_holes",
    "window_loss",
]

SeqRange = tuple[int, int, int]
#: Longest time (in 20 ms frames) between a worker's death and its ``media reset`` reaching a
#: listener that the outage accounting attributes to the outage: packets the listener stopped
#: receiving up to this long before its reset are outage; anything earlier stays ordinary loss.
MAX_NOTICE_FRAMES = 100
#: "Never came back": the upper end of an outage that did not end.
OPEN_END = 1 << 62


@dataclass(slots=True)
class Accounting:
    """A listener's received packets against what it should have received."""

    expected: int = 0
    received_expected: int = 0
    missing: int = 0
    extra: int = 0  # unique packets outside the expected ranges (pre-roll before the grant)
    duplicates: int = 0
    out_of_order: int = 0
    #: of ``missing``: the run that ends a turn (up to its last expected packet; a turn lost
    #: whole counts here) and the run that starts one; the rest fell inside turns. Loss at
    #: the ends of turns points at the floor changes, loss inside them at the path.
    missing_at_end: int = 0
    missing_at_start: int = 0

    def add(self, other: Accounting) -> None:
        self.expected += other.expected
        self.received_expected += other.received_expected
        self.missing += other.missing
        self.extra += other.extra
        self.duplicates += other.duplicates
        self.out_of_order += other.out_of_order
        self.missing_at_end += other.missing_at_end
        self.missing_at_start += other.missing_at_start


@dataclass(frozen=True, slots=True)
class OutageMark:
    """One media outage as a listener saw it.

    ``run_index``: how many runs the listener had closed when its ``media reset`` arrived
    (runs before it were received on the old session). ``seqs_at_reset`` / ``seqs_at_back``:
    each talker of the room's next sequence number (``UplinkStream.seq``) when the reset
    arrived and when the listener's new session was up (``None``: it never came back).
    """

    run_index: int
    seqs_at_reset: Mapping[int, int]
    seqs_at_back: Mapping[int, int] | None


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    intervals.sort()
    out: list[tuple[int, int]] = []
    for first, last in intervals:
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def account(
    runs: Iterable[SeqRange],
    late: Iterable[tuple[int, int]],
    expected: Iterable[SeqRange],
) -> Accounting:
    """Compare what a listener received (runs + late packets) with ``expected`` ranges
    ``(talker ssrc, first seq, last seq)`` (inclusive) it should have received in full."""
    by_talker: dict[int, list[tuple[int, int]]] = {}
    total: dict[int, int] = {}
    for csrc, first, last in runs:
        by_talker.setdefault(csrc, []).append((first, last))
        total[csrc] = total.get(csrc, 0) + last - first + 1
    late_count = 0
    for csrc, up in late:
        by_talker.setdefault(csrc, []).append((up, up))
        total[csrc] = total.get(csrc, 0) + 1
        late_count += 1
    merged = {csrc: _merge(iv) for csrc, iv in by_talker.items()}
    result = Accounting()
    covered_expected: dict[int, int] = {}
    for csrc, first, last in expected:
        n = last - first + 1
        if n <= 0:
            continue
        got = 0
        lowest, highest = last + 1, first - 1  # the first and last packets received of it
        for a, b in merged.get(csrc, ()):
            lo, hi = max(a, first), min(b, last)
            if lo <= hi:
                got += hi - lo + 1
                lowest, highest = min(lowest, lo), max(highest, hi)
        if got < n:
            result.missing_at_end += last - highest
            if got:
                result.missing_at_start += lowest - first
        result.expected += n
        result.received_expected += got
        result.missing += n - got
        covered_expected[csrc] = covered_expected.get(csrc, 0) + got
    for csrc, iv in merged.items():
        unique = sum(b - a + 1 for a, b in iv)
        result.duplicates += total[csrc] - unique
        result.extra += unique - covered_expected.get(csrc, 0)
    result.out_of_order = max(0, late_count - result.duplicates)
    return result


def clip(expected: Iterable[SeqRange], bounds: Mapping[int, tuple[int, int]]) -> list[SeqRange]:
    """The parts of ``expected`` inside ``bounds[talker] = (first, last)`` (inclusive);
    talkers without bounds are dropped."""
    out: list[SeqRange] = []
    for csrc, first, last in expected:
        bound = bounds.get(csrc)
        if bound is None:
            continue
        lo, hi = max(first, bound[0]), min(last, bound[1])
        if lo <= hi:
            out.append((csrc, lo, hi))
    return out


def window_loss(start: Mapping[int, int], end: Mapping[int, int], turns: Sequence[Turn],
                listeners: Iterable[SyntheticClient]) -> dict[str, Any]:
    """Loss among the packets talkers sent inside a window (an attack's), at ``listeners``.

    ``start`` / ``end``: each talker's sequence counter (``uplink.seq``) at the window's ends.
    """
    bounds = {ssrc: (start[ssrc], end.get(ssrc, start[ssrc]) - 1) for ssrc in start}
    expected = expected_ranges(turns)
    total = Accounting()
    for client in listeners:
        mon = client.monitor
        if mon is not None:
            total.add(account(mon.runs, mon.late, clip(expected.get(id(client), []), bounds)))
    return {"expected": total.expected, "missing": total.missing,
            "ratio": round(total.missing / total.expected, 6) if total.expected else None}


def carve(expected: Iterable[SeqRange], holes: Iterable[SeqRange]) -> tuple[list[SeqRange], list[SeqRange]]:
    """Split ``expected`` into (the parts outside every hole, the parts inside one)."""
    by_talker: dict[int, list[tuple[int, int]]] = {}
    for csrc, first, last in holes:
        if first <= last:
            by_talker.setdefault(csrc, []).append((first, last))
    merged = {csrc: _merge(iv) for csrc, iv in by_talker.items()}
    outside: list[SeqRange] = []
    inside: list[SeqRange] = []
    for csrc, first, last in expected:
        cursor = first
        for a, b in merged.get(csrc, ()):
            if b < cursor or a > last:
                continue
            if a > cursor:
                outside.append((csrc, cursor, a - 1))
            lo, hi = max(a, cursor), min(b, last)
            inside.append((csrc, lo, hi))
            cursor = hi + 1
            if cursor > last:
                break
        if cursor <= last:
            outside.append((csrc, cursor, last))
    return outside, inside


def outage_holes(runs: Sequence[SeqRange], marks: Iterable[OutageMark]) -> list[SeqRange]:
    """The talker sequence numbers a listener could not receive because of its outages.

    For each outage and each talker of the room, the hole starts where the listener stopped
    hearing that talker on the old session (its last packet + 1, if that was at most
    :data:`MAX_NOTICE_FRAMES` before the reset: the worker may have died a moment before the
    reset arrived), else at the talker's counter when the reset arrived; it ends before the
    talker's counter when the listener's new session came up (open-ended if it never did).
    A talker whose own session was down meanwhile sent nothing (its counter did not move), so
    its silence is no hole and no loss.
    """
    holes: list[SeqRange] = []
    for mark in marks:
        last_heard: dict[int, int] = {}
        for csrc, _first, last in runs[: mark.run_index]:
            if last > last_heard.get(csrc, -1):
                last_heard[csrc] = last
        for csrc, at_reset in mark.seqs_at_reset.items():
            lo = at_reset
            heard = last_heard.get(csrc)
            if heard is not None and at_reset - MAX_NOTICE_FRAMES <= heard + 1 < at_reset:
                lo = heard + 1
            if mark.seqs_at_back is None:
                hi = OPEN_END
            else:
                hi = mark.seqs_at_back.get(csrc, at_reset) - 1
            if lo <= hi:
                holes.append((csrc, lo, hi))
    return holes


def expected_ranges(turns: Sequence[Turn]) -> dict[int, list[SeqRange]]:
    """Per listener (``id(client)``), the talker ranges it must have received."""
    expected: dict[int, list[SeqRange]] = {}
    for turn in turns:
        for listener in turn.listeners:
            expected.setdefault(id(listener), []).append(
                (turn.talker.ssrc, turn.first_seq, turn.last_seq)
            )
    return expected


def account_listeners(
    clients: Sequence[SyntheticClient], expected: Mapping[int, list[SeqRange]],
) -> tuple[Accounting, list[dict[str, Any]], dict[str, Any]]:
    """Every listener against what it should have received (``expected[id(client)]``), with
    the packets that fell into its media outages set apart: (the ordinary accounting, the
    worst listeners, the outage figures)."""
    total = Accounting()
    worst: list[dict[str, Any]] = []
    outage = Accounting()
    for client in clients:
        mon = client.monitor
        if mon is None:
            continue
        mon.finish()
        mine = list(expected.get(id(client), []))
        marks = [m for m in (r.mark() for r in client.reoffers) if m is not None]
        acc = account(mon.runs, mon.late, mine)
        if marks:
            ordinary, inside = carve(mine, outage_holes(mon.runs, marks))
            normal = account(mon.runs, mon.late, ordinary)
            outage.add(account(mon.runs, mon.late, inside))
            acc.expected, acc.received_expected = normal.expected, normal.received_expected
            acc.missing = normal.missing
        total.add(acc)
        if acc.missing or acc.duplicates or acc.out_of_order:
            worst.append({"client": client.name, **asdict(acc)})
    worst.sort(key=lambda d: -int(d["missing"]))
    reoffers = [r for c in clients for r in c.reoffers]
    times = [r.ms for r in reoffers if r.ms is not None]
    outages = {
        "resets": len(reoffers),
        "reoffers_completed": len(times),
        "reoffer_ms": percentiles(times),
        "reoffer_errors": [e for r in reoffers for e in r.errors][:5],
        "packets_expected": outage.expected,
        "packets_missing": outage.missing,
        "frames_not_sent": sum(c.frames_not_sent for c in clients),
    }
    return total, worst[:10], outages
