"""The parent's handle on one worker process: spawn it, talk to it, notice its end, kill it.

A worker is a fresh ``python -m sfu.pool.worker FD`` holding one end of a socketpair, so it
imports only the media plane (never the parent's ``__main__``, as multiprocessing's spawn
would). Its end is noticed twice, both without a thread: the control channel reports EOF,
and a pidfd (``os.pidfd_open``) becomes readable when the process has exited, which is
also the moment its UDP port is free to bind again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .channel import Channel
from .messages import Message

log = logging.getLogger("walkie.sfu.pool")

#: The directory that holds the ``sfu`` package: put first on the worker's import path, so
#: that it runs exactly the code the parent runs, whatever its working directory.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])
#: How often to poll for the exit where pidfds do not exist (not Linux >= 5.3).
_POLL_EXIT = 0.05


class WorkerProcess:
    """One spawned worker: its pid, its :class:`Channel` and whether it has exited.

    ``on_message(process, message)`` and ``on_lost(process, why)`` come from the channel;
    ``on_exit(process)`` once the process has exited and been reaped (``exit_status`` is
    then set).
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        slot: int | None,
        on_exit: Callable[[WorkerProcess], None],
    ) -> None:
        self._popen = popen
        #: the worker slot this process serves, or None while it is the warm spare
        self.slot = slot
        #: it said Idle: its imports are done and it waits for Serve
        self.idle = False
        self._on_exit = on_exit
        self.pid = popen.pid
        self.channel: Channel | None = None
        self.exit_status: str | None = None  # e.g. "killed by SIGKILL"; None while running
        self.exited = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._pidfd: int | None = None
        self._poller: asyncio.TimerHandle | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # pragma: no cover - old kernels
            self._poller = self._loop.call_later(_POLL_EXIT, self._poll)
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    @classmethod
    async def spawn(
        cls,
        slot: int | None,
        on_message: Callable[[WorkerProcess, Message], None],
        on_lost: Callable[[WorkerProcess, str], None],
        on_exit: Callable[[WorkerProcess], None],
        max_buffered: int,
    ) -> WorkerProcess:
        """Start a worker; it announces :class:`~.messages.Idle` once its imports are done."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_IMPORT_ROOT, env.get("PYTHONPATH"))))
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "sfu.pool.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # only the child may hold it, or its death would never read as EOF
        process = cls(popen, slot, on_exit)
        try:
            process.channel = await Channel.connect(
                ours,
                lambda message: on_message(process, message),
                lambda why: on_lost(process, why),
                max_buffered,
            )
        except BaseException:
            ours.close()
            process.kill()
            raise
        return process

    @property
    def running(self) -> bool:
        return self.exit_status is None

    def send(self, message: Message) -> bool:
        """Queue a message; False when the channel is broken (the owner handles the loss)."""
        return self.channel is not None and self.channel.send(message)

    def kill(self) -> None:
        """SIGKILL (a no-op once it has exited). ``on_exit`` follows when it is gone."""
        if self.exit_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # exited, not yet reaped
                pass

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()

    # -- exit ----------------------------------------------------------------------------

    def _poll(self) -> None:  # pragma: no cover - old kernels
        self._poller = None
        if self._popen.poll() is None:
            self._poller = self._loop.call_later(_POLL_EXIT, self._poll)
        else:
            self._finish()

    def _reap(self) -> None:
        if self._popen.poll() is None:
            return  # spurious wake-up
        self._finish()

    def _finish(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        code = self._popen.returncode
        if code < 0:
            try:
                what = signal.Signals(-code).name
            except ValueError:
                what = f"signal {-code}"
            self.exit_status = f"killed by {what}"
        else:
            self.exit_status = f"exit code {code}"
        self.close_channel()
        if not self.exited.done():
            self.exited.set_result(self.exit_status)
        self._on_exit(self)
