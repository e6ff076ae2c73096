"""/proc parsing for server CPU and memory figures."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.procstat import ProcStatError, parse_stat, parse_status_rss, sample
from bench.stats import percentiles


def test_own_process() -> None:
    s = sample(os.getpid(), 1.0)
    assert s.cpu_s > 0
    assert s.rss_bytes > 1 << 20


def test_command_name_with_spaces_and_parentheses() -> None:
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30
    text = "1234 (a (weird) name) " + " ".join(fields)
    assert parse_stat(text, ticks_per_second=100) == (2.5, 0.5)


def test_status_rss() -> None:
    assert parse_status_rss("Name:\tx\nVmRSS:\t   2048 kB\n") == 2 * 1024 * 1024
    with pytest.raises(ProcStatError):
        parse_status_rss("Name:\tkthread\n")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_procstat_error(text: str) -> None:
    for parse in (parse_stat, parse_status_rss):
        try:
            parse(text)
        except ProcStatError:
            pass


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    got = percentiles([float(v) for v in range(1, 101)])
    assert got == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([3.0])["p99"] == 3.0
