"""sfu/udp.py: batched reads and sends on the media port, and the plain fallback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sfu.transmit import Destination, TransmitQueue
from sfu.udp import READ_BATCH, RECEIVE_BYTES, DatagramSocket, open_socket

Address = tuple[str, int]


@pytest.fixture(params=[True, False], ids=["batched", "plain"])
def io(request: pytest.FixtureRequest) -> Iterator[DatagramSocket]:
    sock = DatagramSocket(open_socket("127.0.0.1", 0, 1 << 20), batched=request.param)
    yield sock
    sock.close()


def _senders(n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
        out.append(s)
    return out


def _read_all(io: DatagramSocket) -> list[tuple[float, Address, bytes]]:
    got: list[tuple[float, Address, bytes]] = []
    while io.read(lambda now, source, data: got.append((now, source, data)), 12.5):
        pass
    return got


def test_every_datagram_arrives_with_its_true_source(io: DatagramSocket) -> None:
    senders = _senders(3)
    port = io.sock.getsockname()[1]
    try:
        expected = []
        for i in range(3 * READ_BATCH // 2):  # more than one read batch
            s = senders[i % 3]
            data = bytes([i % 256]) * (1 + i % 200)
            s.sendto(data, ("127.0.0.1", port))
            expected.append((12.5, s.getsockname(), data))
        assert _read_all(io) == expected
    finally:
        for s in senders:
            s.close()


def test_an_oversize_datagram_is_counted_not_delivered(io: DatagramSocket) -> None:
    (s,) = _senders(1)
    port = io.sock.getsockname()[1]
    try:
        s.sendto(b"x" * (RECEIVE_BYTES + 1), ("127.0.0.1", port))
        s.sendto(b"ok", ("127.0.0.1", port))
        got = [data for _, _, data in _read_all(io)]
        if io.batched:
            assert got == [b"ok"] and io.truncated == 1
        else:  # recvfrom truncates silently: the core then drops a malformed datagram
            assert got[1] == b"ok" and len(got[0]) == RECEIVE_BYTES
    finally:
        s.close()


def test_queued_datagrams_go_out_in_order_and_one_bad_destination_costs_only_itself(
    io: DatagramSocket,
) -> None:
    receivers = _senders(2)
    queue = TransmitQueue(capacity=4)  # also grows while queueing
    try:
        to = [Destination(r.getsockname()) for r in receivers]
        queue.push(b"a0", to[0])
        queue.push(b"nowhere", Destination(("127.0.0.1", 0)))  # refused by the kernel
        queue.push(b"b0", to[1])
        queue.push(b"a1", to[0])
        queue.push(b"v6 on a v4 socket", Destination(("::1", 5)))
        queue.push(b"b1", to[1])
        assert io.send(queue) == 4
        assert io.send_errors == 2
        assert len(queue) == 0
        assert [receivers[0].recv(64), receivers[0].recv(64)] == [b"a0", b"a1"]
        assert [receivers[1].recv(64), receivers[1].recv(64)] == [b"b0", b"b1"]
    finally:
        for r in receivers:
            r.close()


def test_a_busy_port_is_refused() -> None:
    sock = open_socket("127.0.0.1", 0, 1 << 16)
    try:
        with pytest.raises(OSError):
            open_socket("127.0.0.1", sock.getsockname()[1], 1 << 16)
    finally:
        sock.close()


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "plain"])
def test_ipv6_both_ways(batched: bool) -> None:
    try:
        io = DatagramSocket(open_socket("::1", 0, 1 << 16), batched=batched)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    peer = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        peer.bind(("::1", 0))
        peer.settimeout(1.0)
        peer.sendto(b"hello", io.sock.getsockname()[:2])
        ((_, source, data),) = _read_all(io)
        assert (source, data) == (peer.getsockname()[:2], b"hello")
        queue = TransmitQueue(capacity=2)
        queue.push(b"back", Destination(source))
        assert io.send(queue) == 1 and peer.recv(16) == b"back"
    finally:
        peer.close()
        io.close()
