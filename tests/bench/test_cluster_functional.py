"""CI functional check of the multi-node bench: ``python -m bench --cluster 3``, 2 rooms x 3
users for a few seconds, with the bench's own redis-server and three ``walkie serve --redis``
nodes on loopback. Functional results only, never timing: every user joined, the members of
each room joined through different nodes (so most joins were bridged), every listener got
every packet sent under the floor, and the per-node figures add up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .benchrun import run_bench

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server (ci/test installs it)")


def test_two_rooms_of_three_over_three_nodes(tmp_path: Path) -> None:
    r = run_bench(
        ["--cluster", "3", "--rooms", "2", "--users", "3", "--duration", "6", "--talk", "1", "2",
         "--verify-all", "--no-pin", "--quiet", "--seed", "7", "--floor-seconds", "0"],
        tmp_path, timeout=240,
    )
    c = r["cluster"]
    detail = json.dumps({k: r[k] for k in ("checks", "accounting", "join_ms", "cluster")},
                        indent=1, default=str)
    assert r["users_connected"] == 6 and r["join_ms"]["failures"] == 0, detail
    # three nodes, each known by its id, each the ingress of two users (round robin)
    assert [n["node_id"] for n in c["nodes"]] == ["n1", "n2", "n3"], detail
    assert [n["users_joined_through"] for n in c["nodes"]] == [2, 2, 2], detail
    # each room has one owner; of its three members one joined through it, two were bridged
    assert sum(n["rooms_owned"] for n in c["nodes"]) == 2, detail
    split = c["join_ms"]
    assert split["owners_known"] and split["owner_unknown"] == 0, detail
    assert split["through_owner"]["n"] == 2 and split["through_other"]["n"] == 4, detail
    # audio went through: nothing missing, in order, every packet decrypted and compared
    acc = r["accounting"]
    assert acc["expected"] > 0 and acc["missing"] == 0, detail
    assert acc["duplicates"] == 0 and acc["out_of_order"] == 0, detail
    assert r["verified_packets"] == r["packets_received_total"] > 0, detail
    assert r["own_audio_packets"] == 0 and r["functional_ok"] is True, detail
    # what the listeners received in the window is attributed to the rooms' owners
    assert sum(n["packets_received_from_its_rooms"] for n in c["nodes"]) == r["packets_forwarded"]
    assert all(n["cpu_percent"] is not None for n in c["nodes"]), detail
    assert c["redis"]["pid"] is not None and c["cpu_percent"] is not None, detail
    # the bench stopped what it started, cleanly
    assert set(c["exit_codes"]) == {"n1", "n2", "n3", "redis"}, detail
    assert all(code == 0 for code in c["exit_codes"].values()), detail
