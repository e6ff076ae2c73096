"""``walkie``: the command line. ``walkie serve`` runs signaling and media in one process.

Every ``serve`` flag has an environment variable (``WALKIE_<FLAG>``, e.g. ``WALKIE_PORT``)
so that containers and systemd units need no command line; a flag beats its variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main", "serve"]

log = logging.getLogger("walkie")


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get("WALKIE_" + name, default)


def _env_flag(name: str) -> bool:
    return (os.environ.get("WALKIE_" + name) or "").lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walkie", description="Browser push-to-talk walkie-talkie with its own WebRTC SFU."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the server (signaling + media in one process)")
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
    s.add_argument("--turn-url", action="append", default=None,
                   help="TURN/STUN URL given to browsers (repeatable) [WALKIE_TURN_URL, "
                        "comma-separated]")
    s.add_argument("--turn-secret", default=_env("TURN_SECRET", None),
                   help="coturn static-auth-secret for short-lived TURN credentials "
                        "[WALKIE_TURN_SECRET]")
    s.add_argument("--tls-cert", default=_env("TLS_CERT", None),
                   help="PEM certificate: serve HTTPS/WSS (browsers allow the microphone "
                        "only on https:// or localhost) [WALKIE_TLS_CERT]")
    s.add_argument("--tls-key", default=_env("TLS_KEY", None),
                   help="PEM private key for --tls-cert [WALKIE_TLS_KEY]")
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
    except OSError as exc:
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
        raise ValueError("--tls-cert and --tls-key go together")
    urls = args.turn_url
    if urls is None:
        env_urls = _env("TURN_URL", "") or ""
        urls = [u.strip() for u in env_urls.split(",") if u.strip()]
    return {
        "host": host,
        "port": args.port,
        "udp_host": udp_host,
        "udp_port": args.udp_port,
        "announced_ip": announced,
        "max_users": args.max_users,
        "max_talk_time": args.max_talk_time or None,
        "queue": not args.no_queue,
        "turn_urls": tuple(urls),
        "turn_secret": args.turn_secret,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
    }


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
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run media plane and signaling until SIGINT/SIGTERM (or ``stop`` is set)."""
    import sfu

    from .server import ServerConfig, SignalingServer
    from .turn import TurnConfig

    ssl_context = None
    if tls_cert and tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(Path(tls_cert), Path(tls_key))

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    router = await sfu.Router.start(
        sfu.RouterConfig(host=udp_host, port=udp_port, announced_ip=announced_ip)
    )
    server = None
    try:
        config = ServerConfig(
            host=host,
            port=port,
            max_users=max_users,
            max_talk_time=max_talk_time,
            queue=queue,
            turn=TurnConfig(turn_urls, turn_secret) if turn_urls else None,
            ssl=ssl_context,
        )
        server = await SignalingServer.start(config, router)
        udp = router.address
        url = server.url
        if host in ("0.0.0.0", "::"):
            # Nobody can open http://0.0.0.0/: show the address browsers are given for media.
            scheme = "https" if ssl_context else "http"
            url = f"{scheme}://{router.announced_ip}:{server.address[1]}/"
        print(f"walkie: open {url}  (media: udp {udp[0]}:{udp[1]}, "
              f"announced as {router.announced_ip})", flush=True)
        if ssl_context is None and host not in ("127.0.0.1", "::1"):
            print("walkie: note: browsers allow the microphone only on https:// or "
                  "localhost; use --tls-cert/--tls-key for other machines", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        if server is not None:
            await server.close()
        await router.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass


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
