"""A real ``redis-server`` for the cluster tests: started on a free loopback port, stopped by PID.

Debian's ``redis-server`` runs without configuration; the tests give it no persistence
(``--save "" --appendonly no``) and a working directory of their own, bind it to 127.0.0.1
only, and wait until it answers PING. ci/test runs the tests inside a loopback-only network
namespace, so this server is reachable from nowhere else. Never a system service: the tests
neither start nor talk to one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["REDIS_SERVER", "RedisServer", "free_port"]

REDIS_SERVER = shutil.which("redis-server")
#: A generous bound on start-up (a loaded 2-core machine), not a measurement.
START_DEADLINE = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` then :meth:`start` brings it back on the
    same port (with no data: nothing is persisted)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert self.process is None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - the child keeps it open
        with log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", str(self.workdir), "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_DEADLINE
        while not self.answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: "
                                   + self.log_tail())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer PING: " + self.log_tail())
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL if it lingers) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            return (self.workdir / "redis.log").read_text(errors="replace")[-1000:]
        except OSError:
            return "(no log)"
