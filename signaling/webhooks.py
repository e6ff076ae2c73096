"""Webhooks: signed JSON POSTs to the operator's URLs when rooms, members and talk change.

Two halves, kept apart:

* :class:`RoomEvents` (sans-IO) is an observer of the hub (``signaling/metrics.py``'s
  ``Observer``) that turns what happens into events: ``room_started``, ``member_joined``,
  ``transmission_started``, ``transmission_ended`` (talker, duration), ``member_left``,
  ``room_finished``. It keeps only what it needs to name them (each member's room and name,
  each room's talker and since when); the clocks are passed in.
* :class:`WebhookSender` delivers them: to every URL, **in order per room** (one delivery
  at a time per room and URL; rooms go in parallel, at most :data:`CONCURRENCY` requests at
  once), **retried** with exponential backoff (0.5 s doubling, :data:`MAX_ATTEMPTS` tries) on
  a network error, a timeout, 429 or 5xx, and given up at once on another 4xx (the
  receiver refused it). Each request has :data:`TIMEOUT` seconds in all. The queue is
  **bounded** (:data:`MAX_QUEUED` events per URL): beyond it new events are dropped,
  counted and logged, so a dead receiver costs memory up to the bound and never blocks or
  slows signaling (``submit`` only appends to a deque). Its counters (delivered, failed
  attempts, retries, given up, dropped, queued) are kept per URL and shown per URL host
  (:func:`url_host`) in ``/metrics``; logs name a URL by its host too.

Signature (docs/DEPLOY.md, "Webhooks"): ``X-Walkie-Timestamp: <unix seconds>`` and
``X-Walkie-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``; the
receiver recomputes it over the raw body and refuses stale timestamps (a replay).

HTTP is the standard library's asyncio streams (HTTP/1.1, one request per connection,
``Connection: close``): a webhook is one small POST now and then, not worth a client library.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import floor as fl
from .rooms import Member

__all__ = ["CONCURRENCY", "MAX_ATTEMPTS", "MAX_QUEUED", "TIMEOUT", "DeliveryStats",
           "RoomEvents", "WebhookSender", "check_url", "sign", "url_host"]

log = logging.getLogger("walkie.webhooks")

#: Seconds one request may take in all (connect, send, the status line).
TIMEOUT = 5.0
#: Tries per event: the first and five retries, 0.5 s doubling (15.5 s of back-off in all).
MAX_ATTEMPTS = 6
FIRST_BACKOFF = 0.5
#: Events waiting per URL (all rooms together) before new ones are dropped.
MAX_QUEUED = 10_000
#: Requests in flight per URL at once (each room has at most one).
CONCURRENCY = 8
#: Seconds between two log lines about dropped events.
DROP_LOG_INTERVAL = 10.0
USER_AGENT = "walkie-webhooks/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Walkie-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_url(url: str) -> str:
    """An ``http://`` or ``https://`` URL with a host, as written; else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    return url


# -- what happened: the events ------------------------------------------------------------------


class RoomEvents:
    """The hub's observer that names webhook events; ``emit(room_id, event)`` gets each.

    ``clock`` is the hub's monotonic clock (durations), ``wall`` Unix time (``time``).
    """

    def __init__(self, emit: Callable[[str, dict[str, Any]], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._emit = emit
        self._clock = clock
        self._wall = wall
        self._members: dict[str, Member] = {}
        self._counts: dict[str, int] = {}
        self._talking: dict[str, tuple[Member, float]] = {}  # room -> (talker, since)
        self._seq: dict[str, int] = {}  # per room, so a receiver can check the order

    def _event(self, room: str, kind: str, **fields: Any) -> None:
        self._seq[room] = seq = self._seq.get(room, 0) + 1
        self._emit(room, {"event": kind, "room": room, "seq": seq,
                          "time": round(self._wall(), 3), **fields})

    # -- Observer ------------------------------------------------------------------------

    def joined(self, member: Member) -> None:
        room = member.room_id
        self._members[member.id] = member
        self._counts[room] = self._counts.get(room, 0) + 1
        if self._counts[room] == 1:
            self._event(room, "room_started")
        self._event(room, "member_joined", member=member.public())

    def left(self, member_id: str) -> None:
        member = self._members.pop(member_id, None)
        if member is None:
            return
        room = member.room_id
        self._end_talk(member, self._clock())
        self._event(room, "member_left", member=member.public())
        self._counts[room] -= 1
        if not self._counts[room]:
            del self._counts[room]
            self._event(room, "room_finished")
            self._seq.pop(room, None)  # a room of the same name later is another room

    def floor_effect(self, effect: fl.Effect, now: float) -> None:
        if isinstance(effect, (fl.Revoked, fl.Released)):
            member = self._members.get(effect.member)
            if member is not None:
                self._end_talk(member, now, getattr(effect, "reason", "released"))
        elif isinstance(effect, fl.Granted):
            member = self._members.get(effect.member)
            if member is None:
                return
            talking = self._talking.get(member.room_id)
            if talking is not None and talking[0].id == member.id:
                return  # a repeated request answered again
            if talking is not None:
                self._end_talk(talking[0], now)
            self._talking[member.room_id] = (member, now)
            self._event(member.room_id, "transmission_started", talker=member.public())

    def _end_talk(self, member: Member, now: float, reason: str = "left") -> None:
        talking = self._talking.get(member.room_id)
        if talking is None or talking[0].id != member.id:
            return
        del self._talking[member.room_id]
        self._event(member.room_id, "transmission_ended", talker=member.public(),
                    duration_s=round(max(0.0, now - talking[1]), 3), reason=reason)

    def floor_requested(self, member_id: str, now: float) -> None: pass
    def error(self, code: str) -> None: pass
    def media_event(self, kind: str) -> None: pass
    def join_time(self, seconds: float) -> None: pass


# -- delivering them ------------------------------------------------------------------------------


@dataclass(slots=True)
class DeliveryStats:
    """Delivery counters, of one URL or summed over all (``/metrics`` and tests read them)."""

    delivered: int = 0   # events accepted (2xx)
    failed: int = 0      # attempts that failed: an error, a timeout, or not 2xx
    retried: int = 0     # failed attempts that were tried again
    given_up: int = 0    # events abandoned after MAX_ATTEMPTS, or refused with a 4xx
    dropped: int = 0     # events never queued: the queue was full
    queued: int = 0      # events waiting now (a gauge, not a counter)

    def add(self, other: DeliveryStats) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.retried += other.retried
        self.given_up += other.given_up
        self.dropped += other.dropped
        self.queued += other.queued


@dataclass(slots=True)
class _Target:
    """One URL: each room's waiting events, which rooms have a delivery task, its counters."""

    url: str
    queues: dict[str, deque[bytes]] = field(default_factory=dict)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))
    stats: DeliveryStats = field(default_factory=DeliveryStats)


def url_host(url: str) -> str:
    """The label a URL's figures go under in ``/metrics``: its host, and its port when the
    URL names one (``hooks.example.org``, ``127.0.0.1:8080``). Never the path, query or
    user info: those may carry the receiver's secret (many services put a key in the path)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{parts.port}" if parts.port else shown


class WebhookSender:
    """Signed, ordered, retried, bounded delivery of events to ``urls`` (see the module)."""

    def __init__(self, urls: tuple[str, ...], secret: str, *, timeout: float = TIMEOUT,
                 max_attempts: int = MAX_ATTEMPTS, first_backoff: float = FIRST_BACKOFF,
                 max_queued: int = MAX_QUEUED) -> None:
        if not secret:
            raise ValueError("webhooks need a secret to sign with")
        self._targets = [_Target(check_url(url)) for url in urls]
        self._secret = secret
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._first_backoff = first_backoff
        self._max_queued = max_queued
        self._tls = ssl.create_default_context()
        self._drop_logged = -DROP_LOG_INTERVAL

    @property
    def stats(self) -> DeliveryStats:
        """The counters summed over every URL."""
        total = DeliveryStats()
        for target in self._targets:
            total.add(target.stats)
        return total

    def by_host(self) -> dict[str, DeliveryStats]:
        """The counters per URL host (:func:`url_host`; URLs on one host are summed)."""
        hosts: dict[str, DeliveryStats] = {}
        for target in self._targets:
            hosts.setdefault(url_host(target.url), DeliveryStats()).add(target.stats)
        return hosts

    def __repr__(self) -> str:  # never the secret
        return f"WebhookSender({len(self._targets)} URLs)"

    def submit(self, room: str, event: dict[str, Any]) -> None:
        """Queue ``event`` for every URL; never blocks, never raises for a full queue."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        for target in self._targets:
            if target.stats.queued >= self._max_queued:
                self._dropped(target, event)
                continue
            target.queues.setdefault(room, deque()).append(body)
            target.stats.queued += 1
            if room not in target.running:
                task = asyncio.get_running_loop().create_task(self._drain(target, room))
                target.running[room] = task

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every queue to empty (at shutdown)."""
        tasks = [t for target in self._targets for t in target.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        """Stop delivering: what still waits is lost."""
        for target in self._targets:
            for task in list(target.running.values()):
                task.cancel()
            target.queues.clear()
            target.stats.queued = 0

    def _dropped(self, target: _Target, event: dict[str, Any]) -> None:
        target.stats.dropped += 1
        now = time.monotonic()
        if now - self._drop_logged >= DROP_LOG_INTERVAL:
            self._drop_logged = now
            log.warning("webhook queue for %s is full (%d events): dropping %s events "
                        "(%d dropped so far)", _shown(target.url), self._max_queued,
                        event.get("event"), target.stats.dropped)

    async def _drain(self, target: _Target, room: str) -> None:
        """Deliver ``room``'s events to ``target`` one after the other, then end."""
        queue = target.queues[room]
        try:
            while queue:
                await self._deliver(target, queue[0])
                queue.popleft()
                target.stats.queued -= 1
        finally:
            target.running.pop(room, None)
            if not queue:
                target.queues.pop(room, None)

    async def _deliver(self, target: _Target, body: bytes) -> None:
        """One event, tried until accepted, refused, or MAX_ATTEMPTS are spent."""
        delay = self._first_backoff
        stats = target.stats
        for attempt in range(1, self._max_attempts + 1):
            async with target.slots:
                outcome = await self._post(target.url, body)
            if outcome is None:
                stats.delivered += 1
                return
            stats.failed += 1
            retry, why = outcome
            if not retry or attempt == self._max_attempts:
                stats.given_up += 1
                log.warning("webhook to %s given up after %d attempt(s): %s",
                            _shown(target.url), attempt, why)
                return
            stats.retried += 1
            log.debug("webhook to %s failed (%s); retrying in %.1f s", _shown(target.url),
                      why, delay)
            await asyncio.sleep(delay)
            delay *= 2

    async def _post(self, url: str, body: bytes) -> tuple[bool, str] | None:
        """POST ``body``; None when accepted (2xx), else (worth retrying, why)."""
        try:
            status = await asyncio.wait_for(self._request(url, body), self._timeout)
        except asyncio.TimeoutError:
            return True, f"no answer within {self._timeout:g} s"
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            return True, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        return status == 429 or status >= 500, f"HTTP {status}"

    async def _request(self, url: str, body: bytes) -> int:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=self._tls if tls else None,
            server_hostname=parts.hostname if tls else None)
        try:
            timestamp = str(int(time.time()))
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rpartition("@")[2]
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                    f"X-Walkie-Timestamp: {timestamp}\r\n"
                    f"X-Walkie-Signature: {sign(self._secret, timestamp, body)}\r\n\r\n")
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
            fields = status_line.split(None, 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
                raise ValueError("not an HTTP response")
            return int(fields[1])
        finally:
            writer.close()


def _shown(url: str) -> str:
    """A URL for the log: its scheme and host only (:func:`url_host`), as in ``/metrics``:
    the path, the query and user info may carry the receiver's secret."""
    return f"{urlsplit(url).scheme}://{url_host(url)}"
