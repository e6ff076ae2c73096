"""The multi-node options of ``walkie bench``: what is refused, with a clear message and
exit status 2, before anything starts; and how join times are split by ingress node."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.cli import main
from bench.cluster import Cluster, Node
from bench.clusterwatch import join_split


@pytest.mark.parametrize(("argv", "message"), [
    (["--cluster", "0"], "--cluster must be 1..16"),
    (["--cluster", "17"], "--cluster must be 1..16"),
    (["--cluster", "2", "--url", "http://127.0.0.1:1/"], "give it no --url"),
    (["--url", "http://127.0.0.1:1/", "--redis", "redis://127.0.0.1:2"], "several --url"),
    (["--compare-single"], "needs --cluster"),
    (["--url", "http://127.0.0.1:1/", "--url", "http://127.0.0.1:2/", "--server-pid", "5"],
     "one --server-pid per --url"),
    (["--url", "http://127.0.0.1:1/", "--server-pid", "5", "--server-pid", "6"],
     "one --server-pid per --url"),
    (["--cluster", "2", "--kill-worker", "3"], "multi-node run takes none of them"),
    (["--cluster", "2", "--attack", "offer-flood"], "multi-node run takes none of them"),
    (["--cluster", "2", "--compare-single", "--find-max"], "not --find-max"),
])
def test_refused_before_anything_starts(argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _client(room: str, via: str, ms: float | None) -> SimpleNamespace:
    return SimpleNamespace(room=room, join_via=via, join_ms=ms)


def test_join_times_are_split_by_whether_the_ingress_owns_the_room() -> None:
    cluster = Cluster([Node("http://127.0.0.1:1/"), Node("http://127.0.0.1:2/")])
    a, b = (n.ws_url for n in cluster.nodes)
    clients = [_client("r0", a, 10.0), _client("r0", b, 30.0), _client("r1", b, 20.0),
               _client("r1", a, 40.0), _client("r2", a, 50.0), _client("r1", a, None)]
    split = join_split(cluster, clients, {"r0": 0, "r1": 1, "r2": None})  # type: ignore[arg-type]
    assert split["through_owner"]["n"] == 2 and split["through_owner"]["max"] == 20.0
    assert split["through_other"]["n"] == 2 and split["through_other"]["max"] == 40.0
    assert split["owner_unknown"] == 1  # r2's owner unknown; the failed join is not counted
    assert join_split(cluster, clients, {})["owners_known"] is False
