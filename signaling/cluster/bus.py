"""The message bus between nodes: Redis pub/sub, one channel per node.

A node subscribes to its own channel (``<prefix>bus:<node id>``) and publishes to the channel
of the node it talks to. :class:`RedisBus` owns the I/O; what goes over it is envelope.py's.

* **Order.** :meth:`RedisBus.publish` never waits: it numbers the envelope (``seq``, per
  receiving node) and queues it; one task sends the queue in order (a pipeline per batch), so
  what one node sends another arrives in the order it was sent. One task reads the
  subscription and hands each envelope, decoded and checked, to ``on_envelope``.
* **Gaps.** Pub/sub delivers at most once: a message published while the receiver is not
  subscribed (it is reconnecting, or dead) is lost. A lost envelope would leave the two
  nodes disagreeing about a socket (a member the owner keeps forever, an answer never
  written), so every loss is turned into a *gap* that ``on_gap(node)`` reports, and the
  bridge ends the sessions it shares with that node (their pages reconnect and join again):
  the receiver sees a jump in ``seq``; the sender sees a publish that reached nobody, or one
  it had to give up; a node whose own subscription broke reports a gap with every node
  (``on_gap(None)``). A publish that fails is retried in order for up to ``give_up``
  seconds (a Redis restart), then given up.
* **Junk.** Anyone who can publish on Redis can publish on our channel: what does not decode
  is dropped and counted, with at most one log line per :data:`JUNK_LOG_INTERVAL`.

The ``redis`` package is imported only by :meth:`RedisBus.connect` (a single node never
loads it); tests can pass any ``redis.asyncio``-compatible client to the constructor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .envelope import Envelope, EnvelopeError, decode, encode

__all__ = ["GIVE_UP", "JUNK_LOG_INTERVAL", "MAX_QUEUED", "RedisBus"]

log = logging.getLogger(__name__)

#: Envelopes waiting to be published; beyond this the newest are given up (a gap).
MAX_QUEUED = 20_000
#: Envelopes sent in one pipeline.
BATCH = 128
#: Seconds a failing publish is retried before its envelopes are given up.
GIVE_UP = 5.0
#: Seconds between two log lines about junk on our channel.
JUNK_LOG_INTERVAL = 10.0
#: Reconnect back-off after the subscription broke: first wait, doubling up to the last.
RECONNECT_FIRST, RECONNECT_MAX = 0.1, 2.0
#: Seconds one read of the subscription waits before looking again (a bound, not a timer).
READ_WAIT = 1.0


class RedisBus:
    """Pub/sub for one node: ``await start()``, ``publish(...)``, ``await close()``."""

    def __init__(self, client: Any, node_id: str, *, prefix: str,
                 on_envelope: Callable[[Envelope], None],
                 on_gap: Callable[[str | None], None],
                 give_up: float = GIVE_UP, timeout: float = 1.0) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.channel = self.channel_of(node_id)
        #: False from a failure (read or publish) until the bus works again.
        self.ok = True
        self.junk = 0  # envelopes dropped as junk, for /healthz and tests
        self.gaps = 0  # gaps reported to on_gap
        self.delivered = 0
        self._redis = client
        self._on_envelope = on_envelope
        self._on_gap = on_gap
        self._give_up = give_up
        self._timeout = timeout
        self._sent_seq: dict[str, int] = {}  # per receiving node: the last seq given out
        self._seen_seq: dict[str, int] = {}  # per sending node: the last seq received
        self._queue: deque[tuple[str, int, bytes, float]] = deque()
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._junk_logged = -JUNK_LOG_INTERVAL

    @classmethod
    async def connect(cls, url: str, node_id: str, *, prefix: str,
                      on_envelope: Callable[[Envelope], None],
                      on_gap: Callable[[str | None], None],
                      timeout: float = 1.0) -> RedisBus:
        """A bus on its own Redis client (the subscription holds a connection of its own)."""
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = redis.asyncio.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0))  # a broken connection must surface: it is a gap
        return cls(client, node_id, prefix=prefix, on_envelope=on_envelope, on_gap=on_gap,
                   timeout=timeout)

    def channel_of(self, node_id: str) -> str:
        return f"{self.prefix}bus:{node_id}"

    async def start(self, wait: float = 5.0) -> None:
        """Subscribe (waiting up to ``wait`` s for the first subscription) and start sending."""
        self._tasks = [asyncio.create_task(self._read_forever(), name="cluster-bus-read"),
                       asyncio.create_task(self._send_forever(), name="cluster-bus-send")]
        try:
            await asyncio.wait_for(self._subscribed.wait(), wait)
        except asyncio.TimeoutError:
            log.warning("the bus could not subscribe within %g s; it keeps trying", wait)

    async def close(self) -> None:
        """Send what is queued (briefly), stop both tasks and close the client."""
        if self._queue and self.ok:
            deadline = time.monotonic() + self._timeout
            while self._queue and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        close = getattr(self._redis, "aclose", None) or self._redis.close  # redis < 5.0.1
        try:
            await close()
        except Exception as exc:  # noqa: BLE001 - closing must not fail a shutdown
            log.debug("closing the bus's Redis client: %s", exc)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- sending --------------------------------------------------------------------------

    def publish(self, node_id: str, envelope: Envelope) -> None:
        """Queue ``envelope`` for ``node_id``. Never waits; EnvelopeError if it cannot be
        encoded (over the size cap). A full queue gives the envelope up (a gap)."""
        seq = self._sent_seq.get(node_id, 0) + 1
        raw = encode(envelope, seq)
        self._sent_seq[node_id] = seq
        if len(self._queue) >= MAX_QUEUED:
            log.warning("bus queue full (%d): an envelope for %s is given up", MAX_QUEUED,
                        node_id)
            self._gap(node_id)
            return
        self._queue.append((node_id, seq, raw, time.monotonic()))
        self._wake.set()

    async def _send_forever(self) -> None:
        backoff = RECONNECT_FIRST
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            try:
                receivers = await asyncio.wait_for(self._publish(batch), self._timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep the batch, retry
                self._failed("publishing", exc)
                self._give_up_old()
                await asyncio.sleep(backoff)
                backoff = min(RECONNECT_MAX, backoff * 2)
                continue
            backoff = RECONNECT_FIRST
            for _ in batch:
                self._queue.popleft()
            self._recovered()
            for (node_id, _, _, _), count in zip(batch, receivers):
                if not count:  # nobody subscribed: it is reconnecting, or dead
                    self._gap(node_id)

    async def _publish(self, batch: list[tuple[str, int, bytes, float]]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id, _, raw, _ in batch:
                pipe.publish(self.channel_of(node_id), raw)
            return list(await pipe.execute())

    def _give_up_old(self) -> None:
        """Drop what has waited longer than ``give_up``: a gap with each of its receivers."""
        limit = time.monotonic() - self._give_up
        lost: set[str] = set()
        while self._queue and self._queue[0][3] < limit:
            lost.add(self._queue.popleft()[0])
        if lost:
            log.warning("gave up %d bus envelope(s) after %g s without Redis", len(lost),
                        self._give_up)
        for node_id in sorted(lost):
            self._gap(node_id)

    # -- receiving -------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        backoff = RECONNECT_FIRST
        first = True
        while True:
            pubsub = self._redis.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self._timeout)
                if not first:
                    # Whatever was published to us meanwhile is lost: from anyone.
                    self._seen_seq.clear()
                    self._gap(None)
                first = False
                self._subscribed.set()
                self._recovered()
                backoff = RECONNECT_FIRST
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=READ_WAIT)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: subscribe again
                self._failed("reading", exc)
            finally:
                await _close_pubsub(pubsub)
            await asyncio.sleep(backoff)
            backoff = min(RECONNECT_MAX, backoff * 2)

    def _deliver(self, raw: object) -> None:
        try:
            seq, envelope = decode(raw, self.node_id)
        except EnvelopeError as exc:
            self._junk(exc)
            return
        last = self._seen_seq.get(envelope.sender)
        if last is not None and seq <= last:
            self._junk(EnvelopeError(f"seq {seq} from {envelope.sender} after {last}"))
            return
        self._seen_seq[envelope.sender] = seq
        if last is not None and seq != last + 1:
            log.warning("lost %d envelope(s) from node %s", seq - last - 1, envelope.sender)
            self._gap(envelope.sender)
        self.delivered += 1
        try:
            self._on_envelope(envelope)
        except Exception:  # noqa: BLE001 - one envelope must never stop the reader
            log.exception("handling a %s envelope from %s failed", type(envelope).__name__,
                          envelope.sender)

    def _junk(self, exc: EnvelopeError) -> None:
        self.junk += 1
        now = time.monotonic()
        if now - self._junk_logged >= JUNK_LOG_INTERVAL:
            self._junk_logged = now
            log.warning("dropped junk on bus channel %s (%d so far): %s", self.channel,
                        self.junk, exc)

    # -- health ----------------------------------------------------------------------------

    def _gap(self, node_id: str | None) -> None:
        self.gaps += 1
        try:
            self._on_gap(node_id)
        except Exception:  # noqa: BLE001
            log.exception("handling a bus gap with %s failed", node_id or "every node")

    def _failed(self, doing: str, exc: BaseException) -> None:
        if self.ok:
            log.warning("bus: Redis failed while %s (%s); retrying", doing,
                        exc or type(exc).__name__)
        self.ok = False

    def _recovered(self) -> None:
        if not self.ok:
            log.warning("bus: Redis works again")
        self.ok = True


async def _close_pubsub(pubsub: Any) -> None:
    close = getattr(pubsub, "aclose", None) or pubsub.reset  # redis < 5.0.1
    try:
        await close()
    except Exception as exc:  # noqa: BLE001
        log.debug("closing a subscription: %s", exc)
