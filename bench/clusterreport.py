"""The multi-node part of the end-of-run table (the JSON's ``cluster`` section, readable)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_cluster"]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value} %"


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _loss(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.4f} %"


def _joins(p: dict[str, Any]) -> str:
    return f"p50 {_ms(p['p50'])}  p99 {_ms(p['p99'])}  max {_ms(p['max'])} ms (n={p['n']})"


def _node_line(n: dict[str, Any]) -> str:
    parts = ", ".join(f"{p['role']} {_pct(p['cpu_percent'])}" for p in n.get("processes") or [])
    return (f"CPU {_pct(n.get('cpu_percent'))}{f' ({parts})' if parts else ''}; owns "
            f"{n['rooms_owned']} room(s), {n['users_joined_through']} users joined through it; "
            f"forwarded {_count(n['packets_forwarded_server_count'])} packets (its count), "
            f"{_count(n['packets_received_from_its_rooms'])} received from its rooms; "
            f"{_ms(n.get('us_per_forwarded_packet'))} µs per packet")


def format_cluster(r: dict[str, Any]) -> str:
    c = r["cluster"]
    rows: list[tuple[str, str]] = [
        ("nodes", (f"{len(c['nodes'])} ({'started by the bench' if c['started_by_bench'] else 'given'}"
                   f"); all of them and Redis: CPU {_pct(c['cpu_percent'])}, "
                   f"{_ms(r['server_cpu_us_per_forwarded_packet'])} µs per forwarded packet")),
    ]
    rows += [(f"node {n['node_id']}", _node_line(n)) for n in c["nodes"]]
    rows.append(("redis", f"CPU {_pct(c['redis']['cpu_percent'])} (pid {c['redis']['pid'] or '-'})"))
    split = c["join_ms"]
    if split["owners_known"]:
        rows.append(("join via owner", _joins(split["through_owner"])))
        rows.append(("join via other node", _joins(split["through_other"])
                     + (f"; owner unknown for {split['owner_unknown']}" if split["owner_unknown"] else "")))
    else:
        rows.append(("join by node", "owners unknown (give --redis with several --url)"))
    single = r.get("single_node")
    if single:
        rows.append(("single node", (
            f"join {_joins(single['join_ms'])}; CPU {_pct(single['server_cpu_percent'])}, "
            f"{_ms(single['server_cpu_us_per_forwarded_packet'])} µs per packet; p99 latency "
            f"{_ms(single['latency_ms']['p99'])} ms; loss "
            f"{_loss(single['loss_ratio'])}; "
            f"checks {'passed' if single['functional_ok'] else 'FAILED'}")))
        v = c["versus_single"]
        rows.append(("cluster / single", (
            f"join via other node p50 x{v['join_p50_through_other_over_single']}, p99 "
            f"x{v['join_p99_through_other_over_single']}; via owner p50 "
            f"x{v['join_p50_through_owner_over_single']}; CPU per packet "
            f"x{v['cpu_per_packet_over_single']}; p99 latency x{v['latency_p99_over_single']}")))
    incident = r.get("incident") or {}
    if incident.get("kind") in ("kill-node", "drain-node"):
        rows.extend(_node_incident_rows(incident))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _node_incident_rows(i: dict[str, Any]) -> list[tuple[str, str]]:
    """``--attack kill-node`` / ``drain-node``: the node, then when its rooms' members were back."""
    signal = "SIGKILL to its tree" if i["kind"] == "kill-node" else "SIGTERM"
    rows = [(i["kind"], (f"node {i['node'] or '-'} ({i['rooms']} rooms) got {signal} at "
                         f"{i['after_s']} s" + (f"; error: {i['error']}" if i.get("error") else "")))]
    if "affected_members" not in i:
        return rows
    media, audio = i["reoffer_ms"], i["audio_back_ms"]
    other = i["audio_back_ms_floor_changed"]
    owners = sorted(set(i["owners_after"].values()), key=str)
    rows += [
        ("media back", (f"p50 {_ms(media['p50'])}  max {_ms(media['max'])} ms after the signal "
                        f"(n={media['n']} of {i['affected_members']} members; not back: "
                        f"{i['members_not_reconnected_count']})")),
        ("time without media", (f"p50 {_ms(i['outage_ms']['p50'])}  max {_ms(i['outage_ms']['max'])} "
                                f"ms per member, all its outages; "
                                f"{i['members_with_several_outages']} member(s) had more than one")),
        ("audio back", (f"p50 {_ms(audio['p50'])}  max {_ms(audio['max'])} ms (n={audio['n']}, "
                        f"talker held the floor across); p50 {_ms(other['p50'])}  max "
                        f"{_ms(other['max'])} ms (n={other['n']}, a new turn first)")),
        ("back in their rooms", (f"{'all' if i['all_back_in_their_rooms'] else 'NOT all'}, no "
                                 f"action; rooms now on {', '.join(map(str, owners)) or '-'}"
                                 f"{'' if i['rooms_on_live_nodes'] else ' (NOT all on live nodes)'}")),
    ]
    for move in i.get("moves") or []:
        if move["moved"]:
            out = move["member_outage_ms"]
            rows.append((f"moved {move['room']}", (
                f"began {move['began_after_signal_ms']} ms after SIGTERM, floor "
                f"{'BUSY' if move['floor_busy_when_it_began'] else 'idle'}; members' media "
                f"down p50 {_ms(out['p50'])}  max {_ms(out['max'])} ms")))
    return rows
