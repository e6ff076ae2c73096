"""``walkie serve``: run the media plane and the signaling server from a :class:`Config`.

What happens around the two libraries: HTTPS (certificate files, or the cached self-signed
one, and SIGHUP to re-read them), signals (SIGINT/SIGTERM stop cleanly), the lines that tell
the operator where to point browsers, and a warning when other devices would be refused the
microphone. A node of a cluster (``--redis``) drains on SIGTERM: its rooms move to other
nodes before it stops (signaling/cluster/drain.py). Where media runs is decided in one place, :func:`start_media`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import ssl
import sys
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sfu
from sfu import logs
from sfu.logs import LOG_FORMAT_ENV
from signaling import tls
from signaling.cluster import ClusterError
from signaling.cluster.store import redacted
from signaling.hosts import parse_server_name
from signaling.logcontext import ConnectionFilter
from signaling.server import SignalingServer
from signaling.tls import CertificateError

from .addresses import WILDCARDS, is_loopback, primary_address
from .config import Config

__all__ = ["run", "serve", "setup_logging", "start_media"]

log = logging.getLogger("walkie")

#: What :func:`start_media` returns: the media plane API that signaling uses, plus the
#: addresses and ``close()`` that running it needs.
Media = sfu.Router | sfu.WorkerPool


def run(config: Config) -> int:
    """Log at ``config.log_level`` and serve until SIGINT/SIGTERM; the process exit status."""
    setup_logging(config)
    try:
        _run_loop(serve(config))
    except (OSError, CertificateError, ClusterError) as exc:
        print(f"walkie: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def setup_logging(config: Config) -> None:
    """``--log-level`` and ``--log-format`` for this process and its media workers.

    JSON lines carry the WebSocket connection id of the session being handled
    (signaling/logcontext.py); the workers inherit the format through the environment
    (sfu/logs.py). websockets' own loggers stay at WARNING or above: at INFO they log every
    plain HTTP response (noise), at DEBUG every frame, which would put join tokens and
    passwords in the log.
    """
    os.environ[LOG_FORMAT_ENV] = config.log_format  # read by each worker as it starts
    logs.configure(config.log_level.upper(), config.log_format, filters=(ConnectionFilter(),))
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is a Linux-only dependency
        asyncio.run(main)
    else:
        uvloop.run(main)


async def start_media(config: Config) -> Media:
    """The media plane for ``config``: ``--workers`` worker processes on consecutive UDP
    ports (one by default), so that no signaling load can delay a packet and a crashed
    worker is restarted. The only place that decides where media runs (embedders who want
    it in-process use ``sfu.Router`` with ``signaling.server`` directly)."""
    return await sfu.WorkerPool.start(config.workers, config.router_config())


async def serve(config: Config, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None,
                drain: asyncio.Event | None = None) -> None:
    """Run media plane and signaling until SIGINT/SIGTERM (or ``stop`` is set).

    A cluster node (``--redis``) drains on the first SIGTERM (``drain`` set, in tests):
    its rooms move to other nodes at a quiet moment, within ``--drain-timeout``, and its
    sockets close with 1012; a second SIGTERM, or SIGINT, stops at once. SIGHUP re-reads the certificate files (e.g. after a Let's Encrypt renewal): new
    connections get the new certificate, open ones are not touched. ``ready`` is set once
    the start-up lines are printed.
    """
    https = _https(config)
    stop = stop or asyncio.Event()
    drain = drain or asyncio.Event()
    loop = asyncio.get_running_loop()

    def terminate() -> None:  # SIGTERM: drain a cluster node; stop a single server (or a second)
        (stop if drain.is_set() or not config.redis else drain).set()

    # SIGHUP is always handled: `systemctl reload` must never kill a server by accident.
    handlers = {signal.SIGINT: stop.set, signal.SIGTERM: terminate,
                signal.SIGHUP: lambda: _reload_certificate(https)}
    installed = []
    for signum, handler in handlers.items():
        try:
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    media = await start_media(config)
    server = None
    node = None
    try:
        server = await SignalingServer.start(
            config.server_config(https.context, https.names), media)
        lines = _startup_lines(config, server, media, https)
        if config.redis:
            node = await _join_cluster(config, server, media)
            lines.append(f"walkie: cluster node {node.node_id} (Redis {redacted(config.redis)}, "
                         f"{config.rooms_capacity} rooms at most)")
        for line in lines:
            print(line, flush=True)
        if ready is not None:
            ready.set()
        await _first(stop.wait(), drain.wait())
        if node is not None and drain.is_set() and not stop.is_set():
            log.info("SIGTERM: draining this node (a second SIGTERM or SIGINT stops at once)")
            await _first(stop.wait(), node.drain(config.drain_timeout))
        log.info("shutting down")
    finally:
        if node is not None:
            await node.close()
        if server is not None:
            await server.close()
        await media.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until one of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:  # a drain that failed must say why
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("draining failed", exc_info=task.exception())


async def _join_cluster(config: Config, server: SignalingServer, media: Media) -> Any:
    """``--redis``: this server becomes a node of the cluster (signaling/cluster/node.py).
    Imported here: a single server never loads the cluster's bridge, nor ``redis``."""
    from signaling.cluster.node import ClusterNode, NodeSettings

    settings = NodeSettings(
        redis_url=config.redis or "", node_id=config.node_id, prefix=config.redis_prefix,
        heartbeat=config.heartbeat, node_ttl=config.node_ttl,
        advertise_url=config.advertise_url or server.url.rstrip("/"),
        room_capacity=config.rooms_capacity)
    return await ClusterNode.start(settings, server, media)


@dataclass(frozen=True, slots=True)
class _Https:
    """The TLS side of the server: None everywhere for plain HTTP."""

    context: ssl.SSLContext | None = None
    cert: str | None = None
    key: str | None = None
    lines: tuple[str, ...] = ()  # what to tell the operator about the certificate
    names: tuple[str, ...] = ()  # the certificate's DNS names: Host names served


def _https(config: Config) -> _Https:
    """Load the certificate files, or make/reuse the self-signed certificate."""
    if config.self_signed:
        names = tls.local_names(config.host, config.announced_ip, config.media_host,
                                primary_address())
        directory = Path(config.cert_dir) if config.cert_dir else tls.default_cert_dir()
        info = tls.ensure_self_signed(directory, names)
        cert, key = str(info.cert_path), str(info.key_path)
        return _Https(tls.server_context(cert, key), cert, key, _self_signed_lines(info),
                      _dns_names(info.names))
    if config.tls_cert and config.tls_key:
        context = tls.server_context(config.tls_cert, config.tls_key)
        _, covered, not_after = tls.describe(config.tls_cert)
        line = (f"walkie: TLS certificate {config.tls_cert} for {', '.join(covered)}"
                f" (valid until {not_after:%Y-%m-%d}; SIGHUP reloads it)")
        return _Https(context, config.tls_cert, config.tls_key, (line,), _dns_names(covered))
    return _Https()


def _dns_names(covered: Iterable[str]) -> tuple[str, ...]:
    """The host names (not addresses) of a certificate that the Host check can take: a
    browser that trusts the certificate for a name may send that name (signaling/hosts.py)."""
    names = []
    for name in covered:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            try:
                names.append(parse_server_name(name))
            except ValueError:
                continue
    return tuple(names)


def _startup_lines(config: Config, server: SignalingServer, media: Media,
                   https: _Https) -> list[str]:
    """The URL to open, where media goes, the certificate, ICE servers and origins."""
    ports = [port for _, port in getattr(media, "addresses", [media.address])]
    udp = f"{media.address[0]}:{ports[0]}"
    if len(ports) > 1:
        udp += f"-{ports[-1]}" if ports == list(range(ports[0], ports[-1] + 1)) else (
            "," + ",".join(map(str, ports[1:])))
        udp += f" ({len(ports)} workers)"
    url = server.url
    if config.host in WILDCARDS:
        # Nobody can open http://0.0.0.0/: show the address browsers are given for media.
        scheme = "https" if https.context else "http"
        url = f"{scheme}://{media.announced_ip}:{server.address[1]}/"
    lines = [f"walkie: open {url}  (media: udp {udp}, announced as {media.announced_ip})",
             *https.lines]
    if https.context is None and not is_loopback(config.host):
        lines.append(f"walkie: WARNING: plain HTTP on {config.host}: browsers on other "
                     "devices will refuse the microphone (they allow it only on https:// "
                     "pages and localhost). Use --cert/--key, or --self-signed for a LAN test.")
    turn = server.config.turn
    if turn is not None:
        relay = "; relay forced" if config.force_relay else ""
        lines.append(f"walkie: ICE servers for browsers: {', '.join(turn.urls)} "
                     f"(TURN credentials valid {turn.ttl} s{relay})")
    lines.append(f"walkie: answers to IP addresses and {', '.join(server.hosts.names)} "
                 "(any other Host gets 421; --server-name adds a name)")
    if config.record:
        kept = (f"kept {config.record_keep_days:g} days" if config.record_keep_days
                else "kept until removed by hand")
        lines.append(f"walkie: RECORDING every transmission to {config.record} ({kept}); "
                     "members are shown that their room is recorded")
    if server.origins.allowed:
        lines.append(f"walkie: WebSockets accepted from this server's pages and from "
                     f"{', '.join(server.origins.allowed)}")
    return lines


def _self_signed_lines(info: tls.CertInfo) -> tuple[str, ...]:
    state = "made" if info.created else "reused"
    return (
        f"walkie: self-signed certificate ({state}) for {', '.join(info.names)}",
        f"walkie:   SHA-256 {info.fingerprint}",
        f"walkie:   {info.cert_path} (valid until {info.not_after:%Y-%m-%d})",
        "walkie:   each browser warns once: check that the certificate it shows has this "
        "SHA-256 fingerprint, then proceed; or install the file as trusted "
        "(docs/DEPLOY.md, \"LAN test\")",
    )


def _reload_certificate(https: _Https) -> None:
    """SIGHUP: load the certificate files again; on any error keep serving the old one."""
    if https.context is None or https.cert is None:
        log.info("SIGHUP: plain HTTP, no certificate to reload")
        return
    try:
        https.context.load_cert_chain(https.cert, https.key)
        fingerprint = tls.describe(https.cert)[0]
    except (OSError, ValueError) as exc:
        log.error("certificate reload failed, still serving the old one: %s", exc)
        return
    log.info("reloaded the TLS certificate %s (SHA-256 %s)", https.cert, fingerprint)
