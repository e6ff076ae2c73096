"""``walkie``: the command line. ``walkie serve`` runs signaling in this process and media in
``--workers N`` worker processes (``sfu.WorkerPool``).

Every ``serve`` flag has an environment variable (``WALKIE_<FLAG>``, e.g. ``WALKIE_PORT``)
so that containers and systemd units need no command line; a flag beats its variable.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from . import tls
from .origin import parse_origin
from .tls import CertificateError
from .turn import MAX_TTL, TurnConfig, parse_ice_url

__all__ = ["build_parser", "main", "serve"]

log = logging.getLogger("walkie")

#: Shortest ``--turn-ttl``: a browser may gather relay candidates seconds after the join.
MIN_TURN_TTL = 60


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get("WALKIE_" + name, default)


def _env_flag(name: str) -> bool:
    return (os.environ.get("WALKIE_" + name) or "").lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walkie", description="Browser push-to-talk walkie-talkie with its own WebRTC SFU."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the server (signaling here, media in worker processes)")
    s.add_argument("--host", default=_env("HOST", "localhost"),
                   help="HTTP/WebSocket bind address (default localhost = 127.0.0.1; "
                        "0.0.0.0 for the LAN) [WALKIE_HOST]")
    s.add_argument("--port", type=int, default=int(_env("PORT", "8080") or 8080),
                   help="HTTP/WebSocket port (default 8080) [WALKIE_PORT]")
    s.add_argument("--udp-port", type=int, default=int(_env("UDP_PORT", "40000") or 40000),
                   help="media UDP port, 0 = ephemeral (default 40000) [WALKIE_UDP_PORT]")
    s.add_argument("--udp-host", default=_env("UDP_HOST", None),
                   help="media UDP bind address (default: same as --host) [WALKIE_UDP_HOST]")
    s.add_argument("--announced-ip", default=_env("ANNOUNCED_IP", None),
                   help="address browsers are told to send media to (public IP behind NAT; "
                        "default: the UDP bind address, or this machine's primary address "
                        "when binding 0.0.0.0) [WALKIE_ANNOUNCED_IP]")
    s.add_argument("--max-users", type=int, default=int(_env("MAX_USERS", "15") or 15),
                   help="members per room (default 15) [WALKIE_MAX_USERS]")
    s.add_argument("--max-talk-time", type=float,
                   default=float(_env("MAX_TALK_TIME", "60") or 60),
                   help="seconds before the floor is revoked, 0 = unlimited (default 60) "
                        "[WALKIE_MAX_TALK_TIME]")
    s.add_argument("--no-queue", action="store_true", default=_env_flag("NO_QUEUE"),
                   help="deny floor requests while someone talks instead of queueing them "
                        "[WALKIE_NO_QUEUE=1]")
    s.add_argument("--turn-url", action="append", default=None, metavar="URL",
                   help="TURN server for browsers, e.g. turn:turn.example.org:3478 or "
                        "turns:turn.example.org:5349?transport=tcp (repeatable; needs "
                        "--turn-secret) [WALKIE_TURN_URL, comma-separated]")
    s.add_argument("--stun-url", action="append", default=None, metavar="URL",
                   help="STUN server for browsers, e.g. stun:turn.example.org:3478 "
                        "(repeatable) [WALKIE_STUN_URL, comma-separated]")
    s.add_argument("--turn-secret", default=_env("TURN_SECRET", None), metavar="SECRET",
                   help="coturn's static-auth-secret: each member gets short-lived TURN "
                        "credentials made from it; the secret never leaves the server. "
                        "Prefer the variable or --turn-secret-file: a command line is "
                        "visible to every local user [WALKIE_TURN_SECRET]")
    s.add_argument("--turn-secret-file", default=_env("TURN_SECRET_FILE", None),
                   metavar="FILE", help="read the TURN secret from FILE "
                                        "[WALKIE_TURN_SECRET_FILE]")
    s.add_argument("--turn-ttl", type=int, default=int(_env("TURN_TTL", "3600") or 3600),
                   metavar="SECONDS",
                   help="how long a TURN credential can open new relays (default 3600; "
                        "relays already open keep working) [WALKIE_TURN_TTL]")
    s.add_argument("--force-relay", action="store_true", default=_env_flag("FORCE_RELAY"),
                   help="browsers send media only through the TURN relay (iceTransportPolicy "
                        "relay): hides their addresses, proves the TURN path "
                        "[WALKIE_FORCE_RELAY=1]")
    s.add_argument("--cert", "--tls-cert", dest="tls_cert", metavar="FILE",
                   default=_env("TLS_CERT", None),
                   help="PEM certificate (chain): serve HTTPS/WSS on --port (browsers allow "
                        "the microphone only on https:// or localhost); SIGHUP reloads it "
                        "[WALKIE_TLS_CERT]")
    s.add_argument("--key", "--tls-key", dest="tls_key", metavar="FILE",
                   default=_env("TLS_KEY", None),
                   help="PEM private key for --cert [WALKIE_TLS_KEY]")
    s.add_argument("--self-signed", action="store_true", default=_env_flag("SELF_SIGNED"),
                   help="serve HTTPS with a self-signed certificate for this machine's names "
                        "and addresses, made once and cached (LAN tests) "
                        "[WALKIE_SELF_SIGNED=1]")
    s.add_argument("--cert-dir", default=_env("CERT_DIR", None), metavar="DIR",
                   help="where --self-signed keeps its certificate (default "
                        "$XDG_STATE_HOME/walkie/tls or ~/.local/state/walkie/tls) "
                        "[WALKIE_CERT_DIR]")
    s.add_argument("--allowed-origin", action="append", default=None, metavar="ORIGIN",
                   help="also accept WebSockets from pages of ORIGIN, e.g. "
                        "https://intranet.example.org (repeatable; the server's own origin "
                        "is always accepted) [WALKIE_ALLOWED_ORIGIN, comma-separated]")
    s.add_argument("--workers", type=int, default=int(_env("WORKERS", "1") or 1), metavar="N",
                   help="media worker processes, one per core, each owning whole rooms on its "
                        "own UDP port (--udp-port + i); a worker that dies is restarted on its "
                        "port (default 1) [WALKIE_WORKERS]")
    s.add_argument("--max-connections-per-ip", type=int,
                   default=int(_env("MAX_CONNECTIONS_PER_IP", "64") or 64), metavar="N",
                   help="concurrent WebSockets from one address, 0 = unlimited (default 64; "
                        "raise it behind a NAT that many users share) "
                        "[WALKIE_MAX_CONNECTIONS_PER_IP]")
    s.add_argument("--log-level", default=_env("LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"],
                   help="log verbosity (default info) [WALKIE_LOG_LEVEL]")

    b = sub.add_parser("bench", help="load benchmark (arguments go to the bench tool)",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "bench":
        return _bench(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        # TurnConfig's own checks (a turn: URL needs the secret), before anything starts.
        _turn_config(**{k: settings[k] for k in _TURN_KEYS})  # type: ignore[arg-type]
    except ValueError as exc:
        print(f"walkie: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every plain HTTP response at INFO; that is noise next to ours.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        _run(serve(**settings))
    except (OSError, CertificateError) as exc:
        print(f"walkie: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(coro: object) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


def _settings(args: argparse.Namespace) -> dict[str, object]:
    """Turn flags into the arguments of :func:`serve`, refusing contradictions early."""
    host = "127.0.0.1" if args.host == "localhost" else args.host
    udp_host = args.udp_host or host
    if udp_host == "localhost":
        udp_host = "127.0.0.1"
    announced = args.announced_ip
    if announced is None and udp_host in ("0.0.0.0", "::"):
        announced = _primary_address()
        if announced is None:
            raise ValueError(
                f"--udp-host {udp_host} needs --announced-ip: browsers cannot send to "
                f"{udp_host} and no primary address could be found"
            )
    for name, value, low in (("--port", args.port, 0), ("--udp-port", args.udp_port, 0),
                             ("--max-users", args.max_users, 1)):
        if not low <= value <= 65535:
            raise ValueError(f"{name} {value} is out of range")
    if args.max_talk_time < 0:
        raise ValueError("--max-talk-time must be >= 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together (also spelled --cert and --key)")
    if args.self_signed and args.tls_cert:
        raise ValueError("--self-signed and --cert/--key exclude each other")
    turn_urls = _url_list(args.turn_url, "TURN_URL")
    stun_urls = _url_list(args.stun_url, "STUN_URL")
    for url in turn_urls + stun_urls:
        parse_ice_url(url)  # a typo here would only show as a browser with no relay
    if any(parse_ice_url(u).is_turn for u in stun_urls):
        raise ValueError("--stun-url takes stun: URLs; give turn: URLs to --turn-url")
    secret = args.turn_secret
    if args.turn_secret_file:
        if secret:
            raise ValueError("--turn-secret and --turn-secret-file exclude each other")
        try:
            secret = Path(args.turn_secret_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read --turn-secret-file: {exc.strerror}") from None
        if not secret:
            raise ValueError("--turn-secret-file is empty")
    if secret and not turn_urls:
        raise ValueError("--turn-secret needs at least one --turn-url")
    if not MIN_TURN_TTL <= args.turn_ttl <= MAX_TTL:
        raise ValueError(f"--turn-ttl must be {MIN_TURN_TTL}..{MAX_TTL} seconds")
    if args.force_relay and not any(parse_ice_url(u).is_turn for u in turn_urls):
        raise ValueError("--force-relay needs a turn: URL in --turn-url (and --turn-secret)")
    origins = _url_list(args.allowed_origin, "ALLOWED_ORIGIN")
    for origin in origins:
        parse_origin(origin)
    if args.max_connections_per_ip < 0:
        raise ValueError("--max-connections-per-ip must be 0 (unlimited) or more")
    if not 1 <= args.workers <= 256:
        raise ValueError("--workers must be 1..256")
    if args.udp_port and args.udp_port + args.workers - 1 > 65535:
        raise ValueError(f"--udp-port {args.udp_port} leaves no room for {args.workers} workers")
    import sfu  # the media plane's own checks (announced address, port), before anything starts

    sfu.RouterConfig(host=udp_host, port=args.udp_port, announced_ip=announced)
    return {
        "host": host,
        "port": args.port,
        "udp_host": udp_host,
        "udp_port": args.udp_port,
        "announced_ip": announced,
        "max_users": args.max_users,
        "max_talk_time": args.max_talk_time or None,
        "queue": not args.no_queue,
        "turn_urls": turn_urls,
        "turn_secret": secret,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "stun_urls": stun_urls,
        "turn_ttl": args.turn_ttl,
        "force_relay": args.force_relay,
        "allowed_origins": origins,
        "self_signed": args.self_signed,
        "cert_dir": args.cert_dir,
        "max_connections_per_ip": args.max_connections_per_ip,
        "workers": args.workers,
    }


def _url_list(values: list[str] | None, env_name: str) -> tuple[str, ...]:
    """A repeatable flag's values, or its comma-separated environment variable."""
    if values is None:
        values = (_env(env_name, "") or "").split(",")
    return tuple(v.strip() for v in values if v.strip())


def _primary_address() -> str | None:
    """This machine's address on its default route.

    ``connect()`` on a UDP socket only consults the routing table; no packet is sent.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never actually contacted
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("0.") else address


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    udp_host: str = "127.0.0.1",
    udp_port: int = 40000,
    announced_ip: str | None = None,
    max_users: int = 15,
    max_talk_time: float | None = 60.0,
    queue: bool = True,
    turn_urls: tuple[str, ...] = (),
    turn_secret: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    stun_urls: tuple[str, ...] = (),
    turn_ttl: int = 3600,
    force_relay: bool = False,
    allowed_origins: tuple[str, ...] = (),
    self_signed: bool = False,
    cert_dir: str | None = None,
    max_connections_per_ip: int = 64,
    workers: int = 1,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run signaling here and the media plane in ``workers`` processes until SIGINT/SIGTERM
    (or ``stop`` is set).

    SIGHUP re-reads the certificate files (e.g. after a Let's Encrypt renewal): new
    connections get the new certificate, open ones are not touched.
    """
    import sfu

    from .server import ServerConfig, SignalingServer

    turn_config = _turn_config(turn_urls, stun_urls, turn_secret, turn_ttl)
    cert_lines: list[str] = []
    if self_signed:
        names = tls.local_names(host, announced_ip, udp_host, _primary_address())
        directory = Path(cert_dir) if cert_dir else tls.default_cert_dir()
        info = tls.ensure_self_signed(directory, names)
        tls_cert, tls_key = str(info.cert_path), str(info.key_path)
        cert_lines = _self_signed_lines(info)
    ssl_context = None
    if tls_cert and tls_key:
        ssl_context = tls.server_context(tls_cert, tls_key)
        if not self_signed:
            fingerprint, names_in_cert, not_after = tls.describe(tls_cert)
            cert_lines = [f"walkie: TLS certificate {tls_cert} for {', '.join(names_in_cert)}"
                          f" (valid until {not_after:%Y-%m-%d}; SIGHUP reloads it)"]

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP is always handled: `systemctl reload` must never kill a server by accident.
    handlers = {signal.SIGINT: stop.set, signal.SIGTERM: stop.set,
                signal.SIGHUP: lambda: _reload_certificate(ssl_context, tls_cert, tls_key)}
    installed = []
    for signum, handler in handlers.items():
        try:
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    media_config = sfu.RouterConfig(host=udp_host, port=udp_port, announced_ip=announced_ip)
    # Media always runs in worker processes, so that no signaling load can delay a packet
    # (embedders who want it in-process use sfu.Router with signaling.server directly).
    router = await sfu.WorkerPool.start(workers, media_config)
    server = None
    try:
        config = ServerConfig(
            host=host,
            port=port,
            max_users=max_users,
            max_talk_time=max_talk_time,
            queue=queue,
            turn=turn_config,
            ssl=ssl_context,
            allowed_origins=allowed_origins,
            force_relay=force_relay,
            max_connections_per_ip=max_connections_per_ip,
        )
        server = await SignalingServer.start(config, router)
        ports = [port for _, port in router.addresses]
        udp = f"{router.address[0]}:{ports[0]}"
        if len(ports) > 1:
            udp += f"-{ports[-1]}" if ports == list(range(ports[0], ports[-1] + 1)) else (
                "," + ",".join(map(str, ports[1:])))
            udp += f" ({len(ports)} workers)"
        url = server.url
        if host in ("0.0.0.0", "::"):
            # Nobody can open http://0.0.0.0/: show the address browsers are given for media.
            scheme = "https" if ssl_context else "http"
            url = f"{scheme}://{router.announced_ip}:{server.address[1]}/"
        print(f"walkie: open {url}  (media: udp {udp}, "
              f"announced as {router.announced_ip})", flush=True)
        for line in cert_lines:
            print(line, flush=True)
        if ssl_context is None and not _is_loopback(host):
            print(f"walkie: WARNING: plain HTTP on {host}: browsers on other devices will "
                  "refuse the microphone (they allow it only on https:// pages and "
                  "localhost). Use --cert/--key, or --self-signed for a LAN test.", flush=True)
        if turn_config is not None:
            relay = "; relay forced" if force_relay else ""
            print(f"walkie: ICE servers for browsers: {', '.join(turn_config.urls)} "
                  f"(TURN credentials valid {turn_config.ttl} s{relay})", flush=True)
        if server.origins.allowed:
            print(f"walkie: WebSockets accepted from this server's pages and from "
                  f"{', '.join(server.origins.allowed)}", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        if server is not None:
            await server.close()
        await router.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


_TURN_KEYS = ("turn_urls", "stun_urls", "turn_secret", "turn_ttl")


def _turn_config(turn_urls: tuple[str, ...], stun_urls: tuple[str, ...],
                 turn_secret: str | None, turn_ttl: int) -> TurnConfig | None:
    """The browsers' ICE servers, or None; raises ValueError for a contradiction."""
    urls = tuple(stun_urls) + tuple(turn_urls)
    return TurnConfig(urls, turn_secret or None, turn_ttl) if urls else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume other devices reach it


def _self_signed_lines(info: tls.CertInfo) -> list[str]:
    state = "made" if info.created else "reused"
    return [
        f"walkie: self-signed certificate ({state}) for {', '.join(info.names)}",
        f"walkie:   SHA-256 {info.fingerprint}",
        f"walkie:   {info.cert_path} (valid until {info.not_after:%Y-%m-%d})",
        "walkie:   each browser warns once: check that the certificate it shows has this "
        "SHA-256 fingerprint, then proceed; or install the file as trusted "
        "(docs/DEPLOY.md, \"LAN test\")",
    ]


def _reload_certificate(context: ssl.SSLContext | None, cert: str | None, key: str | None
                        ) -> None:
    """SIGHUP: load the certificate files again; on any error keep serving the old one."""
    if context is None:
        log.info("SIGHUP: plain HTTP, no certificate to reload")
        return
    try:
        context.load_cert_chain(cert, key)  # type: ignore[arg-type]
        fingerprint = tls.describe(cert)[0]  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        log.error("certificate reload failed, still serving the old one: %s", exc)
        return
    log.info("reloaded the TLS certificate %s (SHA-256 %s)", cert, fingerprint)


def _bench(argv: list[str]) -> int:
    try:
        import bench
    except ImportError as exc:
        print(f"walkie bench: the bench package is not available ({exc})", file=sys.stderr)
        return 2
    bench_main = getattr(bench, "main", None)
    if bench_main is None:
        print("walkie bench: bench.main is missing (the bench tool is not installed yet)",
              file=sys.stderr)
        return 2
    result = bench_main(argv)
    return int(result or 0)
