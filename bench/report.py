"""Human-readable output of bench results: the end-of-run table and the PNG plots.

The JSON file is the complete record; the table shows the figures an operator sizes a
server with, next to the targets, and flags a client-side bottleneck so that it is never
mistaken for a server limit.
"""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = ["client_bound", "format_find_max", "format_table", "plot_find_max", "plot_rss",
           "plot_run", "write_record"]

def write_record(path: str | None, record: dict[str, Any]) -> dict[str, Any]:
    """A probe's JSON record, dated (UTC), written to ``path`` if given; returned."""
    record = {**record, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    return record


#: Above this the bench's own core is the bottleneck and latency figures are the bench's.
CLIENT_BOUND_CPU_PERCENT = 85.0


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def client_bound(result: dict[str, Any]) -> bool:
    """True when the bench's core was (nearly) saturated or its 20 ms clock fell behind."""
    bench = result.get("bench", {})
    cpu = bench.get("cpu_percent") or 0.0
    return cpu >= CLIENT_BOUND_CPU_PERCENT or bench.get("metronome_skipped_frames", 0) > 0


def format_table(r: dict[str, Any]) -> str:
    """The end-of-run summary."""
    lat = r["latency_ms"]
    fa = r["floor_access_ms"]
    jm = r["join_ms"]
    acc = r["accounting"]
    srv = r["server"]
    bench = r["bench"]
    seq = r["sequence"]
    rss_user = srv.get("rss_added_per_user_bytes")
    loss = r["loss_ratio"]
    rows = [
        ("load", (f"{r['rooms']} room(s) x {r['users_per_room']} users, "
                  f"{r['users_connected']} connected, pattern {r['settings']['pattern']}, "
                  f"{r['turns']} turns, window {r['window_s']} s")),
        ("forwarded", (f"{r['packets_forwarded']:,} packets in the window "
                       f"({r['forwarded_packets_per_second'] or 0:,}/s); server counted "
                       f"{r['packets_forwarded_server_count'] if r['packets_forwarded_server_count'] is not None else '-'}")),
        ("server CPU / packet", _per_packet(r)),
        ("server CPU", (f"{srv.get('cpu_percent', '-')} % (user {srv.get('user_percent', '-')} %, "
                        f"system {srv.get('system_percent', '-')} %), {_whose(srv)}")),
        ("server RSS", (f"{(srv.get('rss_bytes') or 0) / 2**20:.1f} MiB; per user "
                        f"{(srv.get('rss_per_user_bytes') or 0) / 1024:.0f} KiB, added per user "
                        f"{(rss_user or 0) / 1024:.0f} KiB")),
        ("added latency", (f"p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  p99 {_ms(lat['p99'])}  "
                           f"max {_ms(lat['max'])} ms  (n={lat['n']:,}; target p99 <= 2 ms at 1 room)")),
        ("pre-roll latency", (f"p50 {_ms(r['preroll_latency_ms']['p50'])}  max "
                              f"{_ms(r['preroll_latency_ms']['max'])} ms  (n={r['preroll_latency_ms']['n']}; held on purpose)")),
        ("loss", (f"{'-' if loss is None else f'{100 * loss:.4f} %'}  missing {acc['missing']:,} of "
                  f"{acc['expected']:,}; duplicates {acc['duplicates']}, out of order "
                  f"{acc['out_of_order']}, pre-roll extra {acc['extra']:,}"
                  + (f"; of the missing, {acc.get('missing_at_end', 0):,} ended a turn and "
                     f"{acc.get('missing_at_start', 0):,} started one" if acc['missing'] else ""))),
        ("audio gap", _gap_text(r.get("audio_gap"), "steady window")),
        ("sequence", (f"gaps at talker change {seq['gaps_at_talker_change']}, within bursts "
                      f"{seq['gaps_within_burst']}, bursts {seq['bursts']:,}, markers missing "
                      f"{seq['marker_missing']}")),
        ("verified", (f"{r['verified_packets']:,} packets fully decrypted and compared "
                      f"(1 in {r['settings']['sample_every_effective']}); failures "
                      f"{r['verify_failures'] or 'none'}; own audio {r['own_audio_packets']}")),
        ("floor access", (f"p50 {_ms(fa['p50'])}  p95 {_ms(fa['p95'])}  p99 {_ms(fa['p99'])}  max "
                          f"{_ms(fa['max'])} ms  (n={fa['n']}; target p99 <= 10 ms)")),
        ("join", (f"p50 {_ms(jm['p50'])}  p95 {_ms(jm['p95'])}  max {_ms(jm['max'])} ms  "
                  f"(n={jm['n']}, {jm['failures']} failed, {jm['concurrency']} at a time; target p50 <= 150 ms)")),
        ("bench CPU", (f"{bench['cpu_percent']} % (user {bench.get('user_percent')} %, system "
                       f"{bench.get('system_percent')} %; {_ms(bench['cpu_us_per_received_packet'])} µs "
                       f"per received packet); 20 ms clock late {bench['metronome_late_wakeups']}x, "
                       f"max {bench['metronome_max_late_ms']} ms")),
    ]
    load = r.get("machine_load") or {}
    if load:
        other = (f"{load['other_processes_cpu_percent']} % of a core used by other processes "
                 f"during the window, steal {load['steal_percent']} %")
        rows.append(("other load", other))
    processes = srv.get("processes") or []
    if len(processes) > 1:
        rows.insert(4, ("server processes", _processes_text(srv)))
    if r.get("rss_over_time"):
        rows.insert(5, ("server RSS over time", _rss_text(r["rss_over_time"])))
    outage = r.get("outage") or {}
    if outage.get("resets"):
        rows.append(("media outages", _outage_text(outage)))
    incident = r.get("incident")
    if incident:
        rows.extend(_incident_rows(incident))
    if r.get("queue_wait_ms", {}).get("n"):
        q = r["queue_wait_ms"]
        rows.append(("queue wait", f"p50 {_ms(q['p50'])}  max {_ms(q['max'])} ms (n={q['n']})"))
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    if r.get("ambiguous_matches"):
        lines.append(f"  WARNING: {r['ambiguous_matches']} packets came after a jump of 64 or more "
                     "in their talker's sequence (a long loss, or a delay over 2.56 s): loss, "
                     "duplicate and order figures may be wrong; gap figures are not affected.")
    floor = r.get("machine_floor") or {}
    if floor.get("sender_cpu_percent") is not None and floor["sender_cpu_percent"] < 90:
        lines.append(f"  WARNING: the floor's sender got only {floor['sender_cpu_percent']} % of "
                     "its core (another process ran there): the floor and the ratio are disturbed.")
    if (load.get("other_processes_cpu_percent") or 0) > 10:
        lines.append("  WARNING: other processes used the CPUs during the window: figures are disturbed.")
    if client_bound(r):
        lines.append("  WARNING: the bench fell behind (its core saturated, or taken by another "
                     "process): latency and loss above may be client-limited, not a server limit.")
    failed = [k for k, ok in r["checks"].items() if not ok]
    lines.append(f"  functional checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return "\n".join(lines)


def _per_packet(r: dict[str, Any]) -> str:
    text = f"{_ms(r['server_cpu_us_per_forwarded_packet'])} µs   (target <= 10 µs at 50 rooms)"
    floor = r.get("machine_floor") or {}
    ratio = r.get("server_cpu_per_packet_over_floor")
    if ratio is not None:
        text = (f"{_ms(r['server_cpu_us_per_forwarded_packet'])} µs = {ratio:.2f} x this "
                f"machine's floor ({floor['us_per_send']:.2f} µs per send() of "
                f"{floor['payload_bytes']} bytes, sender {floor['sender_cpu_percent']} % busy)")
    elif floor.get("error"):
        text += f"; floor not measured: {floor['error']}"
    return text


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:+.2f} %"


def _rss_text(rss: dict[str, Any]) -> str:
    """``--rss-every``: growth after warm-up, per role, the slope and the goal."""
    roles = ", ".join(f"{role} {_pct(g['growth_ratio'])}" for role, g in rss["by_role"].items())
    slope = rss["slope_bytes_per_min"]
    goal = {None: "too few samples for a figure", True: "goal < 5 %: met",
            False: "goal < 5 %: NOT met"}[rss["within_goal"]]
    return (f"{_mib(rss['baseline_bytes'])} -> {_mib(rss['final_bytes'])} MiB, growth "
            f"{_pct(rss['growth_ratio'])} ({rss['definition']}; {roles}); slope "
            f"{'-' if slope is None else f'{slope / 1024:+.0f}'} KiB/min; "
            f"{len(rss['samples'])} samples every {rss['every_s']:g} s; {goal}")


def _whose(srv: dict[str, Any]) -> str:
    """Whose CPU the server figure is: a multi-node run's nodes, or one server's tree."""
    if srv.get("nodes"):
        return f"{srv['nodes']} nodes and Redis (per node below)"
    return f"pid {srv.get('pid')}{_tree_note(srv)}"


def _tree_note(srv: dict[str, Any]) -> str:
    """What the figure covers when the server is more than one process."""
    n = len(srv.get("processes") or [])
    if n <= 1 and not srv.get("processes_ended_in_window"):
        return ""
    text = f" and its {n - 1} child process(es)"
    if srv.get("processes_ended_in_window"):
        text += (f"; {srv['processes_ended_in_window']} ended in the window "
                 f"({srv.get('ended_in_window_cpu_s')} s of CPU, counted)")
    return text


def _processes_text(srv: dict[str, Any]) -> str:
    parts = []
    for p in srv.get("processes") or []:
        label = p["role"] if p["role"] in ("signaling", "server") else f"{p['role']} {p['pid']}"
        if p.get("lifetime") == "started in window":
            label += " (new)"
        parts.append(f"{label} {p.get('cpu_percent', '-')} %")
    return ", ".join(parts)


def _gap_text(gap: dict[str, Any] | None, what: str) -> str:
    if not gap or gap.get("max_ms") is None:
        return f"- ({what}: no gap measured)"
    return (f"longest {gap['max_ms']:.1f} ms ({what}, {gap['window_s']} s; at {gap['listener']}); "
            f"gaps >= 100 ms: {gap['long_gaps']}")


def _outage_text(o: dict[str, Any]) -> str:
    ms = o["reoffer_ms"]
    return (f"{o['resets']} media resets, {o['reoffers_completed']} re-offered (p50 "
            f"{_ms(ms['p50'])}  max {_ms(ms['max'])} ms); {o['packets_expected']:,} packets sent "
            f"during listeners' outages, {o['packets_missing']:,} of them lost (not counted as "
            f"loss); {o['frames_not_sent']:,} frames not sent while re-offering")


def _gap_and_loss_rows(i: dict[str, Any], who: str = "") -> list[tuple[str, str]]:
    """The talking rooms' longest gap before / during / after a flood, and loss during it."""
    loss = i["loss_during"] or {}
    ratio = loss.get("ratio")
    return [
        ("gap before flood", who + _gap_text(i["audio_gap_before"], "before")),
        ("gap during flood", who + _gap_text(i["audio_gap_during"], "flood + 1 s")),
        ("gap after flood", who + _gap_text(i["audio_gap_after"], "after")),
        ("loss during flood", (f"{who}{'-' if ratio is None else f'{100 * ratio:.4f} %'}  "
                               f"missing {loss.get('missing', '-')} of "
                               f"{loss.get('expected', '-')}")),
    ]


def _incident_rows(i: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if i.get("error"):
        rows.append(("incident error", str(i["error"])))
    if i["kind"] == "offer-flood":
        f = i["flood"]
        refused = f["connections_refused"] or "none"
        rows.append(("flood", (f"{f['connections_joined']} WebSockets from "
                               f"{f['settings']['address']} (refused: {refused}), "
                               f"{f['offers_sent']:,} offers of {f['offer_message_bytes']:,} bytes in "
                               f"{f['flood_s']} s ({f['offers_per_second']}/s); replies "
                               f"{f['replies'] or 'none'}")))
        rows.extend(_gap_and_loss_rows(i))
        hb, hd = i["healthz_ms_before"], i["healthz_ms_during"]
        rows.append(("/healthz", (f"before p50 {_ms(hb['p50'])} max {_ms(hb['max'])} ms (n={hb['n']}); "
                                  f"during p50 {_ms(hd['p50'])} max {_ms(hd['max'])} ms "
                                  f"(n={hd['n']}, {hd['failed']} failed)")))
    elif i["kind"] == "uplink-flood" and "flood_s" in i:
        fwd = i["forwarded_per_listener_per_second"]
        rows.append(("uplink flood", (f"{i['talker']} sent {i['flood_packets_sent']:,} flood packets "
                                      f"in {i['flood_s']} s ({i['flood_packets_per_second']:,}/s; "
                                      f"{i['talker_packets_per_second']:,}/s with its audio over "
                                      f"flood + 1 s; {i['flood_packets_skipped_late']:,} "
                                      f"skipped late)")))
        rows.append(("forwarded per listener", (f"max {fwd['max']}/s, median {fwd['median']}/s "
                                                f"({i['listeners']} listeners, flood + 1 s; "
                                                f"goal <= 250/s)")))
        rows.append(("server during flood", str(i["server_counters_during"] or "-")))
        rows.extend(_gap_and_loss_rows(i, f"{i['other_rooms']} other rooms: "))
    elif i["kind"] == "kill-worker":
        if i.get("killed_pid") is None:
            return rows
        new = i.get("new_worker")
        rows.append(("worker kill", (f"SIGKILL to pid {i['killed_pid']} at {i['after_s']} s; "
                                     f"new worker {'pid ' + str(new['pid']) + ' seen after ' + str(new['seen_ms']) + ' ms' if new else 'not seen'}; "
                                     f"{i.get('affected_rooms', 0)} room(s), "
                                     f"{i.get('affected_members', 0)} members affected")))
        back = i.get("audio_back_ms") or {}
        rows.append(("audio back after kill", (f"max {_ms(back.get('max'))}  p50 {_ms(back.get('p50'))} ms "
                                               f"(n={back.get('n', 0)} listeners whose talker held "
                                               f"the floor; target max <= 3000 ms)")))
        ro, rs = i.get("reoffer_ms") or {}, i.get("reset_ms") or {}
        rows.append(("reset / re-offer", (f"reset p50 {_ms(rs.get('p50'))} max {_ms(rs.get('max'))} ms; "
                                          f"media up again p50 {_ms(ro.get('p50'))} max "
                                          f"{_ms(ro.get('max'))} ms; not reconnected "
                                          f"{i.get('members_not_reconnected_count', 0)}")))
    return rows


def format_find_max(steps: list[dict[str, Any]], best: dict[str, Any] | None, bound_ms: float,
                    loss_bound: float) -> str:
    header = (f"  {'rooms':>5} {'users':>6} {'fwd/s':>9} {'srv µs/pkt':>10} {'x floor':>7} {'srv CPU%':>8} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'loss %':>8} {'bench CPU%':>10}  verdict")
    lines = [header]
    for s in steps:
        r = s["result"]
        loss = "-" if r["loss_ratio"] is None else f"{100 * r['loss_ratio']:.3f}"
        lines.append(
            f"  {r['rooms']:>5} {r['users_connected']:>6} {r['forwarded_packets_per_second'] or 0:>9,} "
            f"{_ms(r['server_cpu_us_per_forwarded_packet']):>10} "
            f"{_ms(r.get('server_cpu_per_packet_over_floor')):>7} "
            f"{r['server'].get('cpu_percent', '-')!s:>8} {_ms(r['latency_ms']['p50']):>7} "
            f"{_ms(r['latency_ms']['p99']):>7} {loss:>8} "
            f"{r['bench']['cpu_percent']!s:>10}  {s['verdict']}"
        )
    if best is None:
        lines.append(f"  no load passed (p99 <= {bound_ms} ms, loss <= {100 * loss_bound} %)")
    else:
        lines.append(f"  largest passing load: {best['rooms']} rooms x {best['users_per_room']} users "
                     f"(p99 {_ms(best['latency_ms']['p99'])} ms <= {bound_ms} ms, loss <= {100 * loss_bound} %)")
    return "\n".join(lines)


def plot_run(result: dict[str, Any], path: str) -> None:
    """Latency CDF of one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    cdf = result["latency_cdf"]
    ax.plot(cdf["x_ms"], cdf["y"], label=f"{result['rooms']} room(s) x {result['users_per_room']}")
    ax.set_xscale("log")
    ax.set_xlabel("added forwarding latency (ms, talker send -> listener receive)")
    ax.set_ylabel("fraction of packets")
    ax.set_title("walkie bench: latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rss(result: dict[str, Any], path: str) -> None:
    """``--rss-every``: the server tree's RSS over time, per role, with the two windows the
    growth figure compares, and the packets/s the bench received (the load it carried)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .rsslog import BASELINE, FINAL

    rss = result["rss_over_time"]
    samples = rss["samples"]
    minutes = [s["t"] / 60 for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.plot(minutes, [s["rss_bytes"] / 2**20 for s in samples], "-", lw=2, label="whole tree")
    for role in rss["by_role"]:
        ax.plot(minutes, [s["by_role"].get(role, 0) / 2**20 for s in samples], "-", lw=1,
                label=role + ("s (incl. spare)" if role == "media worker" else ""))
    d = rss["duration_s"] / 60
    ax.axvspan(BASELINE[0] * d, BASELINE[1] * d, color="tab:green", alpha=0.12, label="baseline")
    ax.axvspan(FINAL[0] * d, FINAL[1] * d, color="tab:red", alpha=0.12, label="final")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("minutes of talking")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title(f"walkie bench: server RSS, {result['rooms']} rooms x {result['users_per_room']}"
                 f" (growth {_pct(rss['growth_ratio'])})")
    ax.grid(True, alpha=0.3)
    rate = ax.twinx()
    pairs = list(zip(samples, samples[1:]))
    rate.plot([b["t"] / 60 for _, b in pairs],
              [(b["received"] - a["received"]) / max(1e-6, b["t"] - a["t"]) for a, b in pairs],
              ":", color="gray", label="packets/s received")
    rate.set_ylim(bottom=0)
    rate.set_ylabel("packets/s received by the bench", color="gray")
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = rate.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_find_max(steps: list[dict[str, Any]], path: str, bound_ms: float) -> None:
    """Three panels: latency CDF per step; server CPU vs rooms; p99 latency vs rooms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    rooms = [s["result"]["rooms"] for s in steps]
    for s in steps:
        cdf = s["result"]["latency_cdf"]
        a.plot(cdf["x_ms"], cdf["y"], label=f"{s['result']['rooms']} rooms")
    a.set_xscale("log")
    a.set_xlabel("added latency (ms)")
    a.set_ylabel("fraction of packets")
    a.set_title("latency CDF per load")
    a.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=7)

    cpu = [s["result"]["server"].get("cpu_percent") for s in steps]
    us = [s["result"]["server_cpu_us_per_forwarded_packet"] for s in steps]
    bench_cpu = [s["result"]["bench"].get("cpu_percent") for s in steps]
    b.plot(rooms, cpu, "o-", label="server CPU %")
    b.plot(rooms, bench_cpu, "s--", label="bench (clients) CPU %")
    b.set_xlabel(f"rooms of {steps[0]['result']['users_per_room']}")
    b.set_ylabel("CPU % of one core")
    b.set_title("CPU vs rooms")
    b.grid(True, alpha=0.3)
    b2 = b.twinx()
    b2.plot(rooms, us, "^:", color="tab:red", label="server µs / forwarded packet")
    b2.axhline(10, color="tab:red", lw=0.8, ls="--", label="target 10 µs / packet")
    b2.set_ylim(0, max([u for u in us if u is not None] + [10]) * 1.4)
    b2.set_ylabel("µs of server CPU per forwarded packet", color="tab:red")
    b.set_ylim(0, 105)
    lines = b.get_legend_handles_labels()
    lines2 = b2.get_legend_handles_labels()
    b.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")

    p99 = [s["result"]["latency_ms"]["p99"] for s in steps]
    p50 = [s["result"]["latency_ms"]["p50"] for s in steps]
    c.plot(rooms, p99, "o-", label="p99")
    c.plot(rooms, p50, "s--", label="p50")
    failed = [(s["result"]["rooms"], s["result"]["latency_ms"]["p99"]) for s in steps if not s["passed"]]
    if failed:
        c.plot(*zip(*failed, strict=True), "x", color="black", ms=10, label="failed step")
    c.axhline(bound_ms, color="tab:red", lw=1, label=f"bound {bound_ms} ms")
    c.set_yscale("log")
    c.set_xlabel(f"rooms of {steps[0]['result']['users_per_room']}")
    c.set_ylabel("added latency (ms)")
    c.set_title("latency vs rooms")
    c.grid(True, which="both", alpha=0.3)
    c.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
