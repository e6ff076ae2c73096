"""One atheris (libFuzzer) process for one target: ``python -m tests.fuzz.run TARGET ARGS``.

ARGS are libFuzzer's own (``-runs=``, ``-max_total_time=``, ``-merge=1``, corpus
directories: the first one receives new inputs). The code under test (``sfu``,
``signaling``, and ``aioice``, whose STUN codec ``sfu/ice.py`` relies on) is imported inside
atheris' instrumentation so that its branches guide the mutations. Usually started by
``tests/fuzz/campaign.py``, which sets the flags and reads the results.
"""

from __future__ import annotations

import os
import sys

import atheris

from .harness import TARGETS

INSTRUMENTED = ["sfu", "signaling", "aioice"]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [libFuzzer flags]")
    with atheris.instrument_imports(include=INSTRUMENTED):
        one_input = TARGETS[argv[1]].load()
    # libFuzzer's -merge=1 re-runs argv[0] as a program: campaign.py's wrapper script says
    # which (run.py itself is not executable).
    atheris.Setup([os.environ.get("WALKIE_FUZZ_ARGV0", argv[0]), *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
