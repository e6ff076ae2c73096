"""One UDP socket for every synthetic user: each user is a loopback IP, not a socket.

Why: with one socket per user, every forwarded packet costs the bench an epoll wake-up, a
callback dispatch and a second ``recvmsg`` that fails with EAGAIN; at ~10 µs per packet
the bench, not the server, saturated first (below 100,000 packets/s). The whole of
127.0.0.0/8 is local on Linux's loopback, so user *k* gets its own address 127.a.b.c and
all of them share one port: a single wildcard socket (0.0.0.0:P) receives everything in
large batches, and the server still sees (and sends to) one distinct address per user,
exactly as with real browsers.

Demultiplexing, cheapest first:

* RTP and RTCP from the server carry the listener's own downlink SSRC (RTP bytes 8-11,
  RTCP sender SSRC bytes 4-7): one dict lookup finds the listener's accounting;
* anything else (STUN answers, DTLS) goes by the datagram's destination address, from the
  IP_PKTINFO control message, to the user's slow path.

Sending uses ``sendmsg`` with an IP_PKTINFO source address, so each user's packets leave
from its own address. Receive times are the kernel's SO_TIMESTAMPNS stamps.

Run the bench in a loopback-only network namespace (as the docs say): the wildcard bind
then only ever sees loopback traffic.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["MuxError", "SharedSocket", "loopback_address", "set_receive_buffer"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_TIMESPEC = struct.Struct("@qq")
_PKTINFO = struct.Struct("@i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_CMSG = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_PKTINFO.size)
_U32 = struct.Struct("!I")
#: Datagrams read per wake-up at most (bounded so signaling and talkers are never starved).
READ_BATCH = 4096
#: With kernel receive timestamps the socket is drained on a 1 ms timer instead of on every
#: readiness event: ~1,000 wake-ups/s with dozens of datagrams each, instead of one wake-up
#: (and one failing recvmsg) per 2-3 datagrams. The kernel stamps arrival, so reading a
#: little later changes no latency figure; it only saves the bench's CPU.
POLL_INTERVAL = 0.001
#: Receive buffer asked for (SO_RCVBUFFORCE as root): ~0.3 s of 100,000 packets/s.
RCVBUF = 64 << 20


class MuxError(RuntimeError):
    """The shared socket cannot be set up (no IP_PKTINFO, address space exhausted)."""


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a ``size``-byte receive buffer: SO_RCVBUFFORCE as root, else SO_RCVBUF (which
    the kernel's rmem_max caps)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def loopback_address(n: int) -> str:
    """The n-th (n >= 1) bench address: 127.1.0.1, 127.1.0.2, ... (never 127.0.x.y, where
    servers and the attack mode's flood live)."""
    hi, mid, lo = 1 + n // 64516, (n // 254) % 254, n % 254 + 1
    if n < 1 or hi > 254:
        raise MuxError("loopback address space exhausted")
    return f"127.{hi}.{mid}.{lo}"


class _Endpoint(Protocol):
    def on_control(self, data: bytes) -> None: ...
    def on_media(self, data: bytes, now: int) -> None: ...


class SharedSocket:
    """The bench's single media socket. Create it inside the running event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        kernel_timestamps: bool = True,
        poll_interval: float | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``clock`` must be the talkers' clock: CLOCK_REALTIME (``time.time_ns``) when the
        kernel stamps arrivals, since SO_TIMESTAMPNS stamps are on that clock."""
        self._loop = loop
        self._clock = clock
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            set_receive_buffer(sock, RCVBUF)
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if kernel_timestamps:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise MuxError(f"cannot open the shared media socket: {exc}") from None
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.kernel_timestamps = kernel_timestamps
        self._next = 0
        self._by_ip: dict[bytes, _Endpoint] = {}
        self._feeds: dict[int, Callable[[bytes, int], None]] = {}
        self.unknown = 0
        self.errors = 0
        self.batches = 0
        self.datagrams = 0
        self._timer: asyncio.TimerHandle | None = None
        if poll_interval is None:
            poll_interval = POLL_INTERVAL if kernel_timestamps else 0.0
        self.poll_interval = poll_interval
        if poll_interval > 0:
            self._timer = loop.call_later(poll_interval, self._poll)
        else:
            loop.add_reader(sock.fileno(), self._on_readable)

    def allocate(self) -> str:
        """A fresh loopback address (see :func:`loopback_address`)."""
        self._next += 1
        return loopback_address(self._next)

    def register(self, ip: str, endpoint: _Endpoint) -> None:
        self._by_ip[socket.inet_aton(ip)] = endpoint

    def register_ssrc(self, ssrc: int, feed: Callable[[bytes, int], None]) -> None:
        """Route the listener's downlink (RTP SSRC / RTCP sender SSRC) straight to ``feed``."""
        self._feeds[ssrc] = feed

    def unregister(self, ip: str, ssrc: int | None) -> None:
        self._by_ip.pop(socket.inet_aton(ip), None)
        if ssrc is not None:
            self._feeds.pop(ssrc, None)

    def sender(self, ip: str, dest: tuple[str, int]) -> Callable[[bytes], int]:
        """A ``send(data)`` for one user: from ``ip``:port to ``dest``."""
        anc = [(socket.IPPROTO_IP, IP_PKTINFO, _PKTINFO.pack(0, socket.inet_aton(ip), bytes(4)))]
        sendmsg = self.sock.sendmsg

        def send(data: bytes) -> int:
            return sendmsg((data,), anc, 0, dest)

        return send

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        else:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
        self.sock.close()

    def _poll(self) -> None:
        self._on_readable()
        if self.sock.fileno() >= 0:
            self._timer = self._loop.call_later(self.poll_interval, self._poll)

    def _on_readable(self) -> None:
        """HOT PATH: drain the socket, routing each datagram to its user."""
        recvmsg = self.sock.recvmsg
        feeds = self._feeds
        unpack_ssrc = _U32.unpack_from
        unpack_ts = _TIMESPEC.unpack
        stamp = self.kernel_timestamps
        clock = self._clock
        self.batches += 1
        n = 0
        for n in range(READ_BATCH):  # noqa: B007 - n counts datagrams read, used below
            try:
                data, anc, _flags, _addr = recvmsg(2048, _CMSG)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.errors += 1
                break
            if len(data) >= 12 and 127 < data[0] < 192:
                feed = feeds.get(unpack_ssrc(data, 4 if 191 < data[1] < 224 else 8)[0])
                if feed is not None:
                    if stamp and anc and anc[0][1] == SO_TIMESTAMPNS:
                        sec, nsec = unpack_ts(anc[0][2])
                        feed(data, sec * 1_000_000_000 + nsec)
                    else:
                        feed(data, clock())
                    continue
            self._slow(data, anc)
        else:
            n = READ_BATCH  # no break: a whole batch was read
        self.datagrams += n

    def _stamp(self, anc: list[tuple[int, int, bytes]]) -> int:
        if self.kernel_timestamps:
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(value)
                    return sec * 1_000_000_000 + nsec
        return self._clock()

    def _slow(self, data: bytes, anc: list[tuple[int, int, bytes]]) -> None:
        """Control traffic (and media before its listener is registered): by destination."""
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _PKTINFO.size:
                endpoint = self._by_ip.get(_PKTINFO.unpack_from(value)[2])
                if endpoint is None:
                    break
                if data and 127 < data[0] < 192:
                    endpoint.on_media(data, self._stamp(anc))
                else:
                    endpoint.on_control(data)
                return
        self.unknown += 1
