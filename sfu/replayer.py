"""Say-again playback: a kept transmission played to one listener, on its own downlink.

The path (docs/PROTOCOL.md, "Say again"): the media core sends the kept Opus packets to the
one member who asked, paced as they arrived, through that member's existing downlink: its
SSRC, its SRTP context, its header template. No second stream, no renegotiation, and nobody
else gets a packet. The listener's numbering stays continuous for its jitter buffer and its
SRTP rollover counter:

* sequence numbers: a replay packet takes the room's next number (``DownlinkStream.next_seq``)
  and the listener's ``seq_skip`` steps one back, exactly as it steps forward for each packet
  the listener talked itself; the room's numbering is not consumed, so the other listeners
  see no gap, and this listener's next live packet follows its last replayed one;
* timestamps: the replay starts where a new burst would (``DownlinkStream.replay_anchor``:
  the stream's highest timestamp plus the time since) and keeps the talker's own spacing;
  each packet sent moves the stream's highest timestamp (``replayed``), so the next live
  burst, for every listener, starts after it: timestamps never go back.

A replay packet carries no CSRC and no audio level (``ListenerHeader.replay``): the page
shows the talker from CSRCs and levels, and a replay must not look like someone talking
live; the page knows a replay plays from signaling (``replay_started``).

Live audio always wins: when a speaker is set, or any talker packet is forwarded in the room
(its first after a grant, or the previous speaker's tail), every replay in the room stops
(``replay_ended`` ``live``). Stopped, not paused: what was said live may change what the
replay meant, and a message resumed mid-sentence after someone else talked is harder to
follow than one played again from its start with a click.

Sans-IO: the core calls in with the time; packets go to its transmit queue.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .capture import CapturedPacket
from .replay import ReplayEvent, ReplayItem, ReplayLimits, ReplayStore

if TYPE_CHECKING:
    from .peer import Peer
    from .room import Room
    from .transmit import TransmitQueue

__all__ = ["ReplayDesk", "ReplayPlayer"]

_MASK = 0xFFFFFFFF


def _signed32(delta: int) -> int:
    delta &= _MASK
    return delta - 0x1_0000_0000 if delta & 0x8000_0000 else delta


class ReplayPlayer:
    """One transmission played to one listener, each packet at its original offset.

    Packet *i* is due ``arrival[i] - arrival[0]`` after the start and stamped with the
    talker's own timestamp spacing from ``anchor``; the first carries the marker bit.
    """

    __slots__ = ("room", "listener", "item", "due", "_packets", "_next", "_start", "_origin",
                 "_base_ts", "_anchor")

    def __init__(self, room: Room, listener: Peer, item: ReplayItem,
                 packets: list[CapturedPacket], now: float, anchor: int) -> None:
        if not packets:
            raise ValueError("nothing to replay")
        self.room = room
        self.listener = listener
        self.item = item
        self._packets = packets
        self._next = 0
        self._start = now
        self._origin = packets[0].arrival
        self._base_ts = packets[0].timestamp
        self._anchor = anchor
        #: when the next packet is due (``math.inf`` once every packet went)
        self.due = now

    @property
    def done(self) -> bool:
        return self._next >= len(self._packets)

    def take(self, now: float) -> list[tuple[int, int, bytes]]:
        """The packets due at ``now``: ``(marker, timestamp, payload)`` each, in order."""
        packets = self._packets
        out: list[tuple[int, int, bytes]] = []
        while self._next < len(packets):
            packet = packets[self._next]
            if self._start + (packet.arrival - self._origin) > now:
                break
            timestamp = (self._anchor + _signed32(packet.timestamp - self._base_ts)) & _MASK
            out.append((0x80 if self._next == 0 else 0, timestamp, packet.payload))
            self._next += 1
        if self._next < len(packets):
            self.due = self._start + (packets[self._next].arrival - self._origin)
        else:
            self.due = math.inf
        return out


class ReplayDesk:
    """Every room's kept transmissions and every replay of one media core.

    Rooms' stores live here by room id (the core calls :meth:`forget_room` when a room goes);
    the players of a room live in ``Room.replays`` (listener id -> player) so that the hot
    path's "does anything replay here?" is one attribute test. Events go to the core's queue.
    """

    def __init__(self, limits: ReplayLimits, rng: random.Random, events: deque[Any]) -> None:
        self.limits = limits
        self._rng = rng
        self._events = events
        self.stores: dict[str, ReplayStore] = {}
        self._players: list[tuple[float, int, ReplayPlayer]] = []
        self._expiry: list[tuple[float, int, str]] = []
        self._serial = 0
        #: replays started, and the packets they sent
        self.started = 0
        self.packets_sent = 0

    # ------------------------------------------------------------------ keeping

    def keep(self, room_id: str, transmission: Any, now: float) -> None:
        """A transmission of ``room_id`` finished (sfu/capture.py): keep it, tell the room."""
        store = self.stores.get(room_id)
        if store is None:
            store = self.stores[room_id] = ReplayStore(self.limits)
        transmission_id = f"{self._rng.getrandbits(48):012x}"
        while store.get(transmission_id) is not None:  # astronomically rare; stay correct
            transmission_id = f"{self._rng.getrandbits(48):012x}"
        if store.keep(transmission_id, transmission, now):
            self._announce(room_id, store)
            self._file_expiry(room_id, store)

    def keeping(self, events: deque[Any], rooms: Mapping[str, object]) -> _Keeping:
        """What the core's transmissions (sfu/transmissions.py) hand finished turns to: the
        event queue, each ``transmission`` event kept here too while its room is here."""
        return _Keeping(self, events, rooms)

    def forget_room(self, room_id: str) -> None:
        """The room left this worker: its audio goes with it."""
        self.stores.pop(room_id, None)

    def items(self, room_id: str) -> tuple[ReplayItem, ...]:
        store = self.stores.get(room_id)
        return store.items() if store is not None else ()

    # ------------------------------------------------------------------ playing

    def start(self, room: Room, listener: Peer, transmission_id: str, now: float,
              transmits: TransmitQueue) -> None:
        """Play a kept transmission to ``listener`` (replacing its own replay, if any)."""
        previous = room.replays.pop(listener.peer_id, None)
        if previous is not None:
            self._ended(previous, "stopped")
        store = self.stores.get(room.room_id)
        transmission = store.get(transmission_id) if store is not None else None
        item = store.item(transmission_id) if store is not None else None
        if transmission is None or item is None or listener.route() is None:
            self._event("replay_ended", room.room_id, listener.peer_id, transmission_id, "gone")
            return
        if room.speaker is not None:  # live audio wins, even before its first packet
            self._event("replay_ended", room.room_id, listener.peer_id, transmission_id, "live")
            return
        player = ReplayPlayer(room, listener, item, transmission.packets, now,
                              room.stream.replay_anchor(now))
        room.replays[listener.peer_id] = player
        self.started += 1
        self._events.append(ReplayEvent("replay_started", room.room_id, listener.peer_id,
                                        transmission_id, items=(item,)))
        self._play(player, now, transmits)

    def stop(self, room: Room, peer_id: str) -> None:
        """The listener asked to stop (nothing happens if it hears no replay)."""
        player = room.replays.pop(peer_id, None)
        if player is not None:
            self._ended(player, "stopped")

    def live(self, room: Room) -> None:
        """Someone talks in ``room``: every replay there ends."""
        players = list(room.replays.values())
        room.replays.clear()
        for player in players:
            self._ended(player, "live")

    def forget_peer(self, room: Room, peer_id: str) -> None:
        """The listener is gone: its replay ends with no event (nobody to tell)."""
        room.replays.pop(peer_id, None)

    # ------------------------------------------------------------------ time

    def poll_timeout(self) -> float | None:
        """The earliest replay packet or expiry due, or None."""
        players = self._players
        while players:
            due, _, player = players[0]
            if player.due == due and player.room.replays.get(player.listener.peer_id) is player:
                break
            heapq.heappop(players)  # stale: sent, stopped or rescheduled
        expiry = self._expiry
        first = players[0][0] if players else None
        if expiry and (first is None or expiry[0][0] < first):
            return expiry[0][0]
        return first

    def handle_timeout(self, now: float, transmits: TransmitQueue) -> None:
        """Send every replay packet due, and drop what is too old to keep."""
        players = self._players
        while players and players[0][0] <= now:
            due, _, player = heapq.heappop(players)
            if player.due == due and player.room.replays.get(player.listener.peer_id) is player:
                self._play(player, now, transmits)
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, _, room_id = heapq.heappop(expiry)
            store = self.stores.get(room_id)
            if store is not None and store.expire(now):
                self._announce(room_id, store)
                self._file_expiry(room_id, store)  # the next one, later than now

    def stats(self) -> dict[str, int]:
        """Counters for the worker's report (summed over workers by the pool)."""
        return {
            "replay_rooms": len(self.stores),
            "replay_kept": sum(len(store) for store in self.stores.values()),
            "replay_bytes_kept": sum(store.size for store in self.stores.values()),
            "replays_started": self.started,
            "replay_packets_sent": self.packets_sent,
        }

    # ------------------------------------------------------------------ helpers

    def _play(self, player: ReplayPlayer, now: float, transmits: TransmitQueue) -> None:
        """Send what is due, then file the next packet or end the replay (``done``)."""
        listener = player.listener
        stream = player.room.stream
        for marker, timestamp, payload in player.take(now):
            route = listener.route()
            if route is not None:  # else lost on the way, as a live packet would be
                header = listener.header
                only = ((listener, header.replay, None, 0, route[4], route[5], route[6]),)
                if transmits.fan_out(only, None, marker, stream.next_seq,  # type: ignore[arg-type]
                                     timestamp, -1, payload):
                    listener.seq_skip -= 1  # one packet more than the room's stream: no gap
                    listener.replayed_packets += 1
                    listener.replayed_octets += len(payload)
                    self.packets_sent += 1
            stream.replayed(timestamp, now)
        if player.done:
            if player.room.replays.get(listener.peer_id) is player:
                del player.room.replays[listener.peer_id]
            self._ended(player, "done")
        else:
            self._serial += 1
            heapq.heappush(self._players, (player.due, self._serial, player))

    def _ended(self, player: ReplayPlayer, reason: str) -> None:
        player.due = math.inf
        self._event("replay_ended", player.room.room_id, player.listener.peer_id,
                    player.item.id, reason)

    def _event(self, kind: str, room_id: str, peer_id: str, transmission_id: str,
               reason: str) -> None:
        self._events.append(ReplayEvent(kind, room_id, peer_id, transmission_id, reason))

    def _announce(self, room_id: str, store: ReplayStore) -> None:
        self._events.append(ReplayEvent("replay_list", room_id, items=store.items()))

    def _file_expiry(self, room_id: str, store: ReplayStore) -> None:
        due = store.next_expiry()
        if due is not None:
            self._serial += 1
            heapq.heappush(self._expiry, (due, self._serial, room_id))


class _Keeping:
    """The core's event queue as sfu/transmissions.py sees it: a finished transmission is
    kept for say-again as it goes out (recording, if on, takes the event as before)."""

    __slots__ = ("_desk", "_events", "_rooms")

    def __init__(self, desk: ReplayDesk, events: deque[Any], rooms: Mapping[str, object]) -> None:
        self._desk = desk
        self._events = events
        self._rooms = rooms

    def append(self, event: Any) -> None:
        transmission = getattr(event, "transmission", None)
        if transmission is not None and transmission.packets and event.room_id in self._rooms:
            self._desk.keep(event.room_id, transmission, transmission.packets[-1].arrival)
        self._events.append(event)
