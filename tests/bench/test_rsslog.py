"""The soak's memory figures (``--rss-every``): the growth rule on made-up series, sampling a
real process tree, the options, the table line and the plot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.report import _rss_text, plot_rss
from bench.rsslog import RssLog, growth, rss_summary

MIB = 2**20


def series(duration: float, every: float, value) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    n = int(duration / every)
    return [(i * every, value(i * every)) for i in range(n + 1)]


def test_a_plateau_after_warm_up_is_no_growth() -> None:
    # Start-up fills memory in the first 2 minutes of 30, then it stays flat.
    points = series(1800, 10, lambda t: 200 * MIB + min(t, 100) * MIB)
    g = growth(points, 1800)
    assert g["growth_ratio"] == 0.0
    assert g["baseline_samples"] == 19 and g["final_samples"] == 31
    assert g["slope_bytes_per_min"] == 0.0


def test_a_steady_leak_shows_in_full() -> None:
    # 1 MiB a minute on 300 MiB: minutes 2-5 median 303.5, last 5 min median 327.5.
    points = series(1800, 10, lambda t: 300 * MIB + t / 60 * MIB)
    g = growth(points, 1800)
    assert g["baseline_bytes"] == 303.5 * MIB and g["final_bytes"] == 327.5 * MIB
    assert g["growth_ratio"] == pytest.approx(327.5 / 303.5 - 1, abs=1e-5)
    assert g["slope_bytes_per_min"] == pytest.approx(MIB, rel=1e-6)


def test_one_odd_sample_does_not_move_the_medians() -> None:
    points = series(1800, 10, lambda t: 250 * MIB)
    points[-1] = (1800, 900 * MIB)  # e.g. a burst of allocations at the very end
    points[15] = (150, 10 * MIB)
    assert growth(points, 1800)["growth_ratio"] == 0.0


def test_the_rule_scales_with_the_run_and_needs_samples() -> None:
    short = growth(series(180, 3, lambda t: 100 * MIB), 180)  # 12-30 s against 150-180 s
    assert (short["baseline_samples"], short["final_samples"]) == (7, 11)
    assert short["growth_ratio"] == 0.0
    sparse = growth(series(180, 30, lambda t: 100 * MIB), 180)
    assert sparse["baseline_samples"] < 3 and sparse["growth_ratio"] is None


def test_the_summary_splits_roles_and_judges_the_goal() -> None:
    samples = [{"t": t, "rss_bytes": s + w, "by_role": {"signaling": s, "media worker": w},
                "received": int(t * 1000)}
               for t, s, w in ((t, 60 * MIB, 100 * MIB + t * 40_000) for t in range(0, 181, 3))]
    summary = rss_summary(samples, 180, 3)
    assert summary["by_role"]["signaling"]["growth_ratio"] == 0.0
    assert summary["by_role"]["media worker"]["growth_ratio"] > 0.05
    assert 0 < summary["growth_ratio"] < 0.05 and summary["within_goal"] is True
    assert "12-30 s" in summary["definition"] and "last 30 s" in summary["definition"]
    text = _rss_text(summary)
    assert "signaling +0.00 %" in text and "goal < 5 %: met" in text


def test_sampling_a_real_tree(tmp_path: Path) -> None:
    """A parent and a child that holds 64 MiB: both sampled, roles apart, load recorded
    (the child inherits the parent's stdout and says when it has its memory)."""
    code = ("import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(64 << 20); print(1, flush=True); time.sleep(60)'])\n"
            "print(c.pid, flush=True); time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.stdout.readline() == "1\n"  # the child holds its 64 MiB
        log = RssLog(parent.pid, every=0.05)
        loads = iter(range(100))

        async def soak() -> None:
            stop = asyncio.Event()
            task = asyncio.ensure_future(log.run(0.0, lambda: {"received": next(loads)}, stop))
            await asyncio.sleep(0.2)
            stop.set()
            await task

        asyncio.run(soak())
        assert len(log.samples) >= 3 and log.errors == 0
        last = log.samples[-1]
        assert set(last["processes"]) == {str(parent.pid), str(child)}
        assert last["processes"][str(child)] >= 64 * MIB
        assert last["by_role"]["signaling"] == last["processes"][str(parent.pid)]
        assert last["rss_bytes"] == sum(last["processes"].values())
        assert [s["received"] for s in log.samples] == list(range(len(log.samples)))
    finally:
        parent.kill()
        parent.wait()
    log.sample(1.0, {})  # the server is gone: counted, no sample
    assert log.errors == 1


@pytest.mark.parametrize("argv,message", [
    (["--rss-every", "5", "--find-max"], "--rss-every samples one long run"),
    (["--rss-every", "5", "--duration", "30"], "at most a tenth of --duration"),
    (["--rss-every", "0.5"], "must be 1 s or more"),
    (["--rss-every", "5", "--duration", "60", "--url", "http://127.0.0.1:9/"],
     "needs --server-pid"),
    (["--rss-plot", "x.png"], "--rss-plot plots the samples of --rss-every"),
])
def test_bad_soak_options_are_refused(argv: list[str], message: str, capsys) -> None:
    assert main([*argv, "--floor-seconds", "0"]) == 2
    assert message in capsys.readouterr().err


def test_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    samples = [{"t": t, "rss_bytes": 160 * MIB, "by_role": {"signaling": 60 * MIB,
                                                            "media worker": 100 * MIB},
                "received": t * 9000} for t in range(0, 181, 3)]
    result = {"rooms": 10, "users_per_room": 15, "rss_over_time": rss_summary(samples, 180, 3)}
    path = tmp_path / "rss.png"
    plot_rss(result, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 10_000
