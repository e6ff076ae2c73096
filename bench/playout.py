"""What a listener can play of one talk burst: frames received, or recovered from RED.

Sans-IO accounting for ``python -m bench.redloss``. The talker sends frames 0..N-1 of one
burst, frame *k* at ``start + k × 20 ms``. A listener records every RTP packet it accepted
(after the impairment dropped some): its arrival time, RTP timestamp, payload type and
payload. A packet carries frame *k* as plain Opus, or as RED (RFC 2198, sfu/red.py) frame
*k* as its primary block plus earlier frames as redundant blocks (timestamp offsets of
960 per frame). The burst's first packet (marker bit) anchors the timestamps: the SFU
renumbers each burst by a fixed offset, so frame *k* has timestamp ``anchor + 960 k``.

A frame is *playable* when a copy of it (primary or redundant) arrived before its playout
time: ``start + k × 20 ms + playout delay``, a fixed jitter buffer. The same figures
without the deadline (``…_any``) say what a buffer as deep as the whole burst would get.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.red import RedError, split_red

__all__ = ["FRAME_SECONDS", "PlayoutCount", "PlayoutLog"]

FRAME_SECONDS = 0.02
SAMPLES_PER_FRAME = 960


@dataclass(frozen=True, slots=True)
class PlayoutCount:
    """One listener's burst, counted."""

    frames: int  # sent by the talker
    packets: int  # RTP packets the listener accepted
    primary: int  # frames whose own packet arrived in time
    recovered: int  # frames missing that, found in time in a later packet's redundancy
    late: int  # frames whose only copies came after their playout time
    playable: int  # primary + recovered
    playable_any: int  # frames with any copy at all, however late
    bad_red: int  # RED payloads the listener could not split (must stay 0)

    @property
    def playable_ratio(self) -> float:
        return self.playable / self.frames if self.frames else 0.0

    @property
    def concealed_ratio(self) -> float:
        """Frames the decoder must conceal (invent): what ``concealedSamples`` counts."""
        return 1.0 - self.playable_ratio


class PlayoutLog:
    """Packets one listener accepted during one burst; :meth:`count` at the end."""

    __slots__ = ("opus_pt", "red_pt", "_packets")

    def __init__(self, opus_pt: int, red_pt: int | None) -> None:
        self.opus_pt = opus_pt
        self.red_pt = red_pt
        self._packets: list[tuple[float, int, int, bool, bytes]] = []

    def add(self, arrival: float, timestamp: int, payload_type: int, marker: bool,
            payload: bytes) -> None:
        """One packet the listener accepted (``arrival`` on the talker's clock)."""
        self._packets.append((arrival, timestamp, payload_type, marker, payload))

    @property
    def packets(self) -> list[tuple[float, int, int, bool, bytes]]:
        """``(arrival, timestamp, payload type, marker, payload)`` of each packet, in order."""
        return self._packets

    def count(self, frames: int, start: float, playout: float) -> PlayoutCount:
        """The burst of ``frames`` frames that the talker started sending at ``start``."""
        anchors = [ts for _, ts, _, marker, _ in self._packets if marker]
        earliest: dict[int, float] = {}  # frame -> earliest arrival of any copy
        own: dict[int, float] = {}  # frame -> arrival of its own packet (primary)
        bad = 0
        if anchors:
            anchor = anchors[0]
            for arrival, ts, pt, _, payload in self._packets:
                frame = ((ts - anchor) & 0xFFFFFFFF) // SAMPLES_PER_FRAME
                blocks: list[tuple[int, bytes]] = [(0, payload)]
                if self.red_pt is not None and pt == self.red_pt:
                    try:
                        blocks = split_red(payload, self.opus_pt)
                    except RedError:
                        bad += 1
                        continue
                for offset, _data in blocks:
                    k = frame - offset // SAMPLES_PER_FRAME
                    if not 0 <= k < frames:
                        continue
                    if offset == 0:
                        own[k] = min(arrival, own.get(k, arrival))
                    earliest[k] = min(arrival, earliest.get(k, arrival))
        primary = recovered = late = 0
        for k, first in earliest.items():
            deadline = start + k * FRAME_SECONDS + playout
            if k in own and own[k] <= deadline:
                primary += 1
            elif first <= deadline:
                recovered += 1
            else:
                late += 1
        return PlayoutCount(
            frames=frames,
            packets=len(self._packets),
            primary=primary,
            recovered=recovered,
            late=late,
            playable=primary + recovered,
            playable_any=len(earliest),
            bad_red=bad,
        )
