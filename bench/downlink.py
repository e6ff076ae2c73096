"""What a synthetic listener does with each datagram the server forwards (sans-IO, hot path).

Budget: the bench must absorb >= 100,000 forwarded packets/s on one core, including the
kernel's ~3 µs per ``recv``. So the per-packet work uses only the clear parts of an SRTP
packet (RFC 3711 encrypts the payload, never the RTP header):

* the downlink sequence number (bytes 2-3): continuity of the listener's single stream,
  within bursts and across talker changes;
* the CSRC (bytes 12-15): which talker this is (the SFU puts the talker's SSRC there);
* the audio-level octet (byte 21): the low 7 bits of the talker's own sequence number
  (see ``uplink.py``), which give the talker's full sequence number and send time from its
  :class:`~bench.uplink.TalkLog`: latency, loss, duplicates and order per talker.

Every ``sample_every``-th packet (every packet in the functional check) is fully verified:
SRTP authentication and decryption with the listener's own keys, then every header field
and the Opus payload compared byte for byte with what the talker sent. Checking a sample is
what keeps the cheap path honest: a packet whose clear header lies would fail there.

Accounting is by runs: consecutive talker sequence numbers extend the current run in O(1);
only discontinuities (talker change, loss, reordering) append to a list;
``accounting.account`` turns runs into loss / duplicate / out-of-order figures against what
each talker sent.

Audio gaps: the longest silence a listener heard inside a talk burst (see
:func:`audio_gap_ns`), tracked with one comparison per packet; only a gap longer than the
longest so far takes the slow path. A new media session after ``media reset``
(:meth:`DownlinkMonitor.restart`) starts afresh: the outage is neither a gap nor a sequence
jump, and is accounted separately (``accounting.outage_holes``).

(A little over 400 lines on purpose: the hot path and the verified sample path must stay side
by side, so that what the cheap path trusts is checked next to it.)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from sfu.rtp import RtpError, parse_rtp
from sfu.srtp import SrtpError

from .histogram import LatencyHistogram
from .uplink import FRAME_NS, RING, TalkLog

__all__ = [
    "LONG_GAP_NS",
    "DownlinkMonitor",
    "audio_gap_ns",
]

_U32 = struct.Struct("!I")
#: A latency this large means the ring slot was reused: the packet cannot be matched.
MAX_MATCH_NS = (RING - 8) * 20_000_000
_MASK = RING - 1
#: A gap at least this long is counted: the longest a talking room may stall while another
#: client floods signaling (the goal in docs/BENCHMARKS.md, "Media in worker processes").
LONG_GAP_NS = 100_000_000


def audio_gap_ns(rx_prev: int, rx: int, sent_prev: int, sent: int, seq_prev: int, seq: int) -> int:
    """The silence a listener heard between two packets of one talk burst, in ns.

    ``rx_*``: receive times; ``sent_*``: the talker's send times; ``seq_*``: its sequence
    numbers (``seq > seq_prev``). The gap is the time between the two arrivals, minus any
    pause the *talker* took beyond its 20 ms frame pacing between them (its clock woke up
    late, or it had no session to send on): that silence is the talker's, not the path's.
    Lost packets in between stay in the gap: the listener heard nothing. So an unloaded
    path gives ~20 ms, and a server that stalls for 1.4 s gives ~1,420 ms.
    """
    talker_pause = (sent - sent_prev) - FRAME_NS * (seq - seq_prev)
    return rx - rx_prev - max(0, talker_pause)


class DownlinkMonitor:
    """One listener's receive-side accounting. Feed it every datagram that starts with a byte
    in 128..191 (RTP/RTCP, RFC 7983), with the receive time in ns (same clock as the talkers').

    ``talkers`` maps a talker SSRC to its TalkLog (shared by all listeners of the run).
    ``unprotect`` / ``unprotect_rtcp`` are the listener's SRTP session methods.
    """

    __slots__ = (
        "_buckets",
        "ambiguous",
        "anchor",
        "_countdown",
        "_counts",
        "_level_hdr",
        "_unprotect",
        "_unprotect_rtcp",
        "bursts",
        "cur_csrc",
        "cur_log",
        "expected_ssrc",
        "failures",
        "gap_at_ns",
        "gap_max_ns",
        "gap_threshold_ns",
        "hist",
        "jumps_at_switch",
        "jumps_in_burst",
        "last_rx_ns",
        "late",
        "level_id",
        "long_gaps",
        "malformed",
        "marker_missing",
        "mid",
        "mid_id",
        "next_dseq",
        "opus_pt",
        "burst_start",
        "own_audio",
        "own_ssrc",
        "packets",
        "preroll_hist",
        "restarts",
        "resumed_ns",
        "resuming",
        "rtcp",
        "rtcp_bad",
        "run_first",
        "run_last",
        "runs",
        "sample_every",
        "talkers",
        "unmatched",
        "verified",
    )

    def __init__(
        self,
        talkers: dict[int, TalkLog],
        hist: LatencyHistogram,
        own_ssrc: int,
        *,
        preroll_hist: LatencyHistogram | None = None,
        unprotect: Callable[[bytes], bytes],
        unprotect_rtcp: Callable[[bytes], bytes] | None = None,
        expected_ssrc: int | None = None,
        opus_pt: int = 111,
        level_id: int = 1,
        mid_id: int | None = 4,
        mid: str = "0",
        sample_every: int = 50,
        burst_start: tuple[int, Sequence[bytes]] | None = None,
    ) -> None:
        """``opus_pt``: the payload type packets must carry (the RED one with ``--red``);
        ``burst_start``: with RED, the (Opus payload type, plain frames) a burst's first
        packet carries instead, since the SFU strips its redundancy (sfu/core.py)."""
        if sample_every < 1:
            raise ValueError("sample_every must be >= 1")
        if not 1 <= level_id <= 14:
            raise ValueError("the bench needs a one-byte audio-level extension id (1..14)")
        self.talkers = talkers
        self.hist = hist
        self.preroll_hist = preroll_hist if preroll_hist is not None else LatencyHistogram()
        self.own_ssrc = own_ssrc
        self.expected_ssrc = expected_ssrc
        self.opus_pt = opus_pt
        self.burst_start = burst_start
        self.level_id = level_id
        self.mid_id = mid_id
        self.mid = mid.encode()
        self.sample_every = sample_every
        self._countdown = 1  # verify the very first packet
        self._unprotect = unprotect
        self._unprotect_rtcp = unprotect_rtcp
        # The SFU writes the level element first: byte 20 is its one-byte element header.
        self._level_hdr = level_id << 4
        self._counts = hist.counts
        self._buckets = hist.BUCKETS
        self.packets = 0
        self.rtcp = 0
        self.rtcp_bad = 0
        self.malformed = 0
        self.unmatched = 0
        self.own_audio = 0
        self.bursts = 0
        self.marker_missing = 0
        self.jumps_in_burst = 0
        self.jumps_at_switch = 0
        self.verified = 0
        self.failures: dict[str, int] = {}
        self.next_dseq = -1
        self.cur_csrc = -1
        self.cur_log: TalkLog | None = None
        self.run_first = -2
        self.run_last = -2
        #: where the first packet of the current burst should be (talker seq), -1 unknown
        self.anchor = -1
        #: jumps the ring cannot match for sure (see _plausible)
        self.ambiguous = 0
        #: closed runs: (talker ssrc, first talker seq, last talker seq)
        self.runs: list[tuple[int, int, int]] = []
        #: packets that arrived after a later one of the same talker: (talker ssrc, seq)
        self.late: list[tuple[int, int]] = []
        self.last_rx_ns = 0
        #: the longest audio gap since the last take_gaps() (ns), when it ended, and how
        #: many gaps reached LONG_GAP_NS; packets arriving closer together than
        #: ``gap_threshold_ns`` skip the gap check (it only ever rises)
        self.gap_max_ns = 0
        self.gap_at_ns = 0
        self.long_gaps = 0
        self.gap_threshold_ns = 0
        #: run indexes at which a new media session started (media reset + re-offer)
        self.restarts: list[int] = []
        #: receive time of the first RTP packet after each restart
        self.resumed_ns: list[int] = []
        self.resuming = False

    # ------------------------------------------------------------------ hot path

    def feed(self, data: bytes, now: int) -> None:
        """HOT PATH: account one RTP or RTCP datagram received at ``now`` (ns)."""
        if len(data) < 24:  # shorter than the SFU's downlink header (RTCP SR: >= 28)
            self.malformed += 1
            return
        b1 = data[1]
        if 191 < b1 < 224:  # RFC 5761: RTCP packet types 192..223
            self._on_rtcp(data)
            return
        if data[0] & 0x1F != 0x11:  # X=1, CC=1: the SFU's downlink layout
            self.malformed += 1
            return
        self.packets += 1
        since = now - self.last_rx_ns
        self.last_rx_ns = now
        dseq = (data[2] << 8) | data[3]
        csrc = _U32.unpack_from(data, 12)[0]
        if b1 & 0x80 or csrc != self.cur_csrc:
            self._burst(b1, dseq, csrc)
        elif dseq != self.next_dseq:
            self.jumps_in_burst += 1
        self.next_dseq = (dseq + 1) & 0xFFFF
        log = self.cur_log
        if log is None or data[20] != self._level_hdr:
            self._unmatched(csrc)
            return
        idx = data[21] & _MASK
        up = log.seqs[idx]
        lat = now - log.send_ns[idx]
        if up != self.run_last + 1:  # not the next packet of the current run (slow path)
            if not self._plausible(up, lat):
                self.unmatched += 1
                return
        elif lat < 0:  # the clock was stepped back (the next packet of a run is a sure match)
            self.unmatched += 1
            return
        if since > self.gap_threshold_ns:  # rare: as long as the longest gap so far
            self._gap(since, now, lat, up, log)
        if up < log.grant_seq:  # sent before the grant: held in the server's pre-roll
            self.preroll_hist.add(lat)
        else:
            b = lat // 10_000
            if b < self._buckets:
                self._counts[b] += 1
            else:
                self.hist.overflow.append(lat)
            self.hist.max_ns = max(self.hist.max_ns, lat)
        if up == self.run_last + 1:
            self.run_last = up
        else:
            self._discontinuity(csrc, up)
        self._countdown -= 1
        if not self._countdown:
            self._countdown = self.sample_every
            self._verify(data, log, up)

    # ------------------------------------------------------------------ slow paths

    def _burst(self, b1: int, dseq: int, csrc: int) -> None:
        """A talk burst starts (marker bit, or the CSRC changed), or a new media session
        delivers its first packet (after :meth:`restart`: no marker or continuity to check)."""
        resumed = self.resuming
        if resumed:
            self.resuming = False
            self.resumed_ns.append(self.last_rx_ns)
        else:
            self.bursts += 1
            if not b1 & 0x80:
                self.marker_missing += 1
            if self.next_dseq >= 0 and dseq != self.next_dseq:
                self.jumps_at_switch += 1
        self._close_run()
        self.cur_csrc = csrc
        # Our own packets coming back are an error to count, never audio to account.
        log = self.cur_log = None if csrc == self.own_ssrc else self.talkers.get(csrc)
        # The first packet of a burst is near the talker's first of that burst (the server
        # holds at most ~300 ms of pre-roll), unless a new session resumes inside one.
        self.anchor = log.burst_first if log is not None and not resumed else -1

    def _plausible(self, up: int, lat: int) -> bool:
        """Can a packet that does not continue the current run be matched to ``up``?

        The ring has 128 slots (7 bits of the talker's sequence number ride in the audio-level
        octet), so it cannot tell "64 or more packets lost in a row" from "this packet waited
        more than 2.56 s and a newer one took its slot": both fit the talker's send times
        exactly. Such a jump is matched as lost packets and counted in :attr:`ambiguous`,
        which the report shows next to loss: with it above 0, loss, duplicate and order
        figures may be wrong (a stall that long makes them moot anyway; the gap figures do
        not depend on the match).
        """
        anchor = self.run_last + 1 if self.run_last >= 0 else self.anchor
        if anchor >= 0 and up - anchor >= RING // 2:
            self.ambiguous += 1
        return 0 <= lat < MAX_MATCH_NS

    def _close_run(self) -> None:
        if self.run_first >= 0:
            self.runs.append((self.cur_csrc, self.run_first, self.run_last))
        self.run_first = self.run_last = -2

    def _discontinuity(self, csrc: int, up: int) -> None:
        if up > self.run_last:  # first packet of a burst, or a gap (loss or reordering)
            self._close_run()
            self.run_first = self.run_last = up
        else:  # older than the newest seen: reordered or duplicated
            self.late.append((csrc, up))

    def _gap(self, since: int, now: int, lat: int, up: int, log: TalkLog) -> None:
        """A packet came at least as late after the previous one as the longest gap so far:
        measure the gap if both packets belong to one burst of this talker, in order."""
        prev = self.run_last
        if prev < 0 or up <= prev:  # first packet of a burst (or of a session), or late
            return
        slot = prev & _MASK
        if log.seqs[slot] == prev:
            gap = audio_gap_ns(now - since, now, log.send_ns[slot], now - lat, prev, up)
        else:  # the talker sent 128 packets since: it did not pause, the path did
            gap = since
        if gap >= LONG_GAP_NS:
            self.long_gaps += 1
        if gap > self.gap_max_ns:
            self.gap_max_ns = gap
            self.gap_at_ns = now
        self.gap_threshold_ns = min(self.gap_max_ns, LONG_GAP_NS)

    def take_gaps(self) -> tuple[int, int, int]:
        """(longest gap ns, when it ended ns, gaps >= LONG_GAP_NS) since the last call; resets
        them, so that consecutive calls measure consecutive windows."""
        taken = (self.gap_max_ns, self.gap_at_ns, self.long_gaps)
        self.gap_max_ns = self.gap_at_ns = self.long_gaps = self.gap_threshold_ns = 0
        return taken

    def restart(self) -> None:
        """The media session is gone (``media reset``): the current run ends here, so that
        nothing spans the outage (no gap, no sequence jump), and :attr:`restarts` marks where,
        for the outage accounting. The next session's first packet is not checked for a
        marker or downlink continuity (it is a new stream); call :meth:`rekey` first."""
        self._close_run()
        self.restarts.append(len(self.runs))
        self.cur_csrc = -1
        self.cur_log = None
        self.next_dseq = -1
        self.resuming = True

    def rekey(
        self,
        unprotect: Callable[[bytes], bytes],
        unprotect_rtcp: Callable[[bytes], bytes] | None,
        expected_ssrc: int | None,
    ) -> None:
        """The new session's SRTP keys and downlink SSRC (after :meth:`restart`)."""
        self._unprotect = unprotect
        self._unprotect_rtcp = unprotect_rtcp
        self.expected_ssrc = expected_ssrc
        self._countdown = 1  # verify the first packet of the new session

    def _unmatched(self, csrc: int) -> None:
        if csrc == self.own_ssrc:
            self.own_audio += 1
        else:
            self.unmatched += 1

    def _fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def _verify(self, data: bytes, log: TalkLog, up: int) -> None:
        """Full check of one packet: SRTP auth + decryption, every field, the payload."""
        try:
            plain = self._unprotect(data)
        except SrtpError:
            self._fail("srtp_auth")
            return
        try:
            pkt = parse_rtp(plain)
        except RtpError:
            self._fail("rtp_parse")
            return
        ok = True
        frames, payload_type = log.frames, self.opus_pt
        if pkt.marker and self.burst_start is not None:  # RED: a burst starts as plain Opus
            payload_type, frames = self.burst_start
        if pkt.payload != frames[up % len(frames)]:
            self._fail("payload")
            ok = False
        if pkt.csrcs != [log.ssrc]:
            self._fail("csrc")
            ok = False
        if self.expected_ssrc is not None and pkt.ssrc != self.expected_ssrc:
            self._fail("ssrc")
            ok = False
        if pkt.payload_type != payload_type:
            self._fail("payload_type")
            ok = False
        if pkt.extensions.get(self.level_id) != bytes((0x80 | (up & _MASK),)):
            self._fail("audio_level")
            ok = False
        if self.mid_id and pkt.extensions.get(self.mid_id) != self.mid:
            self._fail("mid")
            ok = False
        if ok:
            self.verified += 1

    def _on_rtcp(self, data: bytes) -> None:
        self.rtcp += 1
        if self._unprotect_rtcp is None:
            return
        try:
            self._unprotect_rtcp(data)
        except SrtpError:
            self.rtcp_bad += 1

    def finish(self) -> None:
        """Close the current run so that :attr:`runs` is complete."""
        self._close_run()
        self.cur_csrc = -1
        self.cur_log = None
