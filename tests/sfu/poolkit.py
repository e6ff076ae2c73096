"""Helpers for the tests that run real media worker processes (``sfu.WorkerPool``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import socket
from collections.abc import Callable, Iterator

from sfu.pool import WorkerPool

from .peerclient import PeerClient


def worker_children() -> list[int]:
    """Pids of this process's media worker children still running (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"sfu.pool.worker" in cmdline:
            found.append(int(entry))
    return found


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) for something another process does; fail with ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def stopped(pid: int | None) -> Iterator[None]:
    """SIGSTOP a worker for the block; SIGCONT after, if it is still ours (the pool may have
    killed and reaped it meanwhile, and its pid must not be signalled again)."""
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if pid in worker_children():
            os.kill(pid, signal.SIGCONT)


def answer_port(answer: str) -> int:
    match = re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", answer)
    assert match is not None
    return int(match.group(1))


async def join(pool: WorkerPool, room: str, *names: str) -> tuple[list[PeerClient], set[int]]:
    """Synthetic peers that offer, connect (ICE, DTLS) and report their answers' ports."""
    clients, ports = [], set()
    for name in names:
        client = PeerClient(name)
        ports.add(answer_port(await client.join(pool, room)))
        await client.connect()
        assert client.srtp is not None, f"{name} did not connect"
        clients.append(client)
    return clients, ports


async def talk(pool: WorkerPool, room: str, talker: PeerClient, *listeners: PeerClient) -> None:
    """Give ``talker`` the floor, send five packets, check every listener gets exactly them.

    No barrier is needed after the one-way set_speaker: packets that reach the worker before
    it are kept as pre-roll and forwarded, in order, when it arrives.
    """
    pool.set_speaker(room, talker.name)
    sent = [talker.send_audio() for _ in range(5)]
    for listener in listeners:
        got = await listener.drain()
        assert [p.payload for p in got] == sent
        assert all(p.csrcs == [talker.ssrc] for p in got)
    assert await talker.drain() == []  # the talker never hears itself


def close(*clients: PeerClient) -> None:
    for client in clients:
        client.close()


def kill_and_take_port(pid: int | None, port: int) -> socket.socket:
    """SIGKILL a worker and bind its UDP port before the pool can start a replacement.

    This blocks the event loop (so the pool cannot react) until the whole process has exited
    (its pidfd is readable: all its threads are gone, so are its sockets; /proc's "Z" comes
    earlier, while other threads may still hold them), then binds the port: every restart
    will fail.
    """
    assert pid is not None
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        readable, _, _ = select.select([pidfd], [], [], 10)
        assert readable, "the killed worker did not exit"
    finally:
        os.close(pidfd)
    thief = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    thief.bind(("127.0.0.1", port))
    return thief
