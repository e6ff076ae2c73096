"""The ``walkie`` command: ``walkie serve``, ``walkie token``, ``walkie nodes`` and ``walkie bench``.

Every ``serve`` flag has an environment variable (``WALKIE_<FLAG>``, e.g. ``WALKIE_PORT``)
so that containers and systemd units need no command line; a flag beats its variable. The
settings themselves are defined in :mod:`walkie.config`, the server is run by
:mod:`walkie.serve`; this module only dispatches.

``walkie bench`` forwards its arguments to the load benchmark (``bench``), which needs the
optional ``bench`` extra (opuslib, matplotlib); without it the command says how to get it.

``walkie nodes`` lists a cluster's live nodes, their load and rooms, from its Redis
(:mod:`walkie.nodes`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import config, nodes, serve, tokencmd

__all__ = ["BENCH_EXTRA_MODULES", "build_parser", "main"]

#: What ``pip install 'walkie[bench]'`` adds, as imported by the bench.
BENCH_EXTRA_MODULES = ("opuslib", "matplotlib")
BENCH_HINT = "walkie bench: needs the bench extra: pip install 'walkie[bench]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walkie", description="Browser push-to-talk walkie-talkie with its own WebRTC SFU.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_parser = sub.add_parser(
        "serve", help="run the server: the page, signaling and the media plane",
        description="Run the walkie server. Every flag also reads the environment variable "
                    "shown in brackets; a flag beats its variable.")
    config.add_arguments(serve_parser)
    tokencmd.add_parser(sub)
    nodes_parser = sub.add_parser(
        "nodes", help="list a cluster's live nodes, their load and rooms (from its Redis)",
        description="List the live nodes of a walkie cluster, their load and the rooms each "
                    "one hosts, as its Redis holds them.")
    nodes.add_arguments(nodes_parser)
    sub.add_parser("bench", add_help=False,
                   help="load benchmark (arguments go to the bench tool; `walkie bench --help`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return bench(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "token":
        return tokencmd.run(args, os.environ)
    if args.command == "nodes":
        return nodes.run(args, os.environ)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        settings = config.from_arguments(args, os.environ)
    except config.ConfigError as exc:
        print(f"walkie: {exc}", file=sys.stderr)
        return 2
    return serve.run(settings)


def bench(argv: list[str]) -> int:
    """``walkie bench ARGV``, or one line saying what to install (exit status 2)."""
    for name in BENCH_EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            print(BENCH_HINT, file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - opuslib raises a bare Exception without libopus
            print(f"walkie bench: {name} cannot load ({exc}); the bench needs libopus "
                  "(Debian: apt install libopus0)", file=sys.stderr)
            return 2
    from bench import main as bench_main  # only now: bench is a tool, not part of the server

    return int(bench_main(argv) or 0)
