"""Start and stop the server under test (``python -m walkie serve``), pinned to a core.

The server runs as a separate process so that its CPU time can be read from /proc and
never mixes with the clients', and it is pinned (``taskset -c``, or ``sched_setaffinity``
in the child when taskset is missing) so that server and clients each own one core.
Also: a tiny /healthz reader for the server's own counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ServerError", "ServerProcess", "add_server_options", "fetch_healthz", "server_for",
           "spawn_pinned"]

_OPEN_LINE = re.compile(r"walkie: open (https?://\S+)")
#: ``walkie serve`` flags that lift every per-address limit and the server-wide connection cap.
UNLIMITED = ("--max-connections", "0", "--max-connections-per-ip", "0", "--join-rate-per-ip", "0",
             "--rooms-per-ip", "0", "--message-rate-per-ip", "0", "--byte-rate-per-ip", "0")


class ServerError(RuntimeError):
    """The server under test did not start or stopped unexpectedly."""


@dataclass(slots=True)
class ServerProcess:
    """A running ``walkie serve`` child process."""

    proc: subprocess.Popen[bytes]
    url: str
    core: int | None
    output: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    @contextlib.contextmanager
    def running(cls, extra_args: Sequence[str] = (), max_users: int = 15
                ) -> Iterator[ServerProcess]:
        """A server started here (not pinned) for the block, stopped by its pid after it."""
        server = cls.start(max_users=max_users, core=None, extra_args=list(extra_args))
        try:
            yield server
        finally:
            server.stop()

    @classmethod
    def start(
        cls,
        *,
        max_users: int,
        core: int | None = 0,
        host: str = "127.0.0.1",
        extra_args: list[str] | None = None,
        timeout: float = 20.0,
        address_limits: bool = False,
        root: str | None = None,
    ) -> ServerProcess:
        """Spawn the server on an ephemeral HTTP and UDP port and wait for its URL line.
        ``address_limits``: keep the server's per-address limits and budgets (attacks);
        otherwise they are off, since every synthetic user comes from this one machine.
        ``root``: the source tree to run (default: this one), e.g. an older checkout to
        measure before and after a change with the same bench."""
        cmd = [
            sys.executable, "-m", "walkie", "serve",
            "--host", host, "--port", "0", "--udp-port", "0",
            "--max-users", str(max_users), "--log-level", "warning",
            *([] if address_limits else UNLIMITED),
            *(extra_args or []),
        ]
        # The bench pins itself after spawning; the child must not inherit that pinning
        # when no core was asked for, so it is spawned first (see runner).
        proc = spawn_pinned(cmd, core, root=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output: list[str] = []
        deadline = time.monotonic() + timeout
        url = None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        buffer = ""
        while time.monotonic() < deadline and url is None:
            if proc.poll() is not None:
                buffer += _read_available(fd)
                raise ServerError(f"server exited with {proc.returncode}: {buffer.strip()[-2000:]}")
            chunk = _read_available(fd)
            if chunk:
                buffer += chunk
                match = _OPEN_LINE.search(buffer)
                if match:
                    url = match.group(1)
                    break
            time.sleep(0.02)
        if url is None:
            proc.kill()
            proc.wait(5)
            raise ServerError(f"server did not report its URL within {timeout:g} s: {buffer[-2000:]}")
        output.extend(buffer.splitlines())
        return cls(proc, url, core, output)

    def drain_output(self) -> None:
        """Keep the pipe from filling up (the server logs warnings only)."""
        stdout = self.proc.stdout
        if stdout is None or stdout.closed:
            return
        chunk = _read_available(stdout.fileno())
        if chunk:
            self.output.extend(chunk.splitlines())
            del self.output[:-200]

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: the server says goodbye over DTLS), then SIGKILL if needed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.drain_output()
        return self.proc.returncode


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """A probe's ``--url`` and ``--server-arg`` (what :func:`server_for` takes)."""
    parser.add_argument("--url", default=None, help="a running server; default: start one")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the started server (repeatable)")


@contextlib.contextmanager
def server_for(url: str | None, extra_args: Sequence[str] = (), max_users: int = 15
               ) -> Iterator[str]:
    """The URL of the server to probe: ``url`` if given, else a server started here (not
    pinned) and stopped, by its pid, when the block ends (the probes' ``--url``)."""
    if url is not None:
        yield url
        return
    with ServerProcess.running(extra_args, max_users) as server:
        yield server.url


def spawn_pinned(
    cmd: list[str], core: int | None, root: str | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (a Python command line) pinned to ``core`` (``taskset -c``, or
    ``sched_setaffinity`` on the child when util-linux is missing), with ``root`` (default:
    this tree) first on its PYTHONPATH and unbuffered output."""
    taskset = shutil.which("taskset") if core is not None else None
    if taskset:
        cmd = [taskset, "-c", str(core), *cmd]
    env = dict(os.environ)
    if root is not None:
        popen.setdefault("cwd", root)  # `python -m` puts the working directory first
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(cmd, env=env, **popen)
    if core is not None and not taskset:
        os.sched_setaffinity(proc.pid, {core})
    return proc


def _read_available(fd: int) -> str:
    """Whatever the non-blocking pipe holds now (bounded), decoded leniently."""
    chunks = []
    for _ in range(64):
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


async def fetch_healthz(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """GET <url>/healthz over a plain HTTP/1.1 connection; None if unavailable."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    port = parts.port or 80
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, port)
            writer.write(
                f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
                .encode()
            )
            await writer.drain()
            raw = await reader.read(1 << 20)
            writer.close()
    except (OSError, TimeoutError):
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
