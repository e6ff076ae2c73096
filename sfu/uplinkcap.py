"""Per-peer uplink caps: packets per second and bytes per second, as two token buckets.

Why: the SFU multiplies the speaker's uplink by the number of listeners. Without a cap, a
floor holder that floods its uplink (38.7k packets/s measured) makes the worker send that
many times 14 (a room of 15), saturates its loop and starves every other room it serves.
A browser's uplink is small and regular, so a cap well above it costs legitimate peers
nothing:

* Opus at 20 ms ptime is 50 packets/s, at 10 ms (``minptime=10``, which the answer allows)
  100 packets/s; RTCP adds about one compound packet per second, and RED (RFC 2198) makes
  packets larger, not more numerous. The default, 150 packets/s with a bucket of 100, leaves
  half again the 10 ms rate, and lets a jitter burst of 1 s of 10 ms packets (or 2 s of
  20 ms ones) through at once; a flood is held to 250 in its first second, 150/s after.
* Opus tops out at 510 kbit/s (64 kB/s of payload); RED with two redundant copies triples
  that in the worst case. The default, 128,000 bytes/s of SRTP datagrams (1 Mbit/s) with a
  bucket of 64,000 bytes, is twice Opus' maximum and ~30 times a typical 32 kbit/s voice
  stream; a flood of the largest packets we forward (1,392 bytes of payload) is held to
  about 90 packets/s.

Time is passed in (sans-IO): ``now`` is the caller's monotonic seconds.

How the core uses it (``MediaCore``, for SRTP and SRTCP alike): :meth:`UplinkCap.admit`
*before* SRTP authentication, so a flood over the cap is dropped without the cost of
unprotecting it; :meth:`UplinkCap.charge` *after* authentication succeeded, so packets that
fail it (garbage, or packets spoofed from the peer's address) never use the peer's budget:
a spoofer cannot silence a peer by draining its buckets. Every drop is counted by reason,
for the peer and for the whole worker (:class:`UplinkDrops`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UplinkCap", "UplinkDrops", "UplinkLimits"]


@dataclass(frozen=True, slots=True)
class UplinkLimits:
    """The cap of every peer's uplink: sustained rates and bucket sizes (all positive)."""

    packets_per_second: float = 150.0
    packet_burst: float = 100.0
    bytes_per_second: float = 128_000.0
    byte_burst: float = 64_000.0

    def __post_init__(self) -> None:
        for name in ("packets_per_second", "packet_burst", "bytes_per_second", "byte_burst"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):  # also refuses NaN
                raise ValueError(f"uplink {name.replace('_', ' ')} must be a positive number, not {value}")
        if self.packet_burst < 1:
            raise ValueError("the uplink packet burst must be at least 1 packet")


class UplinkDrops:
    """Uplink datagrams dropped over a cap, by reason: one per peer, one for the worker."""

    __slots__ = ("packet_rate", "byte_rate")

    def __init__(self) -> None:
        self.packet_rate = 0
        self.byte_rate = 0


class UplinkCap:
    """One peer's two token buckets, full at creation."""

    __slots__ = ("limits", "packets", "octets", "last", "dropped", "_total")

    def __init__(self, limits: UplinkLimits, now: float, total: UplinkDrops) -> None:
        self.limits = limits
        self.packets = limits.packet_burst
        self.octets = limits.byte_burst
        self.last = now
        #: this peer's drops; ``_total`` is the worker's, counted at the same time
        self.dropped = UplinkDrops()
        self._total = total

    def admit(self, now: float, size: int) -> bool:
        """HOT PATH: may a datagram of ``size`` bytes arriving at ``now`` be processed?

        Refills both buckets for the time passed; charges nothing (see :meth:`charge`).
        False means: drop it, it is over the cap (and it has been counted).
        """
        elapsed = now - self.last
        if elapsed > 0:
            self.last = now
            limits = self.limits
            self.packets = min(limits.packet_burst, self.packets + elapsed * limits.packets_per_second)
            self.octets = min(limits.byte_burst, self.octets + elapsed * limits.bytes_per_second)
        if self.packets < 1:
            self.dropped.packet_rate += 1
            self._total.packet_rate += 1
            return False
        if self.octets < size:
            self.dropped.byte_rate += 1
            self._total.byte_rate += 1
            return False
        return True

    def charge(self, size: int) -> None:
        """An admitted datagram of ``size`` bytes passed SRTP authentication: it counts."""
        self.packets -= 1
        self.octets -= size
