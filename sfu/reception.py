"""Reception statistics of one uplink (RFC 3550 Appendix A.1, A.3, A.8): what our receiver
reports tell a talker about the stream it sends us.

Sans-IO: arrival times are passed in (any monotonic clock, in seconds).
"""

from __future__ import annotations

from .rtcp import ReportBlock, ntp_middle32

__all__ = ["ReceptionStats"]

_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100


class ReceptionStats:
    """RFC 3550 A.1 (extended highest seq with cycles), A.3 (cumulative + fraction lost since
    last report), A.8 (interarrival jitter, in timestamp units) for one uplink SSRC.

    Unlike A.1 there is no probation: uplink packets reach us only after SRTP
    authentication, so the first one already proves the source. A jump of more than
    ``_MAX_DROPOUT`` is, as in A.1, believed only when the next packet follows it (the sender
    restarted its numbering); the stray packet is not counted.
    """

    __slots__ = (
        "ssrc",
        "clock_rate",
        "packets_received",
        "_base_seq",
        "_max_seq",
        "_bad_seq",
        "_cycles",
        "_received",
        "_expected_prior",
        "_received_prior",
        "_transit",
        "_jitter",
        "_lsr",
        "_lsr_arrival",
    )

    def __init__(self, ssrc: int, clock_rate: int = 48000) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.packets_received = 0  # every packet passed to update(), for dashboards
        self._max_seq = -1  # -1: nothing received yet
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._received = 0  # A.1 count since the last (re)synchronisation: drives loss
        self._expected_prior = 0
        self._received_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0
        self._lsr = 0
        self._lsr_arrival = 0.0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._transit = None

    def update(self, seq: int, timestamp: int, arrival: float) -> None:
        """Account one uplink packet (``arrival`` in seconds, any monotonic clock)."""
        self.packets_received += 1
        max_seq = self._max_seq
        if max_seq < 0:
            self._init_seq(seq)
        else:
            udelta = (seq - max_seq) & 0xFFFF
            if udelta < _MAX_DROPOUT:
                if seq < max_seq:  # in order, with permissible gap, and wrapped
                    self._cycles += _SEQ_MOD
                self._max_seq = seq
            elif udelta <= _SEQ_MOD - _MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return
                self._init_seq(seq)  # two sequential packets: the sender restarted
            # else: duplicate or reordered packet, counted below.
        self._received += 1
        # A.8: jitter from the change in relative transit time, in timestamp units.
        transit = arrival * self.clock_rate - timestamp
        prev = self._transit
        self._transit = transit
        if prev is not None:
            d = transit - prev
            if d > 2147483648.0:  # timestamp wrapped between the two packets
                d -= 4294967296.0
            elif d < -2147483648.0:
                d += 4294967296.0
            if d < 0:
                d = -d
            self._jitter += (d - self._jitter) / 16.0

    def cumulative_lost(self) -> int:
        """Packets lost since the start (A.3; negative when duplicates outnumber losses).

        Read-only: unlike ``report_block`` it does not start a new reporting interval, so a
        stats page can call it at any time.
        """
        if self._max_seq < 0:
            return 0
        return self._cycles + self._max_seq - self._base_seq + 1 - self._received

    def jitter_seconds(self) -> float:
        """The current interarrival jitter estimate (A.8) in seconds."""
        return self._jitter / self.clock_rate

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the talker's last SR so our next report carries LSR/DLSR (for its RTT)."""
        self._lsr = ntp_middle32(ntp_timestamp)
        self._lsr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """The report block for our next RR; starts a new 'fraction lost' interval.

        ``now`` is on the same clock as the ``arrival`` values. Before any packet the block
        is all zeros (callers normally omit it: check ``packets_received``).
        """
        if self._lsr:
            dlsr = round((now - self._lsr_arrival) * 65536.0)
            dlsr = 0 if dlsr < 0 else min(dlsr, 0xFFFFFFFF)
        else:
            dlsr = 0
        if self._max_seq < 0:
            return ReportBlock(self.ssrc, 0, 0, 0, 0, self._lsr, dlsr)
        extended_max = self._cycles + self._max_seq
        expected = extended_max - self._base_seq + 1
        lost = expected - self._received
        lost = max(-0x800000, min(0x7FFFFF, lost))
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            self.ssrc,
            fraction,
            lost,
            extended_max & 0xFFFFFFFF,
            int(self._jitter) & 0xFFFFFFFF,
            self._lsr,
            dlsr,
        )
