"""``walkie nodes``: the cluster as Redis holds it: the live nodes, their load, their rooms.

An observer: it registers nothing and changes nothing but pruning the ids of nodes whose
record has expired (what any node's listing does). Everything it prints was read back
through signaling.cluster's strict decoding, so a junk record cannot put control characters
on the operator's terminal. Redis unreachable, or no ``--redis``: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from signaling.cluster import ClusterError, NodeInfo, NodeLoad, RedisStore

from .config import env_name
from .parsers import key_prefix, redis_url

__all__ = ["NodeView", "add_arguments", "render_json", "render_text", "run"]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One live node as listed: its record, its load, the rooms it owns."""

    info: NodeInfo
    load: NodeLoad
    rooms: tuple[str, ...]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL",
                        help=f"the cluster's Redis, as given to walkie serve [{env_name('redis')}]")
    parser.add_argument("--redis-prefix", metavar="PREFIX",
                        help="the cluster's key prefix (default: walkie:) "
                             f"[{env_name('redis_prefix')}]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``walkie nodes`` with parsed ``args``; returns the exit status."""
    url = args.redis or environ.get(env_name("redis"))
    prefix = args.redis_prefix or environ.get(env_name("redis_prefix")) or "walkie:"
    if not url:
        return _refuse(f"needs --redis URL (or the variable {env_name('redis')})")
    for flag, parse, text in (("--redis", redis_url, url), ("--redis-prefix", key_prefix, prefix)):
        try:
            parse(text)
        except ValueError as exc:
            return _refuse(f"{flag} {exc}")
    try:
        views = asyncio.run(_read(url, prefix))
    except ClusterError as exc:
        return _refuse(f"cannot read the cluster: {exc}")
    print(render_json(views, prefix) if args.json else render_text(views, prefix, time.time()))
    return 0


async def _read(url: str, prefix: str) -> list[NodeView]:
    store = await RedisStore.connect(url, prefix=prefix)
    try:
        views = []
        for info, load in await store.nodes():
            rooms = tuple(sorted(await store.rooms_of(info.id)))
            views.append(NodeView(info, load, rooms))
        return views
    finally:
        await store.close()


def render_text(views: Sequence[NodeView], prefix: str, now: float) -> str:
    """A table of the nodes, then each node's rooms."""
    if not views:
        return f"no live node in the cluster (key prefix {prefix})"
    header = ("NODE", "STATE", "ROOMS", "MEMBERS", "CPU %", "UP", "SIGNALING", "MEDIA")
    rows = [header] + [(
        v.info.id, "draining" if v.info.draining else "serving",
        f"{v.load.rooms}/{v.load.capacity_rooms}", str(v.load.members),
        f"{v.load.cpu_percent:.1f}", _duration(now - v.info.started_at),
        v.info.signaling_url or "-", ", ".join(v.info.media_addresses()) or "-") for v in views]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]])
             for row in rows]
    lines.append("")
    for v in views:
        lines.append(f"rooms of {v.info.id} ({len(v.rooms)}): {', '.join(v.rooms) or '-'}")
    return "\n".join(lines)


def render_json(views: Sequence[NodeView], prefix: str) -> str:
    """The same as one JSON object (for scripts and monitoring)."""
    return json.dumps({"prefix": prefix, "nodes": [{
        "id": v.info.id, "signaling_url": v.info.signaling_url,
        "media": v.info.media_addresses(),
        "draining": v.info.draining, "started_at": v.info.started_at,
        "rooms": v.load.rooms, "capacity_rooms": v.load.capacity_rooms,
        "members": v.load.members, "cpu_percent": v.load.cpu_percent,
        "room_ids": list(v.rooms),
    } for v in views]}, indent=2)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _refuse(message: str) -> int:
    print(f"walkie nodes: {message}", file=sys.stderr)
    return 2
