"""Which lines of the code under test a target's corpus runs: ``python -m tests.fuzz.linecov``.

libFuzzer's ``cov`` counts instrumented branches, which says little to a reader; this
replays a corpus under the standard library's tracer (no dependency) and prints, for each
module a target covers, the executable lines it ran out of all of them. Run it in a fresh
process (it must see the modules imported), after a campaign has grown the corpus.
"""

from __future__ import annotations

import dis
import subprocess
import sys
import trace
from pathlib import Path
from types import CodeType

from .harness import TARGETS, Target

__all__ = ["MODULES", "executable_lines"]

_ROOT = Path(__file__).resolve().parents[2]

#: The modules each target is about (others it passes through are not counted).
MODULES = {
    "stun": ["sfu/ice.py"],
    "dtls": ["sfu/dtls.py", "sfu/certificate.py"],
    "rtp": ["sfu/rtp.py"],
    "rtcp": ["sfu/rtcp.py", "sfu/reports.py", "sfu/reception.py"],
    "sdp": ["sfu/sdp/parse.py", "sfu/sdp/select.py", "sfu/sdp/answer.py", "sfu/sdp/model.py",
            "sfu/sdp/roles.py"],
    "red": ["sfu/red.py"],
    "signaling": ["signaling/messages.py"],
    "core": ["sfu/core.py", "sfu/peer.py", "sfu/demux.py", "sfu/room.py", "sfu/transmit.py",
             "sfu/rewriter.py"],
}


def executable_lines(path: Path) -> set[int]:
    """Every line that starts a bytecode run in ``path`` (docstrings and blanks excluded)."""
    lines: set[int] = set()
    stack = [compile(path.read_text(), str(path), "exec")]
    while stack:
        code: CodeType = stack.pop()
        lines.update(line for _, line in dis.findlinestarts(code) if line)
        stack.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return lines


def _replay(target: Target) -> None:
    one_input = target.load()
    for path in target.inputs():
        one_input(path.read_bytes())


def main(argv: list[str]) -> None:
    """``[--missing] [TARGET ...]``: ``--missing`` also lists the lines never run."""
    missing = "--missing" in argv
    names = [a for a in argv if a != "--missing"] or list(TARGETS)
    if len(names) > 1:  # one process each: a module imported before tracing looks unrun
        for name in names:
            subprocess.run([sys.executable, "-m", "tests.fuzz.linecov", name]
                           + ["--missing"] * missing,
                           cwd=_ROOT, check=True)
        return
    for name in names:
        tracer = trace.Trace(count=1, trace=0)
        tracer.runfunc(_replay, TARGETS[name])
        counts = tracer.results().counts
        for module in MODULES[name]:
            path = _ROOT / module
            run = {line for (file, line) in counts if file == str(path)}
            lines = executable_lines(path)
            print(f"{name}: {module} {len(run & lines)}/{len(lines)} lines")
            if missing:
                print("  not run:", " ".join(map(str, sorted(lines - run))))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
