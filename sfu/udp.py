"""UDP sockets for the media plane: the shared port, and one connected socket per peer.

Sending on a connected socket skips the kernel's per-call address lookup and route
resolution: on this machine ``send`` costs ~3.2 us against ~4.0 us for ``sendto(addr)``
(PERF-NOTES.md), and the fan-out sends once per listener per packet. Linux lets several
sockets bind one port with ``SO_REUSEPORT``; a socket that is also ``connect()``ed to a peer
then receives exactly that peer's datagrams (connected sockets win the kernel's lookup),
while datagrams from any other address still reach the unconnected main socket.

Where ``SO_REUSEPORT`` is missing (not Linux) every peer sends through the main socket.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

__all__ = ["PeerLink", "open_main_socket"]

#: Largest datagram read; Opus packets are ~100-300 bytes, DTLS flights <= 1,200.
MAX_DATAGRAM = 2048
#: Datagrams handled per reader wake-up before yielding to the loop (fairness to signaling).
READ_BATCH = 256

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address], None]

_REUSEPORT = getattr(socket, "SO_REUSEPORT", None)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _probe_free(host: str, port: int) -> None:
    """Fail like a plain bind would if another process already holds the port.

    With ``SO_REUSEPORT`` a second walkie on the same port would bind too and silently get
    half the traffic; a plain bind first turns that mistake into ``EADDRINUSE``.
    """
    if port == 0:
        return
    with socket.socket(_family(host), socket.SOCK_DGRAM) as probe:
        probe.bind((host, port))


def open_main_socket(host: str, port: int, buffer_bytes: int) -> tuple[socket.socket, bool]:
    """Bind the worker's UDP port. Returns the socket and whether peers may share the port."""
    _probe_free(host, port)
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        shared = False
        if _REUSEPORT is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _REUSEPORT, 1)
                shared = True
            except OSError:  # pragma: no cover - kernel without SO_REUSEPORT
                shared = False
        _set_buffers(sock, buffer_bytes)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, shared


def _set_buffers(sock: socket.socket, buffer_bytes: int) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
        except OSError:  # pragma: no cover - capped by the kernel, not fatal
            pass


def read_datagrams(sock: socket.socket, handle: DatagramHandler) -> None:
    """Drain up to ``READ_BATCH`` datagrams into ``handle(data, source_address)``.

    The source is always the one the kernel reports, also on a peer's connected socket: that
    socket shares the port before its ``connect()`` takes effect, so another address's
    datagram can be queued on it in that instant (found by the bench: taking the connected
    address instead bound one user's ICE check to another user's session).
    """
    recvfrom = sock.recvfrom
    for _ in range(READ_BATCH):
        try:
            data, addr = recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # ICMP errors (e.g. port unreachable after a tab closed) surface here on
            # connected sockets; they are not datagrams. Anything else ends this batch.
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                continue
            return
        handle(data, addr)


class PeerLink:
    """How the router sends to one peer: a connected socket on the shared port if possible.

    ``send(data)`` never raises for network reasons the caller could not handle the same way:
    it raises ``OSError`` (the caller counts a send error and moves on).
    """

    __slots__ = ("address", "send", "_sock", "_loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        main: socket.socket,
        shared: bool,
        address: Address,
        handle: DatagramHandler,
    ) -> None:
        self.address = address
        self._loop = loop
        self._sock: socket.socket | None = None
        if shared:
            self._sock = self._connect(main, address)
        if self._sock is not None:
            self.send: Callable[[bytes], int] = self._sock.send
            loop.add_reader(self._sock.fileno(), read_datagrams, self._sock, handle)
        else:
            sendto = main.sendto

            def send(data: bytes) -> int:
                return sendto(data, address)

            self.send = send

    @staticmethod
    def _connect(main: socket.socket, address: Address) -> socket.socket | None:
        local = main.getsockname()
        sock = socket.socket(main.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _REUSEPORT, 1)  # type: ignore[arg-type]
            sock.bind(local[:2])
            sock.connect(address)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return None  # fall back to the main socket; correctness does not depend on this
        return sock

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
