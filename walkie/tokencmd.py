"""``walkie token``: print a signed join link for one member of one room.

The link is ``<url>r/<room>#token=<JWT>``: the token sits in the URL fragment, which the
browser never sends in a request, so it reaches neither this server's logs, nor a proxy's,
nor another site's ``Referer``; the page reads it and sends it in its ``join``. The secret is
read exactly as ``walkie serve`` reads it (``--token-secret``, ``--token-secret-file`` or
their ``WALKIE_`` variables), so the same environment serves and issues.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping
from types import SimpleNamespace
from urllib.parse import urlsplit

from signaling.messages import ProtocolError, validate_name, validate_room
from signaling.tokens import MAX_PRIORITY, MAX_TTL, Grant, issue

from .config import ConfigError, env_name, read_token_secret

__all__ = ["add_parser", "parse_ttl", "run"]

DEFAULT_URL = "http://localhost:8080/"
_TTL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``1h``, ``7d``: whole seconds, 1 s .. 7 days."""
    match = _TTL.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"--ttl {text!r}: give seconds or a number with s, m, h or d (1h)")
    seconds = int(float(match.group(1)) * _UNIT[match.group(2)])
    if not 1 <= seconds <= MAX_TTL:
        raise ValueError(f"--ttl must be 1 s .. {MAX_TTL // 86400} days")
    return seconds


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "token", help="print a signed join link (servers run with --token-secret)",
        description="Print a link that lets one member into one room of a server run with "
                    "--token-secret. The secret is read like `walkie serve` reads it.")
    p.add_argument("--room", required=True, help="the room, 1-64 of a-z, 0-9 and '-'")
    p.add_argument("--name", required=True, help="the member's display name (fixed by the link)")
    p.add_argument("--ttl", default="1h", help="how long the link works: 90s, 30m, 1h, 7d "
                                                "(default: 1h; at most 7d)")
    p.add_argument("--listen-only", action="store_true",
                   help="the member may listen but never talk")
    p.add_argument("--priority", type=int, default=0,
                   help=f"floor priority 0..{MAX_PRIORITY}: a higher one pre-empts a lower "
                        "talker (default: 0)")
    p.add_argument("--url", default=DEFAULT_URL,
                   help=f"the server's address as browsers reach it (default: {DEFAULT_URL})")
    p.add_argument("--token-secret", metavar="SECRET",
                   help=f"the server's token secret [{env_name('token_secret')}]")
    p.add_argument("--token-secret-file", metavar="FILE",
                   help=f"read the secret from FILE [{env_name('token_secret_file')}]")


def run(args: argparse.Namespace, environ: Mapping[str, str], now: float | None = None) -> int:
    """Print the link; exit status 2 with one line on stderr for bad input."""
    try:
        link = make_link(args, environ, time.time() if now is None else now)
    except (ConfigError, ValueError) as exc:
        print(f"walkie token: {exc}", file=sys.stderr)
        return 2
    print(link)
    return 0


def make_link(args: argparse.Namespace, environ: Mapping[str, str], now: float) -> str:
    secrets = SimpleNamespace(
        token_secret=args.token_secret or environ.get(env_name("token_secret")) or None,
        token_secret_file=(args.token_secret_file
                           or environ.get(env_name("token_secret_file")) or None))
    secret = read_token_secret(secrets)
    if secret is None:
        raise ConfigError("needs the server's --token-secret (or --token-secret-file, or "
                          f"{env_name('token_secret')})")
    try:
        room = validate_room(args.room)
        name = validate_name(args.name)
    except ProtocolError as exc:
        raise ValueError(exc.message) from None
    if not 0 <= args.priority <= MAX_PRIORITY:
        raise ValueError(f"--priority must be 0..{MAX_PRIORITY}")
    grant = Grant(room, name, now + parse_ttl(args.ttl), args.listen_only, args.priority)
    return f"{_base(args.url)}r/{room}#token={issue(secret, grant)}"


def _base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r}: give the server's http:// or https:// address")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"

