"""The Redis of a cluster the bench starts itself (``walkie bench --cluster N``).

A ``redis-server`` child on a free port of 127.0.0.1, with no persistence and a working
directory of its own, pinned like the nodes (its CPU is part of what the cluster costs),
ready once it answers PING, stopped by its PID. Never a system service.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from .server import ServerError, spawn_pinned

__all__ = ["RedisProcess"]

#: A bound on start-up on a loaded machine, not a measurement.
START_DEADLINE = 20.0


class RedisProcess:
    """``RedisProcess.start(core)``, then ``url`` and ``pid``; ``stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: str) -> None:
        self.proc = proc
        self.port = port
        self.workdir = workdir

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, core: int | None) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("--cluster needs redis-server (Debian package redis-server)")
        workdir = tempfile.mkdtemp(prefix="walkie-bench-redis-")
        port = _free_port()
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--dir", workdir,
               "--protected-mode", "yes", "--loglevel", "warning"]
        # spawn_pinned runs Python command lines; redis-server ignores the PYTHON* variables
        proc = spawn_pinned(cmd, core, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
        redis = cls(proc, port, workdir)
        deadline = time.monotonic() + START_DEADLINE
        while not redis.answers_ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                redis.stop()
                raise ServerError(f"redis-server did not start (exit {proc.returncode})")
            time.sleep(0.05)
        return redis

    def answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> int | None:
        """SIGTERM to its PID (SIGKILL if it lingers); its directory is removed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
