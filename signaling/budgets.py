"""What one client address may cost the signaling server: connections, messages, bytes,
joins, rooms and say-again replays, counted per address (an IPv6 /64 is one address).

Sans-IO like :mod:`signaling.ratelimit`: time is passed in, nothing here sleeps, reads a
clock or touches a socket, so every rule is tested on a fake clock
(``tests/signaling/test_budgets.py``). The server (``server.py``) asks before it does the
work and carries out the answer: a :class:`Refusal` names the protocol error code, the
message for the client and, for the non-fatal ``try_later``, when a retry may succeed.

Why per address and not only per connection: one address may open many WebSockets
(``--max-connections-per-ip``), so a per-connection limit multiplies. Why a /64 for IPv6:
one subscriber line usually gets a whole /64 (often a /56 or /48), so counting exact IPv6
addresses would give one attacker 2^64 "addresses".

An address's counters live while it has a connection, a room it created, or a bucket that
has not refilled yet; :meth:`AddressBudgets.prune` forgets the rest, so the table stays the
size of the recent traffic, whatever the attacker's number of addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from .ratelimit import TokenBucket

__all__ = ["AddressBudgets", "BudgetSettings", "MAX_BAD_OFFERS", "MAX_OFFER_BYTES",
           "PRUNE_INTERVAL", "Refusal", "address_key", "offer_too_large"]

#: Largest SDP offer (characters of the ``sdp`` field) the server parses. A browser's audio
#: offer is 1.5-2.5 kB (Chromium, Firefox, Safari fixtures in tests/sfu/fixtures), 6 kB with
#: video; 32 KiB leaves room for ~250 candidates while bounding each parse.
MAX_OFFER_BYTES = 32_768
#: Unusable offers one connection may send; the last one is answered with a fatal
#: ``bad_offer``. Refusals caused by the media plane itself (a worker restarting) do not count.
MAX_BAD_OFFERS = 5
#: Seconds between two prunes of the table (each walks every address).
PRUNE_INTERVAL = 10.0


def address_key(ip: str) -> str:
    """The address a budget counts: an IPv4 address itself, an IPv6 address's /64 (an
    IPv4-mapped IPv6 address as its IPv4), anything unparsable as given."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def offer_too_large(sdp: str) -> str | None:
    """Why ``sdp`` is refused before parsing, or None."""
    if len(sdp) > MAX_OFFER_BYTES:
        return f"offer larger than {MAX_OFFER_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Work refused: ``code`` for the client (fatal or ``try_later``), and for ``try_later``
    the seconds after which a retry may succeed."""

    code: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Per-address (and server-wide) budgets; 0 turns a limit off. Defaults: docs/PROTOCOL.md."""

    max_connections: int = 4096            # open WebSockets on the whole server
    message_rate: float = 200.0            # messages/s from one address, all its sockets
    message_burst: float = 400.0
    byte_rate: float = 256 * 1024          # bytes/s of frames from one address
    byte_burst: float = 1024 * 1024
    join_rate: float = 2.0                 # joins/s from one address, sustained
    join_burst: float = 20.0
    rooms_per_address: int = 16            # rooms an address created that still exist
    # Say-again (signaling/replay.py): replays an address may start, all its sockets. Each
    # one makes a media worker stream to that member for up to the replay's length.
    replay_rate: float = 0.5               # replays/s from one address, sustained
    replay_burst: float = 5.0
    join_timeout: float = 10.0             # seconds a socket may stay open without joining


@dataclass(slots=True)
class _Address:
    """The counters of one address."""

    connections: int = 0
    messages: TokenBucket | None = None
    data: TokenBucket | None = None
    joins: TokenBucket | None = None
    replays: TokenBucket | None = None
    rooms: list[object] = field(default_factory=list)  # tokens of the rooms it created


class AddressBudgets:
    """Every address's counters, and the server-wide connection count."""

    def __init__(self, settings: BudgetSettings, connections_per_address: int) -> None:
        self.settings = settings
        self.connections_per_address = connections_per_address
        self.connections = 0
        self._table: dict[str, _Address] = {}

    def __len__(self) -> int:
        return len(self._table)

    def open_connections(self, address: str) -> int:
        entry = self._table.get(address_key(address))
        return entry.connections if entry is not None else 0

    # -- connections ----------------------------------------------------------------------

    def connect(self, address: str) -> Refusal | None:
        """A WebSocket from ``address`` opened: admit it (and count it) or refuse it."""
        s = self.settings
        if s.max_connections and self.connections >= s.max_connections:
            return Refusal("server_full",
                           f"the server has its maximum of {s.max_connections} connections; "
                           "try again later")
        entry = self._entry(address)
        limit = self.connections_per_address
        if limit and entry.connections >= limit:
            return Refusal("too_many_connections",
                           f"more than {limit} connections from your address; close some "
                           "and retry")
        entry.connections += 1
        self.connections += 1
        return None

    def disconnect(self, address: str) -> None:
        """A connection admitted by :meth:`connect` closed."""
        entry = self._table.get(address_key(address))
        if entry is not None and entry.connections > 0:
            entry.connections -= 1
            self.connections -= 1

    # -- traffic --------------------------------------------------------------------------

    def message(self, address: str, size: int, now: float) -> bool:
        """One frame of ``size`` bytes from ``address``: False means drop it (rate_limited)."""
        s = self.settings
        entry = self._entry(address)
        if s.message_rate:
            if entry.messages is None:
                entry.messages = TokenBucket(s.message_rate, s.message_burst, now)
            if not entry.messages.allow(now):
                return False
        if s.byte_rate:
            if entry.data is None:
                entry.data = TokenBucket(s.byte_rate, s.byte_burst, now)
            if not entry.data.allow(now, min(float(size), s.byte_burst)):
                return False
        return True

    def join(self, address: str, creates: bool, now: float,
             alive: Callable[[object], bool]) -> Refusal | None:
        """A ``join`` from ``address`` (``creates``: its room does not exist yet). ``alive``
        tells whether a room token given to :meth:`created` still stands for a live room."""
        s = self.settings
        entry = self._entry(address)
        if creates and s.rooms_per_address:
            entry.rooms = [room for room in entry.rooms if alive(room)]
            if len(entry.rooms) >= s.rooms_per_address:
                return Refusal("too_many_rooms",
                               f"your address already created {s.rooms_per_address} rooms "
                               "that are still open; join one of them or close some")
        if s.join_rate:
            if entry.joins is None:
                entry.joins = TokenBucket(s.join_rate, s.join_burst, now)
            if not entry.joins.allow(now):
                return Refusal("try_later",
                               f"more than {s.join_rate:g} joins per second from your address",
                               entry.joins.wait(now))
        return None

    def replay(self, address: str, now: float) -> Refusal | None:
        """A ``replay`` request from ``address``: refused (``rate_limited``, non-fatal) over
        the address's replay budget, before the media plane is asked anything."""
        s = self.settings
        if not s.replay_rate:
            return None
        entry = self._entry(address)
        if entry.replays is None:
            entry.replays = TokenBucket(s.replay_rate, s.replay_burst, now)
        if entry.replays.allow(now):
            return None
        return Refusal("rate_limited",
                       f"more than {s.replay_rate:g} replays per second from your address; "
                       "replay not started", entry.replays.wait(now))

    def created(self, address: str, room: object) -> None:
        """``address`` created ``room`` (a token :meth:`join`'s ``alive`` recognises)."""
        if self.settings.rooms_per_address:
            self._entry(address).rooms.append(room)

    # -- housekeeping ---------------------------------------------------------------------

    def prune(self, now: float, alive: Callable[[object], bool]) -> None:
        """Forget addresses with nothing left to remember (the server calls it every
        PRUNE_INTERVAL s: it walks the whole table)."""
        for key in [k for k, e in self._table.items() if self._at_rest(e, now, alive)]:
            del self._table[key]

    @staticmethod
    def _at_rest(entry: _Address, now: float, alive: Callable[[object], bool]) -> bool:
        if entry.connections:
            return False
        entry.rooms = [room for room in entry.rooms if alive(room)]
        buckets = (entry.messages, entry.data, entry.joins, entry.replays)
        return not entry.rooms and all(b is None or b.is_full(now) for b in buckets)

    def _entry(self, address: str) -> _Address:
        key = address_key(address)
        entry = self._table.get(key)
        if entry is None:
            entry = self._table[key] = _Address()
        return entry
