"""Every ``walkie serve`` setting, defined and validated once.

The :class:`Config` dataclass *is* the table: each field is one setting, and its name gives
the flag (``max_users`` -> ``--max-users``) and the environment variable (``WALKIE_MAX_USERS``).
The field's metadata holds the rest: the parser that turns text into the typed value (and
refuses bad text), the help line, and any extra spelling of the flag. From that one table come
the command line (:func:`add_arguments`), the environment lookup and the frozen, typed value
that :mod:`walkie.serve` runs from (:func:`from_arguments`). A new setting is one new field.

Precedence: a flag beats its variable, which beats the default. An empty variable counts as
unset, so a systemd ``EnvironmentFile`` line such as ``WALKIE_TURN_URL=`` changes nothing.
Repeatable flags (``--turn-url``) read a comma-separated variable.

Validation happens before anything starts and ends in one :class:`ConfigError` line: first
each value on its own (its parser, naming the flag or variable the text came from), then the
rules between settings (:func:`_checked`), then the library configs' own checks
(``sfu.RouterConfig``, ``signaling.turn.TurnConfig``), built from the result exactly as the
server will build them.

Defaults come from the library configs wherever a setting is also a library knob
(``signaling.server.ServerConfig``, ``sfu.RouterConfig``, ``signaling.turn.TurnConfig``);
only what exists for the command line alone (workers, log level, TLS files...) has its
default written here. Why that direction and not library configs built from this table:
``sfu`` and ``signaling`` are libraries usable without walkie (README.md embeds ``sfu``), so
their defaults must stand on their own; ``walkie`` is the layer that depends on them, and
reading their defaults means an embedder and ``walkie serve`` cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfu import RouterConfig
from signaling.budgets import BudgetSettings
from signaling.cluster import store as cluster_store
from signaling.server import ServerConfig
from signaling.tokens import check_secret
from signaling.webhooks import check_url
from signaling.turn import MAX_TTL, TurnConfig, parse_ice_url

from .addresses import WILDCARDS, primary_address
from .parsers import (as_is, bind_address, days, http_url, ice_url, interval, ip_address,
                      key_prefix, log_format, log_level, node_id, origin, rate, redis_url,
                      seconds, server_name, switch_word, whole)

__all__ = ["ENV_PREFIX", "SETTINGS", "Config", "ConfigError", "Setting", "add_arguments",
           "env_name", "flag_name", "from_arguments", "load"]

#: Every variable is this prefix plus the setting's name in capitals.
ENV_PREFIX = "WALKIE_"
#: Shortest ``--turn-ttl``: a browser may gather relay candidates seconds after the join.
MIN_TURN_TTL = 60
MAX_WORKERS = 256
#: A join burst is this many seconds of the sustained join rate (2/s: bursts of 20).
JOIN_BURST_SECONDS = 10.0
_KEY = "walkie.setting"
#: Rooms of 15 one media worker takes in a cluster (docs/BENCHMARKS.md: 129 passed on one
#: core at the p99 bound; this keeps a quarter of a core for bursts and moved rooms).
ROOMS_PER_WORKER = 100
#: The shared --secret must be at least this long (e.g. `openssl rand -hex 32`).
MIN_SECRET_CHARS = 16
#: Recording (issue 12): a transmission longer than this is cut (and its file says so); with
#: the capture's byte bound (sfu/capture.py DEFAULT_MAX_BYTES, ~3 minutes of a browser's
#: Opus) it keeps one turn within one frame of the worker's control channel.
RECORD_MAX_SECONDS = 300.0
#: A limit where 0 means none.
_COUNT = whole(0, rule="must be 0 (unlimited) or more")


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line, naming the flag or variable."""


# -- the table --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Setting:
    """How one :class:`Config` field is spelled, read and explained."""

    name: str                          # the Config field
    help: str
    parse: Callable[[str], Any] | None  # None: a switch (the flag alone turns it on)
    repeatable: bool = False           # the flag may be given again; the variable is a list
    aliases: tuple[str, ...] = ()      # further spellings of the flag
    shown_default: str | None = None   # for the help, when the default value does not say it
    metavar: str | None = None
    default: Any = None

    @property
    def flag(self) -> str:
        return flag_name(self.name)

    @property
    def default_text(self) -> str | None:
        """The default as the help (and README.md's table) shows it; None: nothing to show."""
        if self.shown_default is not None:
            return self.shown_default
        if self.parse is None or self.repeatable or self.default is None:
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    @property
    def env(self) -> str:
        return env_name(self.name)


def _setting(default: Any, help: str, parse: Callable[[str], Any] | None = as_is, *,
             repeatable: bool = False, aliases: tuple[str, ...] = (),
             shown_default: str | None = None, metavar: str | None = None,
             secret: bool = False) -> Any:
    """One row of the table: a dataclass field carrying its :class:`Setting` (name added later)."""
    spec = Setting("", help, parse, repeatable, aliases, shown_default, metavar, default)
    return field(default=default, repr=not secret, metadata={_KEY: spec})


def _switch(help: str) -> Any:
    return _setting(False, help, None)


def _each(help: str, parse: Callable[[str], str], metavar: str) -> Any:
    return _setting((), help, parse, repeatable=True, metavar=metavar)


def _library_default(config: type, name: str) -> Any:
    """The default of a library config's field (slotted dataclasses have no class attribute)."""
    return next(f.default for f in dataclasses.fields(config) if f.name == name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The settings of one ``walkie serve``, checked; see the module docstring."""

    host: str = _setting(
        _library_default(ServerConfig, "host"),
        "HTTP/WebSocket bind address; localhost = 127.0.0.1, 0.0.0.0 for the LAN",
        bind_address)
    port: int = _setting(
        _library_default(ServerConfig, "port"),
        "HTTP/WebSocket port: the page, /ws and /healthz; 0 = ephemeral", whole(0, 65535))
    udp_port: int = _setting(
        _library_default(RouterConfig, "port"),
        "media UDP port, 0 = ephemeral", whole(0, 65535))
    udp_host: str | None = _setting(
        None, "media UDP bind address", bind_address, shown_default="same as --host")
    announced_ip: str | None = _setting(
        None, "address browsers are told to send media to: the public IP behind NAT", ip_address,
        shown_default="the UDP bind address, or this machine's primary address when binding "
                      "0.0.0.0")
    max_users: int = _setting(
        _library_default(ServerConfig, "max_users"), "members per room", whole(1, 65535))
    max_talk_time: float = _setting(
        _library_default(ServerConfig, "max_talk_time"),
        "seconds before the floor is revoked, 0 = unlimited", seconds)
    no_queue: bool = _switch(
        "deny floor requests while someone talks instead of queueing them")
    # -- a vanished talker (issue 9, "Floor after a vanished talker" in docs/SECURITY.md):
    # the end-of-media timer and the WebSocket keepalive, each freeing the floor within 5 s
    no_media_timeout: float = _setting(
        _library_default(ServerConfig, "no_media_timeout"),
        "seconds without the floor holder's audio before its floor is revoked (no_media), "
        "0 = never", seconds)
    ping_interval: float = _setting(
        _library_default(ServerConfig, "ping_interval"),
        "seconds between the server's WebSocket pings, 0 = none", seconds)
    ping_timeout: float = _setting(
        _library_default(ServerConfig, "ping_timeout"),
        "seconds a pong may take before the socket is dropped and its member leaves the room",
        seconds)
    # -- network handover (issue 12): a member whose socket died waits this long for its
    # page to resume it (signaling/holding.py, docs/PROTOCOL.md "resume")
    resume_grace: float = _setting(
        _library_default(ServerConfig, "resume_grace"),
        "seconds a member whose WebSocket died without a goodbye keeps its place (id, floor, "
        "queue) for its page to resume it, 0 = it leaves at once", seconds)
    turn_url: tuple[str, ...] = _each(
        "TURN server for browsers, e.g. turn:turn.example.org:3478 or "
        "turns:turn.example.org:5349?transport=tcp (repeatable; needs --turn-secret)",
        ice_url, "URL")
    stun_url: tuple[str, ...] = _each(
        "STUN server for browsers, e.g. stun:turn.example.org:3478 (repeatable)",
        ice_url, "URL")
    turn_secret: str | None = _setting(
        None, "coturn's static-auth-secret: each member gets short-lived TURN credentials "
              "made from it; the secret never leaves the server. Prefer the variable or "
              "--turn-secret-file: a command line is visible to every local user",
        metavar="SECRET", secret=True)
    turn_secret_file: str | None = _setting(
        None, "read the TURN secret from FILE", metavar="FILE")
    turn_ttl: int = _setting(
        _library_default(TurnConfig, "ttl"),
        "seconds a TURN credential can open new relays (relays already open keep working)",
        whole(MIN_TURN_TTL, MAX_TTL, f"must be {MIN_TURN_TTL}..{MAX_TTL} seconds"),
        metavar="SECONDS")
    force_relay: bool = _switch(
        "browsers send media only through the TURN relay (iceTransportPolicy relay): hides "
        "their addresses, proves the TURN path")
    tls_cert: str | None = _setting(
        None, "PEM certificate (chain): serve HTTPS/WSS on --port (browsers allow the "
              "microphone only on https:// or localhost); SIGHUP reloads it",
        aliases=("--cert",), metavar="FILE")
    tls_key: str | None = _setting(
        None, "PEM private key for --cert", aliases=("--key",), metavar="FILE")
    self_signed: bool = _switch(
        "serve HTTPS with a self-signed certificate for this machine's names and addresses, "
        "made once and cached (LAN tests)")
    cert_dir: str | None = _setting(
        None, "where --self-signed keeps its certificate", metavar="DIR",
        shown_default="$XDG_STATE_HOME/walkie/tls or ~/.local/state/walkie/tls")
    allowed_origin: tuple[str, ...] = _each(
        "also accept WebSockets from pages of ORIGIN, e.g. https://intranet.example.org "
        "(repeatable; the server's own origin is always accepted)", origin, "ORIGIN")
    # -- HTTP hardening (issue 9): the Host names served; any other Host gets 421, which
    # stops DNS rebinding (signaling/hosts.py, docs/SECURITY.md "HTTP").
    server_name: tuple[str, ...] = _each(
        "answer HTTP and WebSocket requests for NAME, e.g. walkie.example.org or "
        "*.example.org (repeatable); IP addresses, localhost and the names on the TLS "
        "certificate are always answered, any other Host gets 421", server_name, "NAME")
    workers: int = _setting(
        1, "media worker processes, one per core, each owning whole rooms on its own UDP "
           "port (--udp-port + i); one that dies is restarted on its port",
        whole(1, MAX_WORKERS, f"must be 1..{MAX_WORKERS}"), metavar="N")
    # -- media plane: per-peer uplink caps (issue 9, media hardening; sfu/uplinkcap.py says
    # why the defaults leave a browser's uplink untouched and hold a flood to a few times it)
    uplink_packet_rate: int = _setting(
        _library_default(RouterConfig, "uplink_packets_per_second"),
        "SRTP/SRTCP packets per second each peer may send (bursts of 100 more); a flood "
        "over it is dropped before decryption and counted",
        whole(1, 1_000_000, "must be 1..1000000 packets per second"), metavar="N")
    uplink_byte_rate: int = _setting(
        _library_default(RouterConfig, "uplink_bytes_per_second"),
        "SRTP/SRTCP bytes per second each peer may send (bursts of 64000 more)",
        whole(1000, 1_000_000_000, "must be 1000..1000000000 bytes per second"), metavar="N")
    # -- say-again (issue 12, replay): each room's last transmissions kept in memory by its
    #    media worker, one played again to a member who asks (sfu/replay.py; off by default:
    #    no audio is kept unless the operator turns it on)
    replay: float = _setting(
        0.0, "keep each room's transmissions in memory for SECONDS after they end, so that a "
             "member can hear one again (say-again; every member is told), 0 = keep no audio",
        interval(0, 3600), metavar="SECONDS")
    replay_max_bytes: int = _setting(
        _library_default(RouterConfig, "replay_bytes"),
        "Opus payload bytes each room keeps for --replay at most (the oldest go first)",
        whole(1024, 1 << 30, "must be 1024..1073741824 bytes"), metavar="N")
    # -- signaling budgets (issue 9: what one address may cost; docs/SECURITY.md). An IPv6
    #    address counts as its /64; 0 turns a limit off; bursts are a multiple of the rate.
    max_connections: int = _setting(
        _library_default(BudgetSettings, "max_connections"),
        "open WebSockets on the whole server, 0 = unlimited",
        _COUNT, metavar="N")
    max_connections_per_ip: int = _setting(
        _library_default(ServerConfig, "max_connections_per_ip"),
        "concurrent WebSockets from one address, 0 = unlimited (raise it behind a NAT that "
        "many users share)", _COUNT, metavar="N")
    join_rate_per_ip: float = _setting(
        _library_default(BudgetSettings, "join_rate"),
        f"joins per second from one address, sustained (bursts of {JOIN_BURST_SECONDS:g} s "
        "worth), 0 = unlimited", rate, metavar="R")
    rooms_per_ip: int = _setting(
        _library_default(BudgetSettings, "rooms_per_address"),
        "rooms created by one address that are still open, 0 = unlimited",
        _COUNT, metavar="N")
    message_rate_per_ip: float = _setting(
        _library_default(BudgetSettings, "message_rate"),
        "messages per second from one address, all its WebSockets together (bursts of twice "
        "that), 0 = unlimited", rate, metavar="R")
    byte_rate_per_ip: float = _setting(
        _library_default(BudgetSettings, "byte_rate"),
        "bytes per second of messages from one address (bursts of four times that), "
        "0 = unlimited", rate, metavar="R")
    join_timeout: float = _setting(
        _library_default(BudgetSettings, "join_timeout"),
        "seconds a WebSocket may stay open without joining a room, 0 = no limit", seconds,
        metavar="SECONDS")
    # -- operating (issue 11): Prometheus metrics at /metrics (signaling/metrics.py)
    metrics: bool = _switch(
        "serve Prometheus metrics at /metrics on --port (set --metrics-token on a public "
        "port)")
    metrics_token: str | None = _setting(
        None, "a scrape of /metrics must send 'Authorization: Bearer TOKEN' (implies "
              "--metrics); prefer the variable or --metrics-token-file",
        metavar="TOKEN", secret=True)
    metrics_token_file: str | None = _setting(
        None, "read the metrics token from FILE (implies --metrics)", metavar="FILE")
    # -- issue 11: tokens. Signed join links (signaling/tokens.py; `walkie token` makes them)
    token_secret: str | None = _setting(
        None, "every join needs a join token signed with SECRET (JWT HS256, at least 32 "
              "characters; `walkie token` prints links); rooms then take no passwords. Prefer "
              "the variable or --token-secret-file",
        metavar="SECRET", secret=True)
    token_secret_file: str | None = _setting(
        None, "read the token secret from FILE", metavar="FILE")
    # -- issue 11: webhooks (signaling/webhooks.py), signed JSON POSTs about rooms and talk
    webhook_url: tuple[str, ...] = _each(
        "POST signed JSON events (room_started, member_joined, transmission_started, ...) to "
        "URL (repeatable; needs --webhook-secret)", check_url, "URL")
    webhook_secret: str | None = _setting(
        None, "sign each webhook with HMAC-SHA256 under SECRET (X-Walkie-Signature); prefer "
              "the variable or --webhook-secret-file", metavar="SECRET", secret=True)
    webhook_secret_file: str | None = _setting(
        None, "read the webhook secret from FILE", metavar="FILE")
    # -- issue 12: recording (signaling/recorder.py). Off unless --record is given: no audio
    #    is ever kept otherwise. The media workers then keep each room's current turn.
    record: str | None = _setting(
        None, "write every transmission to DIR as an Ogg Opus file (room, talker, UTC start "
              "in its name) with an index.jsonl; every member is shown that the room is "
              "recorded", metavar="DIR")
    record_keep_days: float = _setting(
        _library_default(ServerConfig, "record_keep_days"),
        "days a recording is kept before the hourly sweep removes it (0 = forever)", days,
        metavar="DAYS")
    log_level: str = _setting(
        "info", "log verbosity: debug, info, warning or error", log_level, metavar="LEVEL")
    # -- issue 11: JSON logs (sfu/logs.py), also in the media workers
    log_format: str = _setting(
        "text", "text, or json: one JSON object per line (time, level, logger, message, "
                "conn: the WebSocket connection), in the media workers too", log_format,
        metavar="FORMAT")
    # -- cluster (issue 10): many nodes behind one URL, coordinated through Redis
    #    (docs/CLUSTER.md). Without --redis none of these matter and redis is never imported.
    redis: str | None = _setting(
        None, "join the cluster whose state is in this Redis: redis://[:password@]host[:port]"
              "[/db], or rediss:// for TLS (needs --secret; the URL is kept out of logs)",
        redis_url, metavar="URL", secret=True)
    node_id: str | None = _setting(
        None, "this node's id in the cluster (a-z, 0-9, '-', '_'; at most 64)", node_id,
        shown_default="12 random hex digits at each start", metavar="ID")
    redis_prefix: str = _setting(
        cluster_store.DEFAULT_PREFIX, "the start of every Redis key of this cluster (several "
        "clusters can share one Redis)", key_prefix, metavar="PREFIX")
    heartbeat: float = _setting(
        cluster_store.DEFAULT_HEARTBEAT, "seconds between writes of this node's record",
        interval(0.05, 60), metavar="SECONDS")
    node_ttl: float = _setting(
        cluster_store.DEFAULT_NODE_TTL, "seconds a node's record lives without a heartbeat: "
        "a node silent that long is dead and its rooms are placed again",
        interval(0.1, 600), metavar="SECONDS")
    drain_timeout: float = _setting(
        60.0, "on SIGTERM, seconds to move rooms at a quiet moment (floor idle) before the "
              "rest are moved anyway", seconds, metavar="SECONDS")
    advertise_url: str | None = _setting(
        None, "this node's own signaling URL, shown to operators (walkie nodes)", http_url,
        shown_default="http(s)://--host:--port", metavar="URL")
    room_capacity: int | None = _setting(
        None, "rooms this node takes in a cluster", whole(1, 1_000_000, "must be 1..1000000"),
        shown_default=f"--workers x {ROOMS_PER_WORKER}", metavar="N")
    secret: str | None = _setting(
        None, "secret shared by every node of a cluster: room password keys are derived "
              f"with it (at least {MIN_SECRET_CHARS} characters; prefer the variable or "
              "--secret-file)", metavar="SECRET", secret=True)
    secret_file: str | None = _setting(
        None, "read the shared --secret from FILE", metavar="FILE")

    # -- what the settings mean for the libraries (the one place that maps them) ----------

    @property
    def media_host(self) -> str:
        """The media plane's bind address."""
        return self.udp_host or self.host

    def router_config(self) -> RouterConfig:
        """The media plane's config (worker ``i`` of ``--workers`` adds ``i`` to the port)."""
        return RouterConfig(host=self.media_host, port=self.udp_port,
                            announced_ip=self.announced_ip,
                            uplink_packets_per_second=self.uplink_packet_rate,
                            uplink_bytes_per_second=self.uplink_byte_rate,
                            replay_seconds=self.replay, replay_bytes=self.replay_max_bytes,
                            capture_seconds=RECORD_MAX_SECONDS if self.record else 0.0,
                            record=bool(self.record))

    def turn_config(self) -> TurnConfig | None:
        """The browsers' ICE servers, or None for none."""
        urls = self.stun_url + self.turn_url
        return TurnConfig(urls, self.turn_secret or None, self.turn_ttl) if urls else None

    def server_config(self, tls: ssl.SSLContext | None = None,
                      certificate_names: tuple[str, ...] = ()) -> ServerConfig:
        """The signaling server's config; ``tls`` serves HTTPS/WSS for
        ``certificate_names`` (answered like ``--server-name``)."""
        return ServerConfig(
            host=self.host,
            port=self.port,
            max_users=self.max_users,
            max_talk_time=self.max_talk_time or None,
            queue=not self.no_queue,
            no_media_timeout=self.no_media_timeout or None,
            ping_interval=self.ping_interval or None,
            ping_timeout=self.ping_timeout,
            resume_grace=self.resume_grace,
            turn=self.turn_config(),
            ssl=tls,
            allowed_origins=self.allowed_origin,
            server_names=self.server_name + certificate_names,
            force_relay=self.force_relay,
            max_connections_per_ip=self.max_connections_per_ip,
            budgets=self.budget_settings(),
            room_secret=self.room_secret,
            metrics=self.metrics or self.metrics_token is not None,
            metrics_token=self.metrics_token,
            token_secret=self.token_secret,
            webhook_urls=self.webhook_url,
            webhook_secret=self.webhook_secret,
            replay_seconds=self.replay or None,
            record_dir=Path(self.record) if self.record else None,
            record_keep_days=self.record_keep_days,
        )

    @property
    def rooms_capacity(self) -> int:
        """Rooms this node takes in a cluster: ``--room-capacity``, else per worker."""
        return self.room_capacity or self.workers * ROOMS_PER_WORKER

    @property
    def room_secret(self) -> bytes | None:
        """The shared secret room password keys are derived with (None: a random one per
        process, fine for a single node)."""
        return self.secret.encode() if self.secret else None

    def budget_settings(self) -> BudgetSettings:
        """The signaling budgets (bursts follow from the rates)."""
        return BudgetSettings(
            max_connections=self.max_connections,
            message_rate=self.message_rate_per_ip, message_burst=2 * self.message_rate_per_ip,
            byte_rate=self.byte_rate_per_ip, byte_burst=4 * self.byte_rate_per_ip,
            join_rate=self.join_rate_per_ip,
            join_burst=JOIN_BURST_SECONDS * self.join_rate_per_ip,
            rooms_per_address=self.rooms_per_ip,
            join_timeout=self.join_timeout,
        )


#: The table, in ``--help`` order.
SETTINGS: tuple[Setting, ...] = tuple(
    dataclasses.replace(f.metadata[_KEY], name=f.name) for f in dataclasses.fields(Config))


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


# -- reading flags and variables ----------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting's flag to ``parser``. Values stay text (None when absent): parsing
    and checking happen in :func:`from_arguments`, the same way for flags and variables."""
    for s in SETTINGS:
        if s.parse is None:
            kwargs: dict[str, Any] = {"action": "store_const", "const": "1"}
        else:
            kwargs = {"action": "append" if s.repeatable else "store", "metavar": s.metavar}
        parser.add_argument(s.flag, *s.aliases, dest=s.name, default=None,
                            help=_help(s).replace("%", "%%"), **kwargs)


def _help(s: Setting) -> str:
    shown = s.default_text
    text = s.help + (f" (default: {shown})" if shown else "")
    if s.parse is None:
        return f"{text} [{s.env}=1]"
    return f"{text} [{s.env}{', comma-separated' if s.repeatable else ''}]"


def from_arguments(args: argparse.Namespace | Mapping[str, Any],
                   environ: Mapping[str, str]) -> Config:
    """The checked :class:`Config` from parsed flags (see :func:`add_arguments`) and the
    environment; raises :class:`ConfigError`."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    values: dict[str, Any] = {}
    for s in SETTINGS:
        flag_value = given.get(s.name)
        if flag_value is not None:
            values[s.name] = _read(s, flag_value, s.flag)
        elif environ.get(s.env):
            values[s.name] = _read(s, environ[s.env], s.env)
    return _checked(Config(**values))


def load(argv: list[str], environ: Mapping[str, str]) -> Config:
    """``walkie serve ARGV`` under ``environ``: the checked :class:`Config`."""
    parser = argparse.ArgumentParser(prog="walkie serve")
    add_arguments(parser)
    return from_arguments(parser.parse_args(argv), environ)


def _read(s: Setting, raw: str | list[str], source: str) -> Any:
    """One setting's value from a flag's text (a list for a repeated flag) or a variable."""
    try:
        if s.parse is None:
            return switch_word(str(raw))
        if s.repeatable:
            items = raw.split(",") if isinstance(raw, str) else raw
            return tuple(s.parse(item.strip()) for item in items if item.strip())
        text = str(raw)
        return s.parse(text) if text or s.default is not None else None
    except ValueError as exc:
        raise ConfigError(f"{source} {exc}") from None


# -- rules between settings ---------------------------------------------------------------------

def _checked(config: Config) -> Config:
    """``config`` with the TURN secret read and the announced address found, or ConfigError."""
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together (also spelled --cert and --key)")
    if config.self_signed and config.tls_cert:
        raise ConfigError("--self-signed and --cert/--key exclude each other")
    if any(parse_ice_url(u).is_turn for u in config.stun_url):
        raise ConfigError("--stun-url takes stun: URLs; give turn: URLs to --turn-url")
    secret = _secret(config.turn_secret, config.turn_secret_file, "--turn-secret")
    if secret and not config.turn_url:
        raise ConfigError("--turn-secret needs at least one --turn-url")
    if config.force_relay and not any(parse_ice_url(u).is_turn for u in config.turn_url):
        raise ConfigError("--force-relay needs a turn: URL in --turn-url (and --turn-secret)")
    if config.udp_port and config.udp_port + config.workers - 1 > 65535:
        raise ConfigError(f"--udp-port {config.udp_port} leaves no room for "
                          f"{config.workers} workers")
    if 0 < config.no_media_timeout < 1:
        raise ConfigError("--no-media-timeout must be 0 (never) or at least 1 second: the media "
                          "plane reports a holder silent after 1 s without audio")
    if config.ping_interval and not config.ping_timeout:
        raise ConfigError("--ping-timeout must be above 0 while --ping-interval is on")
    shared = _secret(config.secret, config.secret_file, "--secret")
    if shared and len(shared) < MIN_SECRET_CHARS:
        raise ConfigError(f"--secret must be at least {MIN_SECRET_CHARS} characters "
                          "(e.g. the output of `openssl rand -hex 32`)")
    if config.redis and not shared:
        raise ConfigError("--redis needs --secret or --secret-file: every node of a cluster "
                          "must derive the same room password keys")
    if config.node_ttl < 2 * config.heartbeat:
        raise ConfigError("--node-ttl must be at least twice --heartbeat: one late heartbeat "
                          "must not make a live node look dead")
    announced = config.announced_ip
    if announced is None and config.media_host in WILDCARDS:
        announced = primary_address()
        if announced is None:
            raise ConfigError(
                f"--udp-host {config.media_host} needs --announced-ip: browsers cannot send "
                f"to {config.media_host} and no primary address could be found")
    token = _secret(config.metrics_token, config.metrics_token_file, "--metrics-token")
    config = dataclasses.replace(config, turn_secret=secret, secret=shared,
                                 announced_ip=announced, metrics_token=token or None,
                                 token_secret=read_token_secret(config),
                                 webhook_secret=_webhook_secret(config))
    try:  # the libraries' own checks, on exactly what the server will be given
        config.router_config()
        config.turn_config()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config


def read_token_secret(config: Any) -> str | None:
    """The join-token secret of ``--token-secret`` or ``--token-secret-file`` (issue 11),
    checked (``walkie token`` reads it the same way), or None: no tokens."""
    secret = _secret(config.token_secret, config.token_secret_file, "--token-secret")
    if secret:
        try:
            check_secret(secret)
        except ValueError as exc:
            raise ConfigError(f"--token-secret: {exc}") from None
    return secret or None


def _webhook_secret(config: Config) -> str | None:
    """The webhook signing secret (issue 11): needed by --webhook-url, useless without it."""
    secret = _secret(config.webhook_secret, config.webhook_secret_file, "--webhook-secret")
    if config.webhook_url and not secret:
        raise ConfigError("--webhook-url needs --webhook-secret (or --webhook-secret-file): "
                          "receivers must be able to tell our events from forged ones")
    if secret and not config.webhook_url:
        raise ConfigError("--webhook-secret needs at least one --webhook-url")
    return secret or None


def _secret(given: str | None, path: str | None, flag: str) -> str | None:
    """A secret given as ``flag`` or read from the file of ``flag``-file (not both)."""
    if not path:
        return given
    if given:
        raise ConfigError(f"{flag} and {flag}-file exclude each other")
    try:
        secret = Path(path).read_text().strip()  # `echo secret > file` adds a newline
    except OSError as exc:
        raise ConfigError(f"cannot read {flag}-file: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"{flag}-file is empty")
    return secret
