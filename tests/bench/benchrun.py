"""Run ``python -m bench`` as a user would, in a child process, and read its JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(args: list[str], tmp_path: Path, timeout: float = 180) -> dict[str, Any]:
    """The JSON of ``python -m bench ARGS --json FILE``; fails the test on a non-zero exit."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    return result
