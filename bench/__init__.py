"""walkie bench: synthetic Opus push-to-talk users load-testing a walkie server.

``walkie bench --rooms R --users U --duration S [--json FILE] [--plot FILE] [--find-max]``
(also ``python -m bench``). Each user speaks the real signaling protocol and runs a real
client-side WebRTC stack (ICE controlling, DTLS client, SRTP) with pre-encoded Opus audio;
the bench measures join time, floor access time, added forwarding latency, loss, sequence
continuity and server CPU per forwarded packet. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench command line; returns the process exit code."""
    from .cli import main as cli_main

    return cli_main(argv)
