"""/metrics of a real ``walkie serve`` (media in a worker process) against a bench run's own
accounting: every counter the two can both see must be equal, not merely plausible."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.server import ServerProcess

from .benchrun import run_bench


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "metrics", timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in found.items()
               if n == name and all((k, w) in ls for k, w in labels.items()))


def test_metrics_equal_the_bench_accounting(tmp_path: Path) -> None:
    server = ServerProcess.start(max_users=15, core=None, extra_args=["--metrics"])
    try:
        r = run_bench(["--url", server.url, "--server-pid", str(server.pid), "--rooms", "2",
                       "--users", "4", "--duration", "6", "--talk", "1", "2", "--no-pin",
                       "--quiet", "--seed", "3"], tmp_path)
        found = scrape(server.url)
    finally:
        server.stop()
    users = r["rooms"] * r["users_per_room"]
    assert r["users_connected"] == users and r["checks"]["no_loss"], r["checks"]
    assert total(found, "walkie_joins_total") == users
    assert total(found, "walkie_leaves_total") == users  # the bench left at the end
    assert total(found, "walkie_members") == 0 and total(found, "walkie_rooms") == 0
    assert total(found, "walkie_floor_grants_total") == r["turns"]
    assert total(found, "walkie_floor_denials_total") == r["floor_denied"]
    assert total(found, "walkie_join_seconds_count") == users
    assert total(found, "walkie_media_events_total", kind="connected") == users
    # every packet the worker forwarded reached a bench listener, and nothing else did
    forwarded = total(found, "walkie_media_packets_forwarded_total")
    assert forwarded == r["packets_received_total"] > 0
    assert total(found, "walkie_media_dropped_total", reason="srtp_auth") == 0
    assert total(found, "walkie_worker_up") >= 1
