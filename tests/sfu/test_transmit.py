"""sfu/transmit.py: the transmit arena, and the fan-out that protects in place."""

from __future__ import annotations

import os
import secrets

from hypothesis import given
from hypothesis import strategies as st

from sfu.rewriter import ListenerHeader
from sfu.rtp import parse_rtp
from sfu.srtp import SrtpKeys, SrtpSession
from sfu.transmit import SLOT_BYTES, Destination, TransmitQueue, encode_sockaddr


class _Listener:
    """What the fan-out reads of a listener besides its route: the numbers it skips."""

    def __init__(self, name: str, seq_skip: int) -> None:
        self.name = name
        self.seq_skip = seq_skip


def _keys() -> SrtpKeys:
    return SrtpKeys(
        "AEAD_AES_128_GCM",
        secrets.token_bytes(16),
        secrets.token_bytes(12),
        secrets.token_bytes(16),
        secrets.token_bytes(12),
    )


def test_sockaddr_encoding_matches_linux_layout() -> None:
    raw = encode_sockaddr(("127.0.0.1", 0x1234))
    assert len(raw) == 16 and raw[2:4] == b"\x12\x34" and raw[4:8] == bytes([127, 0, 0, 1])
    raw6 = encode_sockaddr(("::1", 443))
    assert len(raw6) == 28 and raw6[2:4] == (443).to_bytes(2, "big") and raw6[23] == 1


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=300), st.integers(1, 3)), max_size=60))
def test_pop_returns_what_was_pushed_in_order_across_growth(items: list[tuple[bytes, int]]) -> None:
    queue = TransmitQueue(capacity=2)
    destinations = {n: Destination(("127.0.0.1", 1000 + n)) for n in (1, 2, 3)}
    for data, n in items:
        assert queue.push(data, destinations[n])
    assert list(queue.pending()) == [(data, ("127.0.0.1", 1000 + n)) for data, n in items]
    popped = []
    while (item := queue.pop()) is not None:
        popped.append(item)
    assert popped == [(data, ("127.0.0.1", 1000 + n)) for data, n in items]
    assert len(queue) == 0 and queue.first == queue.end == 0


def test_a_datagram_bigger_than_a_slot_is_refused() -> None:
    queue = TransmitQueue(capacity=2)
    assert not queue.push(b"x" * (SLOT_BYTES + 1), Destination(("127.0.0.1", 9)))
    assert queue.dropped_oversize == 1 and len(queue) == 0


def test_fan_out_protects_each_copy_for_its_listener_and_skips_the_talker() -> None:
    listeners = []
    for n in range(4):
        keys = _keys()
        header = ListenerHeader(1000 + n, 111 if n % 2 else 109, 1 if n < 3 else None, 4, "0")
        header.follow(0xABCD)
        session = SrtpSession(keys)
        receiver = SrtpSession(keys.mirrored())
        destination = Destination(("127.0.0.1", 2000 + n))
        listeners.append((_Listener(f"peer{n}", 10 * n), header, session, receiver, destination))
    routes = tuple(
        (name, h.plain, h.leveled, h.level_pos, h.payload_type, session.protect_context,
         destination)
        for name, h, session, _, destination in listeners
    )
    queue = TransmitQueue(capacity=2)  # grows on the first fan-out
    payload = os.urandom(80)
    talker = routes[1][0]  # the talker is skipped by identity, as the core passes it
    assert queue.fan_out(routes, talker, 0x80, 7, 960, 0x90, payload) == 3
    assert queue.fan_out(routes, talker, 0, 8, 1920, -1, payload) == 3  # no level this time
    sent = list(queue.pending())
    assert [address for _, address in sent] == [("127.0.0.1", 2000 + n) for n in (0, 2, 3)] * 2
    for i, ((data, _), n) in enumerate(zip(sent, (0, 2, 3) * 2)):
        receiver = listeners[n][3]
        packet = parse_rtp(receiver.unprotect(data))
        assert packet.payload == payload and packet.ssrc == 1000 + n
        assert packet.payload_type == (111 if n % 2 else 109)
        assert packet.csrcs == [0xABCD]
        assert (packet.marker, packet.sequence, packet.timestamp) == (
            (True, (7 - 10 * n) & 0xFFFF, 960) if i < 3 else (False, (8 - 10 * n) & 0xFFFF, 1920))
        want_level = bytes([0x90]) if i < 3 and n < 3 else None
        assert packet.extensions.get(1) == want_level
        assert packet.extensions[4] == b"0"
