"""The signaling server: HTTP (the page, /healthz) and the /ws WebSocket on one port.

This is the I/O shell around :class:`~signaling.hub.Hub`: it reads frames, enforces the
per-client limits (frame size, message rate) and asks the per-address budgets and the
password gate (``admission.py``) before any work, closes sockets that do not join in time,
feeds the hub and carries out what the hub answers, including the media plane's offer/answer
round trips (a task per :class:`~signaling.hub.Negotiate`, never awaited by the frame loop).
Each client has its own outgoing queue and writer task, so a slow or stuck browser delays
only itself, and any exception raised while handling one client's message is logged and
answered with ``server_error``: one client can never take the server down.

(A little over 400 lines: it is the one place where every limit meets the socket; the rules
themselves live in budgets.py, password_gate.py, admission.py, hosts.py and headers.py.)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sfu import WorkerGone

from . import turn
from .admission import JoinAdmission
from .budgets import PRUNE_INTERVAL, AddressBudgets, BudgetSettings, Refusal
from .floor import FloorSettings
from .headers import security_headers
from .hosts import HostPolicy, HostRefused
from .hub import CLOSE_FATAL, Action, Client, Hub, MediaPlane, Negotiate, Send, error_message
from .keepalive import Keepalive
from .logcontext import connection_id
from .messages import (MAX_MESSAGE_BYTES, ClientMessage, Join, ProtocolError, Replay,
                       parse_client_message)
from .metrics import CONTENT_TYPE, Metrics, Observers
from .origin import OriginPolicy
from .ratelimit import TokenBucket
from .recorder import Recorder
from .resume import DEFAULT_GRACE
from .rooms import RoomRegistry
from .static import HttpResponse, StaticSite, find_www_dir, text_response
from .tokens import TokenCheck
from .webhooks import RoomEvents, WebhookSender

if TYPE_CHECKING:  # only with --redis: a single node never imports the cluster package
    from .cluster.bridge import Bridge

__all__ = ["ServerConfig", "SignalingServer"]

log = logging.getLogger("walkie.signaling")

#: Close codes of a client that meant to go (normal closure, going away, or a close frame
#: with no code): its member leaves at once. Any other end (no close frame: 1006, the
#: keepalive gave up, or the page's 4000 "reconnecting") holds it for a resume.
GOODBYE_CODES = frozenset({1000, 1001, 1005})
#: Messages queued for one client before we give up on it (it stopped reading).
MAX_OUTBOX = 1000
#: Minimum seconds between two ``rate_limited`` errors to the same client: an error per
#: dropped message would turn a flood into an echo.
RATE_NOTICE_INTERVAL = 1.0
#: Minimum seconds between two log lines about refused Origins: a hostile page can make
#: visitors' browsers knock as often as it likes, and must not be able to fill the log.
ORIGIN_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the signaling server needs to know; the CLI fills it from flags/env."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_users: int = 15
    max_talk_time: float | None = 60.0
    queue: bool = True
    max_rooms: int = 10_000
    www_dir: Path | None = None
    turn: turn.TurnConfig | None = None
    rate: float = 20.0                 # messages per second per client, sustained
    burst: float = 40.0                # ... and in a burst
    allowed_origins: tuple[str, ...] = ()  # besides the server's own origin
    server_names: tuple[str, ...] = ()  # Host names served besides IP literals and localhost
    force_relay: bool = False          # browsers use only TURN relay candidates
    max_connections_per_ip: int = 64   # concurrent WebSockets from one address (IPv6: /64)
    budgets: BudgetSettings = BudgetSettings()  # per-address budgets, server-wide caps
    tick_interval: float = 0.25        # how often max talk time and no media are checked
    # A vanished talker (docs/PROTOCOL.md, "Floor control"): the holder is revoked
    # (no_media) this long after its audio stopped reaching the media plane, or after
    # media_wait if none was heard since its grant or media reset; None: never.
    no_media_timeout: float | None = 3.0
    media_wait: float = 10.0
    # ... and a dead socket leaves the room within ping_interval + ping_timeout + 0.2 s
    # (signaling/keepalive.py; None: no pings); close_timeout bounds every close handshake.
    ping_interval: float | None = 1.5
    ping_timeout: float = 2.5
    close_timeout: float = 2.0
    # Quick reconnect (signaling/holding.py, resume.py): a member whose socket dies without
    # a goodbye is held this long for its page to resume it; 0: it leaves at once.
    resume_grace: float = DEFAULT_GRACE
    ssl: ssl.SSLContext | None = None
    # Prometheus metrics at /metrics (signaling/metrics.py): off unless asked; with a token,
    # a scrape must send "Authorization: Bearer <token>".
    metrics: bool = False
    metrics_token: str | None = None
    # Signed join links (signaling/tokens.py): with a secret, every join needs a token.
    token_secret: str | None = field(default=None, repr=False)
    # Webhooks (signaling/webhooks.py): events POSTed to each URL, signed with the secret.
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    room_secret: bytes | None = field(default=None, repr=False)  # shared by a cluster's nodes
    # Say-again (signaling/replay.py): how long the media plane keeps each room's audio;
    # None: it keeps none. The media plane must be started with the same setting.
    replay_seconds: float | None = None
    # Recording (issue 12, signaling/recorder.py): each transmission an Ogg Opus file in
    # record_dir (None: nothing is ever kept), removed record_keep_days later (0: never).
    # The media plane must keep transmissions (sfu.RouterConfig capture_seconds, record).
    record_dir: Path | None = None
    record_keep_days: float = 30.0


class _Conn:
    """The transport side of one client: its socket, outbox, writer and rate limiter."""

    __slots__ = ("ws", "ip", "client", "bucket", "outbox", "wake", "close_request", "writer",
                 "last_notice", "proxy")

    def __init__(self, ws: ServerConnection, ip: str, bucket: TokenBucket) -> None:
        self.ws = ws
        self.ip = ip
        self.client: Client | None = None
        self.bucket = bucket
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.close_request: tuple[int, str] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.last_notice = -RATE_NOTICE_INTERVAL
        self.proxy: object | None = None  # set while its room lives on another node (cluster)

    def enqueue(self, text: str) -> None:
        if self.close_request is not None:
            return
        if len(self.outbox) >= MAX_OUTBOX:
            log.warning("client %s stopped reading; dropping it", self.ws.id)
            self.outbox.clear()
            self.ws.transport.abort()
            return
        self.outbox.append(text)
        self.wake.set()

    def request_close(self, code: int, reason: str) -> None:
        if self.close_request is None:
            self.close_request = (code, reason)
            self.wake.set()

    async def run_writer(self) -> None:
        """Send queued messages in order; close once asked to and the queue is empty."""
        try:
            while True:
                while self.outbox:
                    await self.ws.send(self.outbox.popleft())
                if self.close_request is not None:
                    await self.ws.close(*self.close_request)
                    return
                self.wake.clear()
                await self.wake.wait()
        except ConnectionClosed:
            return


class SignalingServer:
    """The signaling service bound to one media plane (``sfu.WorkerPool`` or ``sfu.Router``)."""

    def __init__(self, config: ServerConfig, media: MediaPlane) -> None:
        self.config = config
        self.media = media
        self.registry = RoomRegistry(
            config.max_users,
            FloorSettings(config.max_talk_time, config.queue, config.no_media_timeout,
                          config.media_wait),
            config.max_rooms,
            config.room_secret,
        )
        if config.force_relay and not (config.turn is not None and config.turn.has_turn):
            raise ValueError("force_relay needs a TURN server: with no relay candidate a "
                             "browser could not connect at all")
        self.metrics = Metrics(self._state) if config.metrics else None
        self.webhooks = (WebhookSender(config.webhook_urls, config.webhook_secret or "")
                         if config.webhook_urls else None)
        self.recorder = (Recorder(config.record_dir, config.record_keep_days)
                         if config.record_dir is not None else None)
        self.hub = Hub(
            self.registry,
            media,
            ice_servers=self._ice_servers,
            ice_transport_policy="relay" if config.force_relay else "all",
            observer=Observers.of(self.metrics,
                                  RoomEvents(self.webhooks.submit) if self.webhooks else None,
                                  self.recorder),
            tokens=TokenCheck(config.token_secret) if config.token_secret else None,
            replay_seconds=config.replay_seconds,
            recording=self.recorder is not None,
            resume_grace=config.resume_grace,
        )
        self.site = StaticSite(config.www_dir or find_www_dir())
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.keepalive = (Keepalive(config.ping_interval, config.ping_timeout)
                          if config.ping_interval else None)
        self._pinger: asyncio.Task[None] | None = None
        self._negotiations: set[asyncio.Task[None]] = set()
        self._conns: set[_Conn] = set()  # open sockets (a draining node closes them)
        self._closed = False
        self._address: tuple[str, int] = (config.host, config.port)
        self._started = time.monotonic()
        self.origins = OriginPolicy(config.allowed_origins)
        self.budgets = AddressBudgets(config.budgets, config.max_connections_per_ip)
        self.admission = JoinAdmission(self.registry, self.budgets)
        self._next_prune = 0.0
        self._origin_logged = -ORIGIN_LOG_INTERVAL
        self.hosts = HostPolicy(config.server_names)  # DNS rebinding: signaling/hosts.py
        self._host_logged = -ORIGIN_LOG_INTERVAL
        #: With ``walkie serve --redis``: the bridge to the other nodes (signaling/cluster/).
        self.cluster: Bridge | None = None

    @classmethod
    async def start(cls, config: ServerConfig, media: MediaPlane) -> SignalingServer:
        """Listen on ``config.host:config.port`` (0 = ephemeral) and subscribe to media events."""
        self = cls(config, media)
        if self.recorder is not None:
            await self.recorder.start()  # OSError: the directory cannot be written
        media.add_listener(self._on_media_event)
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._process_request,
            # Frames up to twice the protocol limit are read so that we can answer them
            # with a clear "too_large" error; beyond that websockets closes with 1009.
            max_size=2 * MAX_MESSAGE_BYTES,
            max_queue=8,
            compression=None,  # tiny JSON messages: deflate would cost memory, save nothing
            ping_interval=None,  # our own keepalive: it leaves at once (keepalive.py)
            close_timeout=config.close_timeout,
            server_header="walkie",
            ssl=config.ssl,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (host, port)
        self._ticker = asyncio.create_task(self._tick_loop())
        if self.keepalive is not None:
            self._pinger = asyncio.create_task(self.keepalive.run())
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); still known after close()."""
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "https" if self.config.ssl else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/"

    async def close(self) -> None:
        """Close every client (code 1001) and the listening socket; cleanup runs per client."""
        if self._closed:
            return
        self._closed = True
        for task in (self._ticker, self._pinger):
            if task is not None:
                task.cancel()
        for task in self._negotiations:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.webhooks is not None:  # the last member_left / room_finished, briefly
            await self.webhooks.flush(2.0)
            await self.webhooks.close()
        if self.recorder is not None:  # the files already handed to the writer
            await self.recorder.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # -- WebSocket sessions -------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        ip = _remote_ip(ws)
        refusal = self.budgets.connect(ip)
        if refusal is not None:
            # Neither the server nor one address may be given more sockets than it can
            # hold: a clear error to that client only; nobody else is affected.
            await ws.send(error_message(refusal.code, refusal.message, True))
            await ws.close(CLOSE_FATAL, refusal.code.replace("_", " "))
            return
        try:
            await self._session(ws, ip)
        finally:
            self.budgets.disconnect(ip)

    async def _session(self, ws: ServerConnection, ip: str) -> None:
        conn = _Conn(ws, ip, TokenBucket(self.config.rate, self.config.burst, time.monotonic()))
        client = self.hub.connect(conn)
        conn.client = client
        connection_id.set(f"c{client.serial}")  # on every line logged for this session
        conn.writer = asyncio.create_task(conn.run_writer())
        self._conns.add(conn)
        join_timeout = self.config.budgets.join_timeout
        deadline = asyncio.get_running_loop().call_later(
            join_timeout, self._join_deadline, client) if join_timeout else None
        if self.keepalive is not None:
            self.keepalive.watch(ws)
        try:
            async for frame in ws:
                if client.closed:
                    break
                await self._on_frame(conn, client, frame)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            if self.keepalive is not None:
                self.keepalive.forget(ws)
            try:
                if conn.proxy is not None and self.cluster is not None:
                    self.cluster.socket_closed(conn)
                self.drop(client, clean=ws.close_code in GOODBYE_CODES)
            except Exception:  # noqa: BLE001
                log.exception("cleanup of client %s failed", client.serial)
            if deadline is not None:
                deadline.cancel()
            if conn.close_request is not None:
                # Let the last error message and the close frame go out.
                try:
                    await asyncio.wait_for(asyncio.shield(conn.writer), 5.0)
                except (asyncio.TimeoutError, ConnectionClosed):
                    pass
            conn.writer.cancel()

    def _join_deadline(self, client: Client) -> None:
        """A socket must join soon after it opens (the page sends ``join`` as soon as its
        socket is open): one that does not is closed, with ``join_timeout``."""
        if client.member is None and not client.closed and client.context.proxy is None:
            timeout = self.config.budgets.join_timeout
            self._dispatch(self.hub.error(client, ProtocolError(
                "join_timeout", f"no join within {timeout:g} s of connecting")))

    async def _on_frame(self, conn: _Conn, client: Client, frame: str | bytes) -> None:
        now = time.monotonic()
        if not conn.bucket.allow(now) or not self.budgets.message(conn.ip, len(frame), now):
            if now - conn.last_notice >= RATE_NOTICE_INTERVAL:
                conn.last_notice = now
                self.hub.observer.error("rate_limited")
                conn.enqueue(error_message(
                    "rate_limited",
                    f"more than {self.config.rate:g} messages per second (or your address "
                    "over its share); message dropped",
                    False,
                ))
            return
        try:
            message = parse_client_message(frame)
        except ProtocolError as exc:
            self._dispatch(self.hub.error(client, exc))
            return
        if self.cluster is not None and await self.cluster.route(conn, client, message):
            return  # its room lives on another node: relayed there
        await self.handle(conn.ip, client, message, now)

    async def handle(self, ip: str, client: Client, message: ClientMessage, now: float) -> None:
        """One validated message of ``client``: from a socket of this server, or bridged
        from another node's socket (``ip`` is then the address that node forwarded)."""
        try:
            key = None
            creates = False
            if isinstance(message, Join) and client.member is None:
                refusal, key = await self.admission.admit(ip, message, now)
                if refusal is not None:
                    self._dispatch(self._refusal(client, refusal))
                    return
                creates = self.registry.get(message.room) is None
            elif isinstance(message, Replay) and client.member is not None:
                refusal = self.budgets.replay(ip, now)  # each replay streams audio: budgeted
                if refusal is not None:
                    self.hub.observer.error(refusal.code)
                    self._dispatch([Send(client, error_message(
                        refusal.code, refusal.message, False, refusal.retry_after))])
                    return
            actions = self.hub.receive(client, message, key)
            if client.member is not None and isinstance(message, Join):
                self.admission.joined(ip, client.member.room_id, creates)
                self.hub.observer.join_time(time.monotonic() - now)
        except Exception:  # noqa: BLE001 - one bad message must never kill the server
            log.exception("handling %s from client %s failed", type(message).__name__,
                          client.serial)
            actions = self.hub.server_error(client)
        self._dispatch(actions)

    def drop(self, client: Client, clean: bool = True) -> None:
        """``client``'s socket is gone: the hub lets it leave, or holds its member for a
        resume when it went without a goodbye (``clean`` False)."""
        self._dispatch(self.hub.disconnect(client, clean))

    def _refusal(self, client: Client, refusal: Refusal) -> list[Action]:
        """A join refused before any work: ``try_later`` (the session goes on) or fatal."""
        if refusal.code == "try_later":
            self.hub.observer.error(refusal.code)
            return [Send(client, error_message(refusal.code, refusal.message, False,
                                               refusal.retry_after))]
        return self.hub.error(client, ProtocolError(refusal.code, refusal.message))

    def connections(self) -> list[_Conn]:
        """The open WebSocket sessions of this server."""
        return list(self._conns)

    def dispatch(self, actions: list[Action]) -> None:
        """Carry out actions of the hub asked for outside a message (cluster hand-overs)."""
        self._dispatch(actions)

    def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Negotiate):
                task = asyncio.create_task(self._negotiate(action))
                self._negotiations.add(task)
                task.add_done_callback(self._negotiations.discard)
                continue
            conn: _Conn = action.client.context  # or a bridged socket's (cluster/bridge.py)
            if isinstance(action, Send):
                conn.enqueue(action.text)
            else:
                conn.request_close(action.code, action.reason)

    async def _negotiate(self, negotiation: Negotiate) -> None:
        """One offer/answer round trip with the media plane; the outcome goes to the hub."""
        try:
            answer = await self.media.negotiate(
                negotiation.peer_id, negotiation.room_id, negotiation.sdp,
                listen_only=negotiation.listen_only)
        except ValueError as exc:  # sfu.OfferError / WorkerGone: str() is the reason
            actions = self.hub.offer_failed(negotiation, str(exc) or "unusable offer",
                                            unusable=not isinstance(exc, WorkerGone))
        except Exception:  # noqa: BLE001 - a media-plane bug fails this offer, not the server
            log.exception("negotiating the offer of client %s failed", negotiation.client.serial)
            actions = self.hub.offer_failed(negotiation, None)
        else:
            actions = self.hub.offer_answered(negotiation, answer)
        try:
            self._dispatch(actions)
        except Exception:  # noqa: BLE001
            log.exception("dispatching the answer for client %s failed",
                          negotiation.client.serial)

    def _on_media_event(self, event: object) -> None:
        if self._closed:
            return
        transmission = getattr(event, "transmission", None)
        if transmission is not None:  # a finished turn (recording on): not for the hub
            if self.recorder is not None:
                self.recorder.submit(transmission)
            return
        try:
            self._dispatch(self.hub.media_event(event))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            log.exception("handling media event %r failed", event)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval)
            try:
                self._dispatch(self.hub.tick())
                now = time.monotonic()
                if now >= self._next_prune:  # forget idle addresses now and then
                    self._next_prune = now + PRUNE_INTERVAL
                    self.admission.prune(now)
            except Exception:  # noqa: BLE001
                log.exception("floor tick failed")

    def _ice_servers(self, member_id: str) -> list[dict[str, object]]:
        return turn.ice_servers(self.config.turn, member_id, time.time())

    # -- plain HTTP ---------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        tls = self.config.ssl is not None
        try:  # every path and the upgrade: see signaling/hosts.py (DNS rebinding)
            policy = security_headers(self.hosts.check(request.headers.get_all("Host")), tls)
        except HostRefused as refused:
            self._log_refused_host(refused)
            return _to_ws(text_response(refused.status, refused.reason, f"{refused}\n"),
                          security_headers(None, tls))
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if not self._origin_allowed(request.headers):
                return _to_ws(text_response(403, "Forbidden", "origin not allowed\n"), policy)
            return None  # let websockets do the upgrade (or answer 426 / 405 itself)
        if path == "/healthz":
            return _to_ws(self._healthz(request.method), policy)
        if path == "/metrics" and self.metrics is not None:
            return _to_ws(self._metrics_response(request), policy)
        return _to_ws(self.site.respond(request.method, request.path, request.headers), policy)

    def _log_refused_host(self, refused: HostRefused) -> None:
        now = time.monotonic()  # at most a line per 10 s: any page can make browsers knock
        if refused.host is not None and now - self._host_logged >= ORIGIN_LOG_INTERVAL:
            self._host_logged = now
            log.warning("refused Host %.80r; if that name is yours, add --server-name",
                        refused.host)

    def _origin_allowed(self, headers: Headers) -> bool:
        """Refuse WebSocket handshakes from foreign web pages (see :mod:`signaling.origin`)."""
        origins, hosts = headers.get_all("Origin"), headers.get_all("Host")
        origin = origins[0] if origins else None
        host = hosts[0] if len(hosts) == 1 else None
        if len(origins) <= 1 and self.origins.allows(origin, host):
            return True
        now = time.monotonic()
        if now - self._origin_logged >= ORIGIN_LOG_INTERVAL:
            self._origin_logged = now
            log.warning("refused a WebSocket from origin %.80r (Host %.80r); if that page is "
                        "yours, add --allowed-origin", origin, host)
        return False

    def _state(self) -> dict[str, object]:
        """What /healthz shows and /metrics reads: a snapshot that never waits."""
        rooms = self.registry.rooms()
        return {
            "rooms": len(self.registry),
            "members": self.registry.member_count,
            "clients": self.hub.client_count,
            "queued": sum(len(room.floor.queue) for room in rooms),
            "floors_held": sum(1 for room in rooms if room.floor.holder is not None),
            "media": self.media.stats(),  # a snapshot: never waits for a worker
            "webhooks": self.webhooks.by_host() if self.webhooks is not None else {},
        }

    def _metrics_response(self, request: Request) -> HttpResponse:
        assert self.metrics is not None
        token = self.config.metrics_token
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return text_response(401, "Unauthorized", "a bearer token is needed\n",
                                     extra=[("WWW-Authenticate", 'Bearer realm="metrics"')])
        if request.method not in ("GET", "HEAD"):
            return text_response(405, "Method Not Allowed", "method not allowed\n",
                                 extra=[("Allow", "GET, HEAD")])
        return text_response(200, "OK", self.metrics.exposition().decode(), CONTENT_TYPE,
                             head=request.method == "HEAD")

    def _healthz(self, method: str) -> HttpResponse:
        if method not in ("GET", "HEAD"):
            return text_response(405, "Method Not Allowed", "method not allowed\n",
                                 extra=[("Allow", "GET, HEAD")])
        state = self._state()
        body = {
            "status": "ok",
            "uptime_s": round(time.monotonic() - self._started, 1),
            "rooms": state["rooms"],
            "members": state["members"],
            "clients": state["clients"],
            "recording": self.recorder is not None,
            "media": state["media"],
        }
        if self.recorder is not None:
            body["recordings"] = self.recorder.stats.as_dict()
        status, reason = 200, "OK"
        if self.cluster is not None:
            body["cluster"] = cluster = self.cluster.health()
            if cluster["draining"]:  # a load balancer sends this node no new sockets
                body["status"], status, reason = "draining", 503, "Service Unavailable"
        return text_response(status, reason, json.dumps(body) + "\n", "application/json",
                             head=method == "HEAD")


def _to_ws(response: HttpResponse, extra: list[tuple[str, str]]) -> Response:
    headers = Headers(response.headers)
    headers.update(extra)
    return Response(response.status, response.reason, headers, response.body)


def _remote_ip(ws: ServerConnection) -> str:
    """The peer's IP address (the whole address if it is not an (ip, port) pair)."""
    address = ws.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address)
