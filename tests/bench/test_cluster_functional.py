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


@pytest.mark.parametrize("attack", ["kill-node", "drain-node"])
def test_a_node_killed_or_drained_its_members_are_back_with_audio(tmp_path: Path, attack: str) -> None:
    """The bench's ``--attack kill-node`` / ``drain-node`` on 3 nodes: the node owning the most
    rooms gets SIGKILL (its whole tree) or SIGTERM; every member of its rooms is back in its
    room with media, with no action (re-offer on ``media reset``, or reconnect); in each of
    its rooms someone hears a talker again; its rooms end on live nodes. No figure is judged."""
    r = run_bench(
        ["--cluster", "3", "--rooms", "3", "--users", "3", "--duration", "20", "--talk", "1", "2",
         "--attack", attack, "--attack-after", "3", "--attack-seconds", "10",
         "--no-pin", "--quiet", "--seed", "11", "--floor-seconds", "0"],
        tmp_path, timeout=300,
    )
    inc = r["incident"]
    detail = json.dumps(inc, indent=1, default=str)
    assert inc["kind"] == attack and inc["error"] is None, detail
    assert inc["rooms"] >= 1 and inc["affected_members"] == 3 * inc["rooms"], detail
    assert inc["all_back_in_their_rooms"] is True, detail
    assert inc["rooms_on_live_nodes"] is True, detail
    # in each of its rooms someone heard a talker again (who talks when is the pattern's)
    heard = {m["name"].rsplit(".", 1)[0] for m in inc["members"] if m["first_audio_ms"] is not None}
    assert len(heard) == inc["rooms"], detail
    if attack == "kill-node":
        assert inc["killed_pids"], detail
    else:
        assert all(m["moved"] for m in inc["moves"]), detail
    # the other nodes and Redis stopped cleanly at the end of the run
    codes = r["cluster"]["exit_codes"]
    assert all(code == 0 for name, code in codes.items() if name != inc["node"]), detail
