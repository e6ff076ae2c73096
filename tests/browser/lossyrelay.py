"""A lossy UDP relay between one browser and the media server, for loss and jitter tests.

This machine's kernel has no ``netem`` (``tc qdisc ... netem`` fails: "Specified qdisc kind
is unknown"), so packets are impaired in user space: the browser is told (by munging the
answer's candidate, tests/browser/redloss.py) to send to the relay's front port; the relay
forwards everything from each of the browser's addresses to the server from a back socket
of its own (the server sees one address per browser address, as behind a NAT) and forwards
what the server sends back to that address, dropping each downlink RTP packet with probability ``loss`` and
delaying each downlink datagram by a uniform 0..``jitter`` seconds (so packets reorder).
STUN, DTLS and RTCP are never dropped: the loss is the audio's, not the connection's.

Loopback only; one daemon thread; stops on :meth:`close` or after ``lifetime`` seconds.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time

__all__ = ["LossyRelay"]

Address = tuple[str, int]


class LossyRelay:
    """Relay one browser's UDP to ``server`` with downlink loss and jitter."""

    def __init__(self, server: Address, *, loss: float = 0.0, jitter: float = 0.0,
                 seed: int = 1, lifetime: float = 300.0) -> None:
        if not 0 <= loss < 1 or not 0 <= jitter <= 1:
            raise ValueError("loss must be in [0, 1), jitter in 0..1 s")
        self.loss, self.jitter = loss, jitter
        self._rng = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self._server = server
        #: one back socket per browser address (a browser may check from several)
        self._backs: dict[Address, socket.socket] = {}
        self._sources: dict[socket.socket, Address] = {}
        self.port: int = self.front.getsockname()[1]
        #: downlink RTP packets forwarded and dropped, and their payload types (the RTP
        #: header is in the clear under SRTP): what the server sent this browser
        self.rtp_forwarded = 0
        self.rtp_dropped = 0
        self.payload_types: dict[int, int] = {}
        self._due: list[tuple[float, int, bytes, Address]] = []
        self._n = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.front.close()
        for back in self._backs.values():
            back.close()

    def _back(self, source: Address) -> socket.socket:
        back = self._backs.get(source)
        if back is None and len(self._backs) < 16:
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.bind(("127.0.0.1", 0))
            back.connect(self._server)
            self._backs[source] = back
            self._sources[back] = source
        return back if back is not None else next(iter(self._backs.values()))

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, data, browser = heapq.heappop(self._due)
                self.front.sendto(data, browser)
            timeout = 0.05 if not self._due else max(0.0, min(0.05, self._due[0][0] - now))
            readable, _, _ = select.select([self.front, *self._backs.values()], [], [], timeout)
            for sock in readable:
                try:
                    data, source = sock.recvfrom(2048)
                except OSError:
                    continue
                if sock is self.front:
                    self._back((source[0], source[1])).send(data)
                else:
                    self._downlink(data, self._sources[sock])

    def _downlink(self, data: bytes, browser: Address) -> None:
        rtp = len(data) > 1 and 127 < data[0] < 192 and not 191 < data[1] < 224
        if rtp:
            pt = data[1] & 0x7F
            self.payload_types[pt] = self.payload_types.get(pt, 0) + 1
            if self.loss and self._rng.random() < self.loss:
                self.rtp_dropped += 1
                return
            self.rtp_forwarded += 1
        delay = self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0
        self._n += 1
        heapq.heappush(self._due, (time.monotonic() + delay, self._n, data, browser))
