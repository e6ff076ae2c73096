"""This machine's floor (CPU per connected send() of a 100-byte datagram): a short real
measurement returns sane, positive numbers (no timing assertions)."""

from __future__ import annotations

import os

import pytest

from bench.sendfloor import measure_floor, median_floor


def test_floor_is_a_positive_cost_per_send() -> None:
    cores = sorted(os.sched_getaffinity(0))
    sender, drain = (cores[0], cores[-1]) if len(cores) >= 2 else (None, None)
    floor = measure_floor(sender, drain, seconds=0.3)
    assert floor["packets"] >= 1000 and floor["packets"] % 1000 == 0
    assert floor["us_per_send"] > 0
    # the cost per send is the sender's CPU over the packets it sent
    cpu_s = floor["sender_cpu_percent"] / 100 * floor["wall_s"]
    assert floor["us_per_send"] == pytest.approx(cpu_s / floor["packets"] * 1e6, rel=0.05)
    assert floor["received"] > 0  # the drain read datagrams: the socket was really drained
    assert floor["payload_bytes"] == 100 and floor["sender_core"] == sender


def test_floor_is_bounded() -> None:
    floor = measure_floor(None, None, seconds=5, max_packets=2000)
    assert floor["packets"] == 2000  # the packet bound ends it long before 5 s
    for bad in ({"seconds": 0}, {"seconds": 11}, {"size": 5}, {"max_packets": 10}):
        with pytest.raises(ValueError):
            measure_floor(None, None, **bad)  # type: ignore[arg-type]


def test_the_median_floor_is_one_of_its_samples() -> None:
    floor = median_floor(None, None, seconds=0.3, repeats=3)
    samples = floor["samples_us_per_send"]
    assert len(samples) == 3 and samples == sorted(samples)
    assert floor["us_per_send"] == samples[1]
    with pytest.raises(ValueError):
        median_floor(None, None, repeats=0)
