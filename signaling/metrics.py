"""Prometheus metrics: what signaling counts as it happens, and what it reads at scrape time.

Two kinds of figures, kept apart on purpose:

* **Events** that only signaling sees (joins, the floor's grants, denials, queueing and
  revocations, errors sent to clients, media events, join and floor-access times) are
  counted when they happen, through the :class:`Observer` methods the hub calls. The hub
  stays free of any metrics library: it talks to an ``Observer``, and :data:`NO_OBSERVER`
  does nothing.
* **State and the media plane's counters** (rooms, members, peers, packets, bytes, drops by
  reason, worker restarts and CPU) and the webhooks' delivery counters are read when
  Prometheus scrapes, from the same snapshots ``/healthz`` shows: the media workers'
  periodic reports (sfu/pool), the webhook sender's counters (``webhooks.py``; label
  ``host``: a URL's host and port only, since its path or query may hold a secret).
  Nothing is added to the media plane's hot path beyond the counters it keeps anyway, and
  a scrape never waits for a worker. Every worker is its own series (label ``worker``): a restarted worker's
  counters start from zero again, which Prometheus treats as a counter reset of that series.

A registry per server (not the library's global one), so that several servers in one process
(tests, an embedding application) never mix their figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import floor as fl
from .rooms import Member

if TYPE_CHECKING:
    from .webhooks import DeliveryStats

__all__ = ["CONTENT_TYPE", "NO_OBSERVER", "Metrics", "Observer", "Observers"]

#: The media plane's drop counters in its stats, exported as walkie_media_dropped_total{reason}.
DROP_REASONS: Mapping[str, str] = {
    "srtp_auth_failures": "srtp_auth",
    "rtp_not_speaker": "not_speaker",
    "rtp_not_sending": "listen_only",
    "uplink_dropped_packet_rate": "over_packet_cap",
    "uplink_dropped_byte_rate": "over_byte_cap",
    "dropped_unknown_source": "unknown_source",
    "dropped_unknown_kind": "unknown_kind",
    "received_truncated": "truncated",
    "send_errors": "send_error",
    "protect_errors": "protect_error",
    "dropped_oversize": "oversize",
    "red_dropped": "malformed_red",
}
#: Plain media counters: (stats key, metric name, help).
MEDIA_COUNTERS = (
    ("datagrams_received", "walkie_media_datagrams_received",
     "UDP datagrams the media plane received (STUN, DTLS, RTP, RTCP)"),
    ("bytes_received", "walkie_media_received_bytes", "octets of those datagrams"),
    ("datagrams_sent", "walkie_media_datagrams_sent", "UDP datagrams the media plane sent"),
    ("packets_forwarded", "walkie_media_packets_forwarded",
     "talker packets forwarded, one per listener"),
    ("payload_bytes_forwarded", "walkie_media_payload_bytes_forwarded",
     "Opus payload octets forwarded, summed over listeners"),
    ("certificate_renewals", "walkie_media_certificate_renewals", "DTLS certificates renewed"),
)
#: Webhook delivery figures: (DeliveryStats field, metric name, help); label ``host``.
WEBHOOK_COUNTERS = (
    ("delivered", "walkie_webhook_deliveries", "webhook events delivered (2xx)"),
    ("failed", "walkie_webhook_failed_attempts",
     "webhook attempts that failed (error, timeout, not 2xx)"),
    ("retried", "walkie_webhook_retries", "failed webhook attempts tried again"),
    ("given_up", "walkie_webhook_given_up", "webhook events abandoned (attempts spent, or a 4xx)"),
    ("dropped", "walkie_webhook_dropped", "webhook events dropped: the queue was full"),
)
#: Histogram buckets (seconds): a join costs one scrypt run at most; a floor grant a round
#: trip, or the wait in the queue.
JOIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
ACCESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                  10.0, 30.0)


class Observer(Protocol):
    """What the hub and the server report as it happens (all cheap, never raising)."""

    def joined(self, member: Member) -> None: ...
    def left(self, member_id: str) -> None: ...
    def floor_requested(self, member_id: str, now: float) -> None: ...
    def floor_effect(self, effect: fl.Effect, now: float) -> None: ...
    def error(self, code: str) -> None: ...
    def media_event(self, kind: str) -> None: ...
    def join_time(self, seconds: float) -> None: ...


class _NoObserver:
    def joined(self, member: Member) -> None: pass
    def left(self, member_id: str) -> None: pass
    def floor_requested(self, member_id: str, now: float) -> None: pass
    def floor_effect(self, effect: fl.Effect, now: float) -> None: pass
    def error(self, code: str) -> None: pass
    def media_event(self, kind: str) -> None: pass
    def join_time(self, seconds: float) -> None: pass


NO_OBSERVER: Observer = _NoObserver()


class Observers:
    """Several observers told the same things, in order (metrics, then webhooks)."""

    def __init__(self, *observers: Observer) -> None:
        self._all = observers

    @classmethod
    def of(cls, *maybe: Observer | None) -> Observer:
        """The observers given (None: left out) as one: NO_OBSERVER, the one, or all."""
        present = [o for o in maybe if o is not None]
        if not present:
            return NO_OBSERVER
        return present[0] if len(present) == 1 else cls(*present)

    def joined(self, member: Member) -> None:
        for o in self._all:
            o.joined(member)

    def left(self, member_id: str) -> None:
        for o in self._all:
            o.left(member_id)

    def floor_requested(self, member_id: str, now: float) -> None:
        for o in self._all:
            o.floor_requested(member_id, now)

    def floor_effect(self, effect: fl.Effect, now: float) -> None:
        for o in self._all:
            o.floor_effect(effect, now)

    def error(self, code: str) -> None:
        for o in self._all:
            o.error(code)

    def media_event(self, kind: str) -> None:
        for o in self._all:
            o.media_event(kind)

    def join_time(self, seconds: float) -> None:
        for o in self._all:
            o.join_time(seconds)

#: The text exposition format's content type (prometheus_client.CONTENT_TYPE_LATEST).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The server's metrics: an :class:`Observer` for events, a collector for state.

    ``snapshot()`` returns what ``/healthz`` shows (rooms, members, clients, the media
    plane's stats) plus the floors' state (``queued``, ``floors_held``); it is called at
    scrape time only.
    """

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = r = CollectorRegistry()
        self._joins = Counter("walkie_joins", "members that joined a room", registry=r)
        self._leaves = Counter("walkie_leaves", "members that left a room", registry=r)
        self._requests = Counter("walkie_floor_requests", "floor requests", registry=r)
        self._grants = Counter("walkie_floor_grants", "floor grants (queued: after a wait in "
                               "the queue)", ["queued"], registry=r)
        self._denials = Counter("walkie_floor_denials", "floor requests denied", ["reason"],
                                registry=r)
        self._queued = Counter("walkie_floor_queued", "floor requests queued", registry=r)
        self._revocations = Counter("walkie_floor_revocations", "floors revoked", ["reason"],
                                    registry=r)
        self._releases = Counter("walkie_floor_releases", "floors released by their holder",
                                 registry=r)
        self._errors = Counter("walkie_errors", "errors sent to clients", ["code"], registry=r)
        self._media_events = Counter("walkie_media_events", "media plane events about peers "
                                     "(connected, reset, consent_lost, dtls_failed, closed)",
                                     ["kind"], registry=r)
        self._join_seconds = Histogram("walkie_join_seconds",
                                       "time from a join message to its answer",
                                       buckets=JOIN_BUCKETS, registry=r)
        self._access_seconds = Histogram("walkie_floor_access_seconds",
                                         "time from a floor request to its grant", ["queued"],
                                         buckets=ACCESS_BUCKETS, registry=r)
        # The labels known in advance start at 0, so that a chart shows 0, not "no data".
        for queued in ("false", "true"):
            self._grants.labels(queued)
            self._access_seconds.labels(queued)
        for reason in ("busy", "listen_only"):
            self._denials.labels(reason)
        for reason in ("max_talk_time", "no_media", "preempted"):
            self._revocations.labels(reason)
        for kind in ("connected", "reset", "consent_lost", "dtls_failed", "closed"):
            self._media_events.labels(kind)
        self._requested: dict[str, float] = {}  # member -> when its request came
        self._waiting: set[str] = set()  # members in a floor queue
        r.register(_StateCollector(snapshot))

    # -- Observer ----------------------------------------------------------------------

    def joined(self, member: Member) -> None:
        self._joins.inc()

    def left(self, member_id: str) -> None:
        self._leaves.inc()
        self._requested.pop(member_id, None)  # its request will never be granted
        self._waiting.discard(member_id)

    def floor_requested(self, member_id: str, now: float) -> None:
        self._requests.inc()
        self._requested.setdefault(member_id, now)  # a repeated request keeps the first time

    def floor_effect(self, effect: fl.Effect, now: float) -> None:
        if isinstance(effect, fl.Granted):
            asked = self._requested.pop(effect.member, None)
            queued = "true" if effect.member in self._waiting else "false"
            self._waiting.discard(effect.member)
            self._grants.labels(queued).inc()
            if asked is not None:
                self._access_seconds.labels(queued).observe(max(0.0, now - asked))
        elif isinstance(effect, fl.Denied):
            self._requested.pop(effect.member, None)
            self._denials.labels(effect.reason).inc()
        elif isinstance(effect, fl.Queued):
            if effect.member not in self._waiting:  # re-sent each time the position moves
                self._waiting.add(effect.member)
                self._queued.inc()
        elif isinstance(effect, fl.Revoked):
            self._revocations.labels(effect.reason).inc()
        elif isinstance(effect, fl.Released):
            self._requested.pop(effect.member, None)
            if effect.member in self._waiting:
                self._waiting.discard(effect.member)  # left the queue: no talk ended
            else:
                self._releases.inc()

    def error(self, code: str) -> None:
        self._errors.labels(code).inc()

    def media_event(self, kind: str) -> None:
        if kind not in ("speaker_active", "speaker_silent"):  # the floor's timer, not peers'
            self._media_events.labels(kind).inc()

    def join_time(self, seconds: float) -> None:
        self._join_seconds.observe(max(0.0, seconds))

    # -- exposition --------------------------------------------------------------------

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _StateCollector:
    """Reads the snapshot at scrape time (see the module docstring)."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot
        self._started = time.monotonic()

    def describe(self) -> list[Any]:
        return []  # its families depend on the workers running: not checked at register()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self._snapshot()
        for name, doc, value in (
            ("walkie_uptime_seconds", "seconds since the server started",
             time.monotonic() - self._started),
            ("walkie_rooms", "rooms open", state.get("rooms", 0)),
            ("walkie_members", "members in rooms", state.get("members", 0)),
            ("walkie_connections", "WebSocket connections", state.get("clients", 0)),
            ("walkie_floor_queue_length", "members waiting for the floor, all rooms",
             state.get("queued", 0)),
            ("walkie_floor_busy_rooms", "rooms whose floor is held", state.get("floors_held", 0)),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], float(value))
            yield gauge
        yield from _media_families(_workers(state.get("media") or {}), CounterMetricFamily,
                                   GaugeMetricFamily)
        hooks = state.get("webhooks")
        if hooks:
            yield from _webhook_families(hooks, CounterMetricFamily, GaugeMetricFamily)


def _webhook_families(hosts: Mapping[str, DeliveryStats], counter: Any,
                      gauge: Any) -> Iterator[Any]:
    """The webhook sender's counters per URL host (present only with --webhook-url)."""
    families = [(field, counter(name, doc, labels=["host"]))
                for field, name, doc in WEBHOOK_COUNTERS]
    queued = gauge("walkie_webhook_queue_length", "webhook events waiting to be delivered",
                   labels=["host"])
    for host, stats in sorted(hosts.items()):
        for field, family in families:
            family.add_metric([host], getattr(stats, field))
        queued.add_metric([host], stats.queued)
    yield from (family for _, family in families)
    yield queued


def _workers(media: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, stats) per media worker; an in-process Router is worker "0"."""
    entries = media.get("workers")
    if isinstance(entries, list):
        return [(str(entry.get("index", k)), entry) for k, entry in enumerate(entries)
                if isinstance(entry, Mapping)]
    return [("0", media)] if media else []


def _media_families(workers: Iterable[tuple[str, Mapping[str, Any]]], counter: Any,
                    gauge: Any) -> Iterator[Any]:
    peers = gauge("walkie_media_peers", "media peers by state", labels=["worker", "state"])
    rooms = gauge("walkie_media_rooms", "rooms on each media worker", labels=["worker"])
    drops = counter("walkie_media_dropped", "datagrams the media plane dropped, by reason",
                    labels=["worker", "reason"])
    plain = {key: counter(name, doc, labels=["worker"]) for key, name, doc in MEDIA_COUNTERS}
    up = gauge("walkie_worker_up", "1 while the media worker is ready", labels=["worker"])
    restarts = counter("walkie_worker_restarts", "media worker restarts", labels=["worker"])
    cpu = gauge("walkie_worker_cpu_ratio", "media worker CPU use over its last report "
                "(1.0 = one core)", labels=["worker"])
    for label, stats in workers:
        total, connected = _int(stats.get("peers")), _int(stats.get("connected_peers"))
        peers.add_metric([label, "connected"], connected)
        peers.add_metric([label, "connecting"], max(0, total - connected))
        rooms.add_metric([label], _int(stats.get("rooms")))
        for key, reason in DROP_REASONS.items():
            drops.add_metric([label, reason], _int(stats.get(key)))
        for key, metric in plain.items():
            metric.add_metric([label], _int(stats.get(key)))
        ready = stats.get("state", "ready") == "ready" and stats.get("alive", True)
        up.add_metric([label], 1.0 if ready else 0.0)
        restarts.add_metric([label], _int(stats.get("restarts")))
        cpu.add_metric([label], _number(stats.get("cpu_percent")) / 100.0)
    yield from (peers, rooms, drops, *plain.values(), up, restarts, cpu)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
