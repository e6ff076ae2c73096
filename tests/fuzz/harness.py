"""What every fuzz target shares: the failure type, the input framing, the target table.

A target fails in exactly two ways, and both are findings: an exception that is not the
module's documented rejection (it escapes the target), or :class:`InvariantBroken` (a
property that must hold for every input, checked with :func:`check`, such as
``parse(build(x)) == x``). ``check`` raises instead of using ``assert`` so that ``python -O``
cannot turn the checks off.

The table maps a target's name to ``"module:function"`` and is resolved only on demand, so
that ``tests/fuzz/run.py`` can import the target (and with it the code under test) inside
atheris' instrumentation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS", "REGRESSIONS", "TARGETS", "InvariantBroken", "Target", "check", "frames", "frame"]

CORPUS = Path(__file__).resolve().parent / "corpus"
#: Inputs that once failed, kept whole: a corpus merge may drop them, these stay.
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


class InvariantBroken(AssertionError):
    """A property every input must keep did not hold."""


def check(condition: object, message: str) -> None:
    """Raise :class:`InvariantBroken` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvariantBroken(message)


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split a multi-datagram input into ``(op, payload)`` frames.

    A frame is one op byte, a 2-byte big-endian length and that many payload bytes; a
    length that runs past the end takes what is left. Simple enough that seed inputs are
    written with :func:`frame` and mutations of a length still yield frames.
    """
    pos, n = 0, len(data)
    while pos < n:
        op = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        start = min(pos + 3, n)
        end = min(start + length, n)
        yield op, data[start:end]
        pos = end


def frame(op: int, payload: bytes) -> bytes:
    """One frame of :func:`frames` (for seed inputs and regression tests)."""
    return bytes([op]) + len(payload).to_bytes(2, "big") + payload


@dataclass(frozen=True)
class Target:
    """One fuzz target: what it covers and how big its inputs may grow."""

    name: str
    entry: str  # "module:function" taking the input bytes
    max_len: int  # libFuzzer -max_len: no real input of this kind is longer
    covers: str  # one line for docs and the campaign's table

    def load(self) -> Callable[[bytes], None]:
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def corpus(self) -> Path:
        return CORPUS / self.name

    @property
    def regressions(self) -> Path:
        return REGRESSIONS / self.name

    def inputs(self) -> list[Path]:
        """Every kept input: the corpus, then the regressions."""
        return [p for d in (self.corpus, self.regressions) if d.is_dir()
                for p in sorted(d.iterdir())]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("stun", "tests.fuzz.packets:stun", 1500,
               "sfu/ice.py binding_username + IceLiteSession.handle on aioice's codec"),
        Target("dtls", "tests.fuzz.packets:dtls", 4096,
               "sfu/demux.py + sfu/dtls.py DtlsEndpoint.receive/handle_timeout, both roles"),
        Target("rtp", "tests.fuzz.packets:rtp", 1500,
               "sfu/rtp.py parse_rtp, read_uplink (must agree), build_rtp round trip"),
        Target("red", "tests.fuzz.packets:red", 1500,
               "sfu/red.py red_layout, split_red, build_red, retag_red (RFC 2198)"),
        Target("rtcp", "tests.fuzz.packets:rtcp", 1500,
               "sfu/rtcp.py parse_rtcp + builders round trip, sfu/reports.py receive"),
        Target("sdp", "tests.fuzz.texts:sdp", 16384,
               "sfu/sdp parse_offer, select_audio, MediaCore.open_peer, build_answer"),
        Target("signaling", "tests.fuzz.texts:signaling", 4096,
               "signaling/messages.py parse_client_message (text and binary frames)"),
        Target("core", "tests.fuzz.mediacore:datagrams", 8192,
               "sfu.core.MediaCore with three connected peers (two RED): any datagram, "
               "any address"),
    )
}
