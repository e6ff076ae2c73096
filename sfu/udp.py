"""The media port's socket I/O, batched: ``recvmmsg`` in, ``sendmmsg`` out (Linux).

One UDP socket per worker carries every peer (RFC 7983 multiplexing, one ICE candidate).
Per wake-up the driver reads up to :data:`READ_BATCH` waiting datagrams with one
``recvmmsg(2)`` (the loop calls again while more wait) and sends everything the media core
queued with one ``sendmmsg(2)`` per batch of slots of the transmit arena (sfu/transmit.py),
so a talker packet fanned out to 14 listeners costs one system call, not 14 Python ``send``
calls. libc is called through cffi's ABI mode
(cffi comes with pylibsrtp; no compiler is needed). Where ``recvmmsg``/``sendmmsg`` are
missing (not Linux), the same interface falls back to ``recvfrom`` / ``sendto``.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from typing import Any

from .transmit import TransmitQueue, ffi

__all__ = ["DatagramSocket", "open_socket"]

Address = tuple[str, int]
#: ``handle(now, source, data)``: the media core's ``handle_datagram``
DatagramHandler = Callable[[float, Address, bytes], None]

#: Datagrams read per wake-up at most (then the loop serves its other callbacks).
READ_BATCH = 64
#: Largest datagram read; anything longer is counted in ``truncated`` and dropped. Nothing a
#: browser sends here comes near it (DTLS flights and RTP stay under a path MTU).
RECEIVE_BYTES = 2048
# Plain ints: socket's MsgFlag members would make every ``flags & _MSG_TRUNC`` an enum
# operation in Python, once per received datagram.
_MSG_DONTWAIT = int(getattr(socket, "MSG_DONTWAIT", 0x40))
_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))
_SOCKADDR_SPACE = 128  # sizeof(struct sockaddr_storage)

ffi.cdef(
    """
    int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
    int recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout);
    """
)


def _libc() -> Any | None:
    """libc with working ``sendmmsg``/``recvmmsg`` and the struct layout we declared."""
    if ffi.sizeof("struct mmsghdr") != 64 or ffi.sizeof("struct msghdr") != 56:
        return None  # not the LP64 Linux layout the declarations describe
    try:
        libc = ffi.dlopen(None)
        libc.sendmmsg
        libc.recvmmsg
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def open_socket(host: str, port: int, buffer_bytes: int) -> socket.socket:
    """Bind the worker's UDP port (non-blocking, with large kernel buffers)."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
            except OSError:  # pragma: no cover - capped by the kernel, not fatal
                pass
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class DatagramSocket:
    """Batched reads into a handler, batched sends from a :class:`TransmitQueue`.

    Never raises for network reasons: send failures are counted in :attr:`send_errors`
    (real-time media is dropped, not queued), receive errors end the read batch.
    """

    def __init__(self, sock: socket.socket, *, batched: bool = True) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.send_errors = 0
        self.truncated = 0
        self.batched = batched and _LIBC is not None
        self._names: dict[bytes, Address] = {}
        if self.batched:
            self._setup_receive()

    # ------------------------------------------------------------------ receive

    def _setup_receive(self) -> None:
        n = READ_BATCH
        self._rx_arena = bytearray(n * RECEIVE_BYTES)
        self._rx_view = memoryview(self._rx_arena)
        self._rx_names = ffi.new("char[]", n * _SOCKADDR_SPACE)
        self._rx_iov = ffi.new("struct iovec[]", n)
        self._rx_msgs = ffi.new("struct mmsghdr[]", n)
        base = ffi.from_buffer(self._rx_arena)
        self._rx_keep = base
        for k in range(n):
            self._rx_iov[k].iov_base = base + k * RECEIVE_BYTES
            self._rx_iov[k].iov_len = RECEIVE_BYTES
            header = self._rx_msgs[k].msg_hdr
            header.msg_iov = self._rx_iov + k
            header.msg_iovlen = 1
            header.msg_name = self._rx_names + k * _SOCKADDR_SPACE
            header.msg_namelen = _SOCKADDR_SPACE
        self._rx_entries = [self._rx_msgs + k for k in range(n)]
        self._rx_headers = [ffi.addressof(self._rx_msgs[k], "msg_hdr") for k in range(n)]
        self._rx_used = 0

    def read(self, handle: DatagramHandler, now: float) -> int:
        """Read what is waiting (at most :data:`READ_BATCH`) into ``handle(now, source, data)``.

        Every datagram of one read gets the same ``now``: they all arrived before it.
        """
        if not self.batched:
            return self._read_plain(handle, now)
        headers = self._rx_headers
        for k in range(self._rx_used):  # the kernel wrote the real lengths last time
            headers[k].msg_namelen = _SOCKADDR_SPACE
        count = _LIBC.recvmmsg(self.fd, self._rx_msgs, READ_BATCH, _MSG_DONTWAIT, ffi.NULL)
        if count <= 0:
            self._rx_used = 0
            return 0
        self._rx_used = count
        view = self._rx_view
        entries = self._rx_entries
        names = self._names
        for k in range(count):
            header = headers[k]
            if header.msg_flags & _MSG_TRUNC:
                self.truncated += 1  # bigger than a slot: nothing we accept is that big
                continue
            off = k * RECEIVE_BYTES
            data = view[off : off + entries[k].msg_len].tobytes()
            raw = ffi.buffer(header.msg_name, header.msg_namelen)[:]
            source = names.get(raw)
            if source is None:
                source = self._decode_name(raw)
            handle(now, source, data)
        return count

    def _decode_name(self, raw: bytes) -> Address:
        """``(ip, port)`` of a ``sockaddr``; cached, since peers send from a few addresses."""
        family = struct.unpack_from("=H", raw)[0]
        port = struct.unpack_from("!H", raw, 2)[0]
        if family == socket.AF_INET6:
            host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        else:
            host = socket.inet_ntop(socket.AF_INET, raw[4:8])
        if len(self._names) >= 65536:  # spoofed sources must not grow it without bound
            self._names.clear()
        address = self._names[raw] = (host, port)
        return address

    def _read_plain(self, handle: DatagramHandler, now: float) -> int:
        recvfrom = self.sock.recvfrom
        count = 0
        for _ in range(READ_BATCH):
            try:
                data, source = recvfrom(RECEIVE_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            count += 1
            handle(now, (source[0], source[1]), data)
        return count

    # ------------------------------------------------------------------ send

    def send(self, queue: TransmitQueue) -> int:
        """Send everything queued, then clear the queue; returns how many went out."""
        first, end = queue.first, queue.end
        if first == end:
            return 0
        try:
            if self.batched:
                return self._send_batched(queue, first, end)
            return self._send_plain(queue, first, end)
        finally:
            queue.clear()

    def _send_batched(self, queue: TransmitQueue, first: int, end: int) -> int:
        messages = queue.messages
        sent = 0
        k = first
        while k < end:
            count = _LIBC.sendmmsg(self.fd, messages + k, end - k, 0)
            if count > 0:
                sent += count
                k += count
                continue
            err = ffi.errno
            if err == errno.EINTR:
                continue
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS):
                self.send_errors += end - k  # socket buffer full: drop, never queue media
                break
            self.send_errors += 1  # this one datagram failed (e.g. unreachable): skip it
            k += 1
        return sent

    def _send_plain(self, queue: TransmitQueue, first: int, end: int) -> int:
        sendto = self.sock.sendto
        sent = 0
        for k in range(first, end):
            data, address = queue.datagram(k)
            try:
                sendto(data, address)
            except OSError:
                self.send_errors += 1
                continue
            sent += 1
        return sent

    def close(self) -> None:
        self.sock.close()
