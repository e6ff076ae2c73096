"""The bench's attack modes at a tiny scale, against a real server process. The offer flood
comes from one address, each flooding WebSocket joins first, the server's per-address join
budget binds it (22 asked, a burst of 20 admitted, plus what refills meanwhile), every offer is refused, and the run
reports the talking room's gaps, loss and /healthz probes, the machine's floor and the ratio
to it. The signaling probes (join sweep, password guessing) meet the server's budgets.
Functional results only: no time is judged, only counts."""

from __future__ import annotations

import json
from pathlib import Path

from bench.flood import flood_offer
from sfu.sdp import SdpError, parse_offer

from .benchrun import run_bench


def test_flood_offer_is_valid_sdp_line_by_line_and_refused_whole() -> None:
    text = flood_offer(65_000)
    assert 60_000 < len(text) <= 65_000 and text.isascii()
    message = json.loads(text)
    assert message["type"] == "offer"
    sdp = message["sdp"]
    assert sdp.count("a=candidate:") > 500
    try:
        parse_offer(sdp)
    except SdpError as exc:
        assert "BUNDLE" in str(exc)  # refused at the very end, after the whole parse
    else:
        raise AssertionError("the flood offer must be refused")
    assert len(flood_offer(5000)) <= 5000


def test_offer_flood_at_a_tiny_scale(tmp_path: Path) -> None:
    r = run_bench(
        ["--rooms", "1", "--users", "3", "--duration", "10", "--talk", "8", "8",
         "--attack", "offer-flood", "--attack-after", "3", "--attack-seconds", "3",
         "--flood-connections", "22", "--flood-rate", "2", "--floor-seconds", "0.3",
         "--no-pin", "--quiet", "--seed", "3"],
        tmp_path,
    )
    incident = r["incident"]
    detail = json.dumps({k: r.get(k) for k in ("incident", "join_ms", "checks")}, indent=1)[:6000]
    flood = incident["flood"]
    assert incident["kind"] == "offer-flood" and incident["error"] is None, detail
    # one address, the server's per-address join budget in force: a burst of 20 joins (one
    # or two more when the 22 joins take over half a second: the budget refills 2 per second)
    assert flood["settings"]["address"] == "127.0.0.66"
    joined, refused = flood["connections_joined"], flood["connections_refused"]
    assert 20 <= joined <= 22 and joined + refused.get("try_later", 0) == 22, detail
    assert set(refused) <= {"try_later"}, detail
    assert flood["offers_sent"] > 0 and flood["replies"].get("bad_offer", 0) > 0, detail
    assert set(flood["replies"]) <= {"bad_offer", "member_joined", "member_left", "rate_limited"}
    # the talking room: every user joined (each from its own address), and was measured
    assert r["users_connected"] == 3 and r["join_ms"]["failures"] == 0, detail
    for when in ("audio_gap_before", "audio_gap_during", "audio_gap_after"):
        assert incident[when] is not None and incident[when]["max_ms"] is not None, detail
    assert incident["loss_during"]["expected"] > 0, detail  # one talker held the floor
    assert incident["healthz_ms_before"]["n"] > 0 and incident["healthz_ms_during"]["n"] > 0
    assert r["audio_gap"]["max_ms"] is not None
    # this machine's floor and the ratio to it
    assert r["machine_floor"]["us_per_send"] > 0
    assert r["server_cpu_per_packet_over_floor"] is not None
    assert r["server"]["processes"] and r["server"]["processes"][0]["pid"] == r["server"]["pid"]


def test_uplink_flood_at_a_tiny_scale(tmp_path: Path) -> None:
    """The first room's floor holder floods its uplink; the server's cap drops most of it
    (counted), and the other room is measured. Counts only: no rate or time is judged."""
    r = run_bench(
        ["--rooms", "2", "--users", "3", "--duration", "8", "--talk", "6", "6",
         "--attack", "uplink-flood", "--attack-after", "3", "--attack-seconds", "2",
         "--uplink-flood-rate", "2000", "--floor-seconds", "0", "--no-pin", "--quiet",
         "--seed", "3"],
        tmp_path,
    )
    incident = r["incident"]
    detail = json.dumps({k: r.get(k) for k in ("incident", "join_ms")}, indent=1)[:6000]
    assert incident["kind"] == "uplink-flood" and incident["error"] is None, detail
    assert incident["talker"] == "bench 0.0" and incident["listeners"] == 2, detail
    sent = incident["flood_packets_sent"]
    assert sent > 500, detail
    server = incident["server_counters_during"]
    # Without a cap each flood packet would go to both listeners: 2 x sent and more.
    assert server["packets_forwarded"] < sent, detail
    assert server["uplink_dropped_packet_rate"] > sent // 2, detail
    assert incident["forwarded_per_listener_per_second"]["max"] is not None
    assert incident["other_rooms"] == 1
    for when in ("audio_gap_before", "audio_gap_during", "audio_gap_after"):
        assert incident[when] is not None and incident[when]["max_ms"] is not None, detail
    assert incident["loss_during"]["expected"] > 0, detail


def test_join_sweep_meets_the_join_budget(tmp_path: Path) -> None:
    r = run_bench(["--attack", "join-sweep", "--attack-seconds", "2", "--flood-connections", "4",
                   "--no-pin", "--quiet"], tmp_path)
    # the default budget: a burst of 20 joins, then 2 per second (+1: a token refilled at the end)
    assert 20 <= r["joins"] <= 20 + 2 * 2 + 1, r
    assert r["answers"]["try_later"] > 0 and set(r["answers"]) <= {"joined", "try_later"}, r


def test_password_guessing_backs_off_and_the_owner_s_friend_gets_in(tmp_path: Path) -> None:
    r = run_bench(["--attack", "password-guess", "--attack-seconds", "3", "--flood-connections",
                   "4", "--no-pin", "--quiet"], tmp_path)
    # three wrong passwords are free, then the address waits 1 s, 2 s ...
    assert 3 <= r["guesses_evaluated"] <= 6, r
    assert r["answers"]["try_later"] > 0, r
    assert r["legit_join_before"]["failed"] == 0 and r["legit_join_during"]["failed"] == 0, r
    assert r["legit_join_during"]["ms"]["n"] == 3, r
