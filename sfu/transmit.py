"""What the media core has decided to send: datagrams in one preallocated arena.

The media core is sans-IO: it never sends, it queues. The queue is laid out for the cheapest
possible hand-over to the kernel:

* every datagram lives in a fixed-size slot of one ``bytearray`` arena, and its length and
  destination are written straight into a ready-made ``struct mmsghdr`` array, so a Linux
  driver sends a whole wake-up's worth of datagrams with one ``sendmmsg(2)``, copying nothing;
* the fan-out (one talker packet to every listener) patches each listener's header, copies
  header and payload into a slot and lets libsrtp protect the slot in place: no ``bytes``
  object, no Python ``send`` call per listener. SRTP leaves the header in the clear and appends
  its tag, so protect-in-place is exactly one copy of the packet per listener.

Other drivers (or tests) read the queue datagram by datagram with :meth:`TransmitQueue.pop`.
This module does no I/O; the ``struct mmsghdr`` layout is Linux's, and only a Linux driver
hands it to the kernel.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cffi import FFI

from .red import retag_red
from .rewriter import MAX_HEADER_BYTES, PATCH
from .srtp import SRTP_OK, srtp_protect_in_place

if TYPE_CHECKING:
    from .peer import Peer
    from .room import Room, Route

__all__ = ["MAX_PAYLOAD", "SLOT_BYTES", "Destination", "TransmitQueue", "encode_sockaddr", "ffi"]

#: Room for one datagram: DTLS flights are cut at 1,200 bytes, and an RTP packet is at most
#: a listener header, :data:`MAX_PAYLOAD` and libsrtp's tag. 23 cache lines: an odd stride,
#: so consecutive slots do not crowd the same cache sets as a power of two would.
SLOT_BYTES = 1472
#: The longest SRTP authentication tag we protect with (AEAD_AES_128_GCM; HMAC-SHA1-80: 10).
SRTP_TAG_BYTES = 16
#: The longest payload the fan-out forwards (an Opus packet is at most 1,275 bytes, RFC 6716);
#: the core drops longer ones before they reach the arena.
MAX_PAYLOAD = SLOT_BYTES - MAX_HEADER_BYTES - SRTP_TAG_BYTES
#: Slots allocated at first; the queue doubles when a wake-up needs more, and never shrinks.
INITIAL_SLOTS = 1024

ffi = FFI()
ffi.cdef(
    """
    struct iovec { void *iov_base; size_t iov_len; };
    struct msghdr {
        void *msg_name; unsigned int msg_namelen;
        struct iovec *msg_iov; size_t msg_iovlen;
        void *msg_control; size_t msg_controllen; int msg_flags;
    };
    struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
    """
)

Address = tuple[str, int]

_IN4 = struct.Struct("=HH4s8x")  # family (host order), port (network order), address, zero
_IN6 = struct.Struct("=HHI16sI")  # family, port, flowinfo, address, scope id


def encode_sockaddr(address: Address) -> bytes:
    """``struct sockaddr_in`` / ``sockaddr_in6`` for ``(ip, port)`` as Linux lays them out."""
    host, port = address[0], address[1]
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        return _IN6.pack(socket.AF_INET6, socket.htons(port), 0, packed, 0)
    return _IN4.pack(socket.AF_INET, socket.htons(port), socket.inet_aton(host))


#: Every ``msg_name`` is this long: a ``sockaddr_in6``, or a ``sockaddr_in`` zero-padded to
#: the same size. Linux reads the family and ignores the excess, so the length is written
#: once per slot instead of once per datagram.
SOCKADDR_BYTES = 28


class Destination:
    """Where datagrams for one address go: the address, and its encoded ``sockaddr``.

    Made once when a peer's address is bound, then reused for every datagram to it, so the
    hot path writes one pointer per datagram instead of encoding an address.
    """

    __slots__ = ("address", "sockaddr")

    def __init__(self, address: Address) -> None:
        self.address: Address = (address[0], address[1])
        self.sockaddr: Any = ffi.new(f"char[{SOCKADDR_BYTES}]", encode_sockaddr(self.address))

    def __repr__(self) -> str:
        return f"Destination({self.address[0]}:{self.address[1]})"


class TransmitQueue:
    """Datagrams waiting to be sent, oldest first.

    ``push`` copies a datagram in; ``fan_out`` writes one SRTP packet per listener; a batch
    driver sends ``messages[:len(queue)]`` with ``sendmmsg`` and calls :meth:`clear`; any other
    reader takes datagrams one at a time with :meth:`pop`. Slots are reused after ``clear``.
    """

    __slots__ = (
        "arena",
        "messages",
        "dropped_oversize",
        "protect_errors",
        "_count",
        "_read",
        "_capacity",
        "_iovecs",
        "_headers",
        "_srtp_slots",
        "_offsets",
        "_destinations",
        "_lenbox",
        "_keep",
    )

    def __init__(self, capacity: int = INITIAL_SLOTS) -> None:
        self._count = 0
        self._read = 0
        #: datagrams refused because they do not fit a slot (never seen: flights are cut)
        self.dropped_oversize = 0
        #: fan-out packets libsrtp refused to protect (e.g. a context past its key limit)
        self.protect_errors = 0
        self._lenbox = ffi.new("int *")
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        from .srtp import srtp_ffi  # pylibsrtp's own FFI: its functions take its pointers

        arena = bytearray(capacity * SLOT_BYTES)
        base = ffi.from_buffer(arena)
        srtp_base = srtp_ffi.from_buffer(arena)
        iovecs = ffi.new("struct iovec[]", capacity)
        messages = ffi.new("struct mmsghdr[]", capacity)
        for k in range(capacity):
            iovecs[k].iov_base = base + k * SLOT_BYTES
            header = messages[k].msg_hdr
            header.msg_iov = iovecs + k
            header.msg_iovlen = 1
            header.msg_namelen = SOCKADDR_BYTES
        self.arena = arena
        #: ``struct mmsghdr[capacity]``: the first ``len(self)`` entries are ready for sendmmsg
        self.messages = messages
        self._capacity = capacity
        self._iovecs = [iovecs + k for k in range(capacity)]
        self._headers = [ffi.addressof(messages[k], "msg_hdr") for k in range(capacity)]
        self._srtp_slots = [srtp_base + k * SLOT_BYTES for k in range(capacity)]
        self._offsets = [k * SLOT_BYTES for k in range(capacity)]
        self._destinations: list[Destination | None] = [None] * capacity
        # The cdata above points into these; they must live exactly as long.
        self._keep = (base, srtp_base, iovecs)

    def _grow(self, needed: int) -> None:
        """Make room for ``needed`` more datagrams, keeping those queued (rare: big bursts)."""
        capacity = self._capacity
        while capacity < self._count + needed:
            capacity *= 2
        old_arena, old_dest, count = self.arena, self._destinations, self._count
        lengths = [self._iovecs[k].iov_len for k in range(count)]
        self._allocate(capacity)
        self.arena[: count * SLOT_BYTES] = old_arena[: count * SLOT_BYTES]
        for k in range(count):
            self._set(k, lengths[k], old_dest[k])  # type: ignore[arg-type]

    def _set(self, k: int, length: int, destination: Destination) -> None:
        self._iovecs[k].iov_len = length
        self._headers[k].msg_name = destination.sockaddr
        self._destinations[k] = destination

    # ------------------------------------------------------------------ writing

    def __len__(self) -> int:
        return self._count - self._read

    def push(self, data: bytes | bytearray, destination: Destination) -> bool:
        """Queue a copy of ``data`` for ``destination``; False if it cannot fit a slot."""
        n = len(data)
        if n > SLOT_BYTES:
            self.dropped_oversize += 1
            return False
        k = self._count
        if k == self._capacity:
            self._grow(1)
        off = k * SLOT_BYTES
        self.arena[off : off + n] = data
        self._set(k, n, destination)
        self._count = k + 1
        return True

    def fan_out(
        self,
        routes: tuple[Route, ...],
        talker: Peer,
        marker: int,
        seq: int,
        timestamp: int,
        level: int,
        payload: bytes | bytearray | memoryview,
    ) -> int:
        """HOT PATH: one talker packet for every route but the talker's own; returns how many.

        ``payload`` is at most :data:`MAX_PAYLOAD` bytes and every header at most
        ``MAX_HEADER_BYTES`` (the caller's and ``ListenerHeader``'s promises), so each
        packet fits its slot. ``marker``, ``seq`` and ``timestamp`` are the room stream's (sfu/rewriter.py), the
        same for every listener but for the packets a listener never got because it was
        their talker (its ``seq_skip``); ``level`` the talker's RFC 6464 octet or -1. For each
        listener its header template is patched (what ``ListenerHeader.header`` does, inlined
        here), header and payload go into a fresh slot, and libsrtp protects the slot in
        place with the listener's keys.
        """
        k = self._count
        if k + len(routes) > self._capacity:
            self._grow(len(routes))
        arena = self.arena
        offsets = self._offsets
        srtp_slots = self._srtp_slots
        iovecs = self._iovecs
        headers = self._headers
        destinations = self._destinations
        lenbox = self._lenbox
        protect = srtp_protect_in_place
        patch = PATCH.pack_into
        with_level = level >= 0
        plen = len(payload)
        start = k
        for listener, plain, leveled, level_pos, payload_type, context, destination in routes:
            if listener is talker:
                continue
            if with_level and leveled is not None:
                head = leveled
                head[level_pos] = level
            else:
                head = plain
            patch(head, 1, marker | payload_type, (seq - listener.seq_skip) & 0xFFFF, timestamp)
            hlen = len(head)
            off = offsets[k]
            end = off + hlen
            arena[off:end] = head
            arena[end : end + plen] = payload
            lenbox[0] = hlen + plen
            if protect(context, srtp_slots[k], lenbox) != SRTP_OK:
                self.protect_errors += 1
                continue
            iovecs[k].iov_len = lenbox[0]
            headers[k].msg_name = destination.sockaddr
            destinations[k] = destination
            k += 1
        self._count = k
        return k - start

    def fan_out_red(
        self,
        room: Room,
        talker: Peer,
        marker: int,
        seq: int,
        timestamp: int,
        level: int,
        payload: bytes,
        layout: tuple[int, int],
    ) -> tuple[int, int]:
        """HOT PATH for a talker's RED packet (RFC 2198): ``(packets, payload octets)`` sent.

        ``layout`` is ``red_layout(payload, talker.opus_pt)`` (sfu/red.py). Listeners that
        negotiated RED get the payload as it came, under their RED payload type, with the
        blocks' payload type re-tagged once per group when their Opus payload type is not the
        talker's; the others get the primary block alone, a plain Opus packet. Either way
        the per-listener work is :meth:`fan_out`'s.
        """
        redundant, primary_start = layout
        packets = octets = 0
        for opus_pt, routes in room.red_groups:
            body = payload if opus_pt == talker.opus_pt else retag_red(payload, redundant, opus_pt)
            sent = self.fan_out(routes, talker, marker, seq, timestamp, level, body)
            packets += sent
            octets += sent * len(body)
        if room.opus_routes:
            primary = payload[primary_start:]
            sent = self.fan_out(room.opus_routes, talker, marker, seq, timestamp, level, primary)
            packets += sent
            octets += sent * len(primary)
        return packets, octets

    # ------------------------------------------------------------------ reading

    def pop(self) -> tuple[bytes, Address] | None:
        """The oldest queued datagram and its address, or None when the queue is empty."""
        k = self._read
        if k == self._count:
            return None
        self._read = k + 1
        datagram = self.datagram(k)
        if self._read == self._count:
            self.clear()
        return datagram

    def datagram(self, k: int) -> tuple[bytes, Address]:
        """Slot ``k`` (0 = the oldest ever queued since :meth:`clear`) as bytes and address."""
        off = k * SLOT_BYTES
        n = self._iovecs[k].iov_len
        destination = self._destinations[k]
        assert destination is not None
        return bytes(self.arena[off : off + n]), destination.address

    def pending(self) -> Iterator[tuple[bytes, Address]]:
        """Every queued datagram, oldest first, without removing them."""
        for k in range(self._read, self._count):
            yield self.datagram(k)

    @property
    def first(self) -> int:
        """Index of the oldest unsent slot (non-zero only after :meth:`pop` was used)."""
        return self._read

    @property
    def end(self) -> int:
        """One past the newest slot: a batch driver sends slots ``first .. end - 1``."""
        return self._count

    def clear(self) -> None:
        """Forget every queued datagram (they were sent); slots are reused."""
        self._count = 0
        self._read = 0
