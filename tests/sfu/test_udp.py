"""sfu/udp.py: the shared port and per-peer connected sockets."""

from __future__ import annotations

import socket

import pytest

from sfu.udp import open_main_socket, read_datagrams


def test_reader_reports_the_true_source_even_on_another_peers_socket() -> None:
    """A datagram queued on a peer's socket before its connect() keeps its real source.

    The router routes by source address; attributing it to the socket's peer would let one
    user's ICE check bind another user's session (seen under load by the bench).
    """
    main, shared = open_main_socket("127.0.0.1", 0, 1 << 16)
    if not shared:
        pytest.skip("SO_REUSEPORT unavailable")
    port = main.getsockname()[1]
    # A peer socket on the shared port, not yet connected (the race window).
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    peer_sock.bind(("127.0.0.1", port))
    peer_sock.setblocking(False)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    try:
        for i, s in enumerate(senders):
            s.bind(("127.0.0.1", 0))
            s.sendto(bytes([i]), ("127.0.0.1", port))
        got: list[tuple[bytes, tuple[str, int]]] = []
        for sock in (main, peer_sock):
            read_datagrams(sock, lambda data, addr: got.append((data, addr)))
        expected = {(bytes([i]), s.getsockname()) for i, s in enumerate(senders)}
        assert set(got) == expected
    finally:
        for s in (main, peer_sock, *senders):
            s.close()


def test_a_busy_port_is_refused() -> None:
    main, _ = open_main_socket("127.0.0.1", 0, 1 << 16)
    try:
        with pytest.raises(OSError):
            open_main_socket("127.0.0.1", main.getsockname()[1], 1 << 16)
    finally:
        main.close()
