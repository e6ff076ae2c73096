"""What all synthetic users of one run share (``BenchContext``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sfu.certificate import Certificate
from sfu.red import build_red

from .histogram import LatencyHistogram
from .mux import SharedSocket, loopback_address
from .uplink import TalkLog

if TYPE_CHECKING:
    from .client import SyntheticClient

__all__ = ["RED_PT", "BenchContext", "red_loop"]

#: The payload types the bench offers: Opus and, with ``--red``, RED as Chromium numbers them.
OPUS_PT = 111
RED_PT = 63


def red_loop(frames: Sequence[bytes], opus_pt: int = OPUS_PT) -> list[bytes]:
    """The Opus loop as RED payloads (RFC 2198) the way Chromium sends them: each frame with
    the previous one as a redundant block (timestamp offset 960), the loop wrapping around."""
    return [build_red(opus_pt, frame, [(960, frames[k - 1])]) for k, frame in enumerate(frames)]


class BenchContext:
    """What all clients of one run share: the clock, the certificate, the Opus loop, the
    talkers' send logs (so a listener can match any talker's packet) and the histogram.

    With ``kernel_timestamps`` (the default) a packet's receive time is the kernel's
    SO_TIMESTAMPNS stamp, taken when the server's send put it on our socket, and send times
    use the same clock (CLOCK_REALTIME). The latency measured is then the server's path
    alone: time a packet waits in our socket because the bench is busy is not charged to
    the server. Without it, receive time is read when the bench gets to the packet.

    With ``ws_source_addresses`` each user's WebSocket also comes from a loopback address of
    its own, so the server's per-address connection limit sees one address per user (the
    attack mode keeps that limit on, for the flood's single address).
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        *,
        sample_every: int = 50,
        verify_rtcp: bool = False,
        local_host: str = "127.0.0.1",
        kernel_timestamps: bool = True,
        shared_socket: bool = False,
        ws_source_addresses: bool = False,
        red: bool = False,
    ) -> None:
        #: with ``red`` every user offers RED and talkers send each frame as RED with the
        #: previous one (``red_loop``): what listeners must then receive, byte for byte
        self.red = red
        self.opus_frames = frames
        self.frames = red_loop(frames) if red else frames
        self.sample_every = sample_every
        self.verify_rtcp = verify_rtcp
        self.local_host = local_host
        self.kernel_timestamps = kernel_timestamps
        #: with ``shared_socket`` every user is a loopback address on one socket (mux.py)
        self.shared_socket = shared_socket
        self.ws_source_addresses = ws_source_addresses
        self.mux: SharedSocket | None = None
        self.clock: Callable[[], int] = time.time_ns if kernel_timestamps else time.perf_counter_ns
        self.certificate = Certificate.generate("walkie-bench")
        self.fingerprint = self.certificate.fingerprint_text("sha-256")
        self.talkers: dict[int, TalkLog] = {}
        self.hist = LatencyHistogram()
        self.preroll_hist = LatencyHistogram()
        self.clients: list[SyntheticClient] = []
        #: room name -> its users (an outage mark reads the room's talkers' counters)
        self.rooms: dict[str, list[SyntheticClient]] = {}
        self._addresses = 0
        #: a multi-node run: the nodes' (WebSocket URL, origin); a user whose WebSocket
        #: closed reconnects through the next one, as a page does through a load balancer
        self.reconnect_to: list[tuple[str, str]] = []

    def allocate_address(self) -> str:
        """A loopback address no other user has (the shared socket's, when there is one)."""
        if self.mux is not None:
            return self.mux.allocate()
        self._addresses += 1
        return loopback_address(self._addresses)

    def room_seqs(self, room: str) -> dict[int, int]:
        """Each talker of ``room``'s next sequence number (its uplink counter) now."""
        return {c.ssrc: c.uplink.seq for c in self.rooms.get(room, ()) if c.uplink is not None}
