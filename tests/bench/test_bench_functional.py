"""CI functional check: `python -m bench`, 1 room x 15 users, ~10 s of rotating talkers,
against a real `walkie serve` process. Functional results only, no timing assertions:
every listener received every packet the talker sent while holding the floor (pre-roll
packets count too when forwarded), in order, payload intact (every packet decrypted and
compared), and nobody received their own audio."""

from __future__ import annotations

import json
from pathlib import Path

from .benchrun import run_bench


def test_one_room_of_15_rotating_talkers(tmp_path: Path) -> None:
    r = run_bench(
        ["--rooms", "1", "--users", "15", "--duration", "10", "--talk", "1.5", "3",
         "--verify-all", "--no-pin", "--quiet", "--seed", "7"],
        tmp_path, timeout=120,
    )
    detail = json.dumps({k: r[k] for k in ("checks", "accounting", "sequence", "verify_failures",
                                           "worst_listeners", "join_ms", "bench")}, indent=1)
    assert r["users_connected"] == 15 and r["join_ms"]["failures"] == 0, detail
    assert r["turns"] >= 3, detail  # several talkers, so talker changes are exercised
    acc = r["accounting"]
    # every packet sent after each grant reached all 14 listeners: nothing missing
    assert acc["expected"] > 0 and acc["missing"] == 0, detail
    assert acc["received_expected"] == acc["expected"], detail
    # in order, once
    assert acc["duplicates"] == 0 and acc["out_of_order"] == 0, detail
    assert r["sequence"]["gaps_at_talker_change"] == 0, detail
    assert r["sequence"]["gaps_within_burst"] == 0, detail
    # every packet decrypted (SRTP auth) and compared with what the talker sent
    assert r["verified_packets"] == r["packets_received_total"] > 0, detail
    assert r["verify_failures"] == {}, detail
    assert r["unmatched_packets"] == 0 and r["malformed_packets"] == 0, detail
    # the talker never hears itself
    assert r["own_audio_packets"] == 0, detail
    assert r["functional_ok"] is True, detail
    # the figures other tools read are present
    for key in ("server_cpu_us_per_forwarded_packet", "latency_ms", "loss_ratio",
                "packets_forwarded", "floor_access_ms", "join_ms"):
        assert key in r
    assert set(r["latency_ms"]) >= {"p50", "p95", "p99", "max"}
