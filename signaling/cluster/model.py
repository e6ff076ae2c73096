"""What the cluster keeps in Redis, as typed values, and the strict reading of it back.

Redis is shared by every node, so what comes out of it is treated like client input: a node
record or a room record is decoded by :func:`decode_node` / :func:`decode_room`, which check
every field's type, range and size and raise :class:`ClusterDataError` (and nothing else,
whatever the bytes: tests/cluster/test_model.py feeds them junk) for anything else. A record
of an unknown version, with a missing or an unexpected field, is junk too: a change of the
layout bumps ``v`` (docs/CLUSTER.md).

Pure: no I/O, no clock (times are passed in).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ..messages import ROOM_RE

__all__ = ["MAX_MEDIA_ADDRESSES", "MAX_NODE_RECORD_BYTES", "NODE_ID_RE", "NODE_RECORD_VERSION",
           "PASSWORD_KEY_BYTES", "ClusterDataError", "ClusterError", "ClusterUnavailable",
           "NoNodeAvailable", "NodeInfo", "NodeLoad", "RoomRecord",
           "check_node_id", "check_room_id", "decode_node", "decode_room", "encode_node",
           "new_node_id"]

#: A node id: lower-case letters, digits, '-' and '_' (it is part of Redis key names).
NODE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NODE_RECORD_VERSION = 1
MAX_NODE_RECORD_BYTES = 64 * 1024
#: One per media worker (walkie serve allows 256 workers).
MAX_MEDIA_ADDRESSES = 256
MAX_URL_CHARS = 512
#: The scrypt key signaling/rooms.py derives from a room password.
PASSWORD_KEY_BYTES = 32
#: Counts (rooms, members, capacity, epochs) above this are junk, not load.
MAX_COUNT = 2**53
#: CPU percent of one core, summed over a node's processes: 100 000 = a thousand busy cores.
MAX_CPU_PERCENT = 100_000.0
_URL_RE = re.compile(r"https?://[\x21-\x7e]+")  # printable ASCII: it goes to terminals
_EPOCH_RE = re.compile(rb"[1-9][0-9]{0,15}")
_HEX_KEY_RE = re.compile(rb"[0-9a-f]{%d}" % (2 * PASSWORD_KEY_BYTES))
_TIME_RE = re.compile(rb"[0-9]{1,12}(\.[0-9]{1,9})?")


class ClusterError(Exception):
    """Anything the cluster's shared state cannot do right now; the base of the three below."""


class ClusterDataError(ClusterError, ValueError):
    """A record read from Redis that is not what a walkie node writes."""


class ClusterUnavailable(ClusterError):
    """Redis cannot be reached or answered with an error: the caller answers ``try_later``."""


class NoNodeAvailable(ClusterUnavailable):
    """No live node can take a new room (all draining, full, or gone)."""


def new_node_id() -> str:
    """A fresh id for a starting node (48 random bits: a restarted node is a new node)."""
    return secrets.token_hex(6)


def check_node_id(node_id: str) -> str:
    """``node_id`` if it is a valid node id, else ``ValueError`` saying what one looks like."""
    if not isinstance(node_id, str) or not NODE_ID_RE.fullmatch(node_id):
        raise ValueError(f"{node_id!r:.80} is not a node id: 1-64 characters of a-z, 0-9, "
                         "'-' and '_', starting with a letter or digit")
    return node_id


def check_room_id(room_id: str) -> str:
    """``room_id`` if it is a room id as the protocol allows (signaling/messages.py)."""
    if not isinstance(room_id, str) or not ROOM_RE.fullmatch(room_id):
        raise ValueError(f"{room_id!r:.80} is not a room id")
    return room_id


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who a node is: what operators and other nodes need to reach it."""

    id: str
    signaling_url: str = ""                          # "" = not advertised
    media: tuple[tuple[str, int], ...] = ()          # (announced IP, UDP port) per worker
    draining: bool = False
    started_at: float = 0.0                          # Unix time

    def __post_init__(self) -> None:
        check_node_id(self.id)
        if self.signaling_url and not (len(self.signaling_url) <= MAX_URL_CHARS
                                       and _URL_RE.fullmatch(self.signaling_url)):
            raise ValueError(f"{self.signaling_url!r:.80} is not an http(s) URL")
        if len(self.media) > MAX_MEDIA_ADDRESSES:
            raise ValueError(f"more than {MAX_MEDIA_ADDRESSES} media addresses")
        for host, port in self.media:
            ipaddress.ip_address(host)
            if not (isinstance(port, int) and 0 < port < 65536):
                raise ValueError(f"media port {port!r} is out of range")
        if not (math.isfinite(self.started_at) and self.started_at >= 0):
            raise ValueError("started_at must be a finite time >= 0")

    def media_addresses(self) -> list[str]:
        """The media addresses as ``ip:port`` (``[ip]:port`` for IPv6)."""
        return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.media]


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """How busy a node is, as it reports itself with each heartbeat."""

    rooms: int = 0
    members: int = 0
    cpu_percent: float = 0.0                         # percent of one core, all processes
    capacity_rooms: int = 0                          # rooms it accepts; 0 = none

    def __post_init__(self) -> None:
        for name in ("rooms", "members", "capacity_rooms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    0 <= value <= MAX_COUNT):
                raise ValueError(f"{name} must be a whole number 0..{MAX_COUNT}")
        if not (math.isfinite(self.cpu_percent) and 0 <= self.cpu_percent <= MAX_CPU_PERCENT):
            raise ValueError(f"cpu_percent must be 0..{MAX_CPU_PERCENT:g}")

    @property
    def has_room(self) -> bool:
        """The node accepts one more room."""
        return self.rooms < self.capacity_rooms


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """Which node hosts a room (``owner``) and since which claim (``epoch``).

    ``epoch`` grows by one with every change of owner, so a move decided on an old reading
    is refused (compare-and-set). ``password_key`` is the scrypt key of the room password
    (never the password), so that a new owner can check later joins.
    """

    room_id: str
    owner: str
    epoch: int
    created: float
    password_key: bytes | None = None


# -- encoding and strict decoding ---------------------------------------------------------------

def encode_node(info: NodeInfo, load: NodeLoad) -> str:
    """The node key's value: one JSON object (written with ``SET ... PX``)."""
    return json.dumps({
        "v": NODE_RECORD_VERSION,
        "id": info.id, "signaling_url": info.signaling_url,
        "media": [[host, port] for host, port in info.media],
        "draining": info.draining, "started_at": info.started_at,
        "rooms": load.rooms, "members": load.members, "cpu_percent": load.cpu_percent,
        "capacity_rooms": load.capacity_rooms,
    }, separators=(",", ":"))


_NODE_FIELDS = frozenset({"v", "id", "signaling_url", "media", "draining", "started_at",
                          "rooms", "members", "cpu_percent", "capacity_rooms"})


def decode_node(raw: Any, node_id: str | None = None) -> tuple[NodeInfo, NodeLoad]:
    """A node key's value, checked; ``node_id``: the id its key name says it must carry."""
    if not isinstance(raw, (bytes, str)):
        raise ClusterDataError(f"node record is a {type(raw).__name__}")
    if len(raw) > MAX_NODE_RECORD_BYTES:
        raise ClusterDataError(f"node record of {len(raw)} bytes")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, object_pairs_hook=_no_repeats)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ClusterDataError(f"node record is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClusterDataError("node record is not a JSON object")
    if data.keys() != _NODE_FIELDS:
        raise ClusterDataError(f"node record fields {sorted(data)!r:.200}")
    try:
        if _exact(data["v"], int) != NODE_RECORD_VERSION:
            raise ValueError(f"unknown version {data['v']}")
        media = data["media"]
        if not isinstance(media, list):
            raise TypeError("media is not a list")
        info = NodeInfo(id=_exact(data["id"], str),
                        signaling_url=_exact(data["signaling_url"], str),
                        media=tuple(_address(pair) for pair in media),
                        draining=_exact(data["draining"], bool),
                        started_at=_number(data["started_at"]))
        load = NodeLoad(rooms=_exact(data["rooms"], int), members=_exact(data["members"], int),
                        cpu_percent=_number(data["cpu_percent"]),
                        capacity_rooms=_exact(data["capacity_rooms"], int))
    except (ValueError, TypeError, OverflowError) as exc:
        raise ClusterDataError(f"node record: {exc}") from None
    if node_id is not None and info.id != node_id:
        raise ClusterDataError(f"node record of {info.id!r} under the key of {node_id!r}")
    return info, load


_ROOM_FIELDS = frozenset({b"owner", b"epoch", b"created"})


def decode_room(room_id: str, fields: Any) -> RoomRecord:
    """A room hash (``HGETALL``: field -> value, as bytes), checked."""
    if not isinstance(fields, dict):
        raise ClusterDataError(f"room record is a {type(fields).__name__}")
    if not all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in fields.items()):
        raise ClusterDataError("room record fields are not bytes")
    if not _ROOM_FIELDS <= fields.keys() <= _ROOM_FIELDS | {b"password_key"}:
        raise ClusterDataError(f"room record fields {sorted(fields)!r:.200}")
    owner, epoch, created = fields[b"owner"], fields[b"epoch"], fields[b"created"]
    if not NODE_ID_RE.fullmatch(owner.decode("ascii", "replace")):
        raise ClusterDataError(f"room owner {owner!r:.80}")
    if not _EPOCH_RE.fullmatch(epoch):
        raise ClusterDataError(f"room epoch {epoch!r:.40}")
    if not _TIME_RE.fullmatch(created):
        raise ClusterDataError(f"room creation time {created!r:.40}")
    key = fields.get(b"password_key")
    if key is not None and not _HEX_KEY_RE.fullmatch(key):
        raise ClusterDataError("room password key is not 64 lower-case hex digits")
    return RoomRecord(room_id=check_room_id(room_id), owner=owner.decode("ascii"),
                      epoch=int(epoch), created=float(created),
                      password_key=bytes.fromhex(key.decode("ascii")) if key else None)


def _exact(value: Any, kind: type) -> Any:
    """``value`` if it is exactly of ``kind`` (a bool is no int here), else TypeError."""
    if type(value) is not kind:
        raise TypeError(f"{value!r:.40} is not a {kind.__name__}")
    return value


def _address(pair: Any) -> tuple[str, int]:
    """One media address as JSON has it: ``[ip, port]``."""
    if not (isinstance(pair, list) and len(pair) == 2):
        raise TypeError("a media address is not [ip, port]")
    return _exact(pair[0], str), _exact(pair[1], int)


def _number(value: Any) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"{value!r:.40} is not a number")
    return float(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("a field appears twice")
    return data
