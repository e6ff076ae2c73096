"""The README's promises: its embedding example runs as printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_embedding_example_answers_a_real_offer(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert "port=40000" in code
    script = tmp_path / "embed.py"
    script.write_text(code.replace("port=40000", "port=0"))  # any free port in the test
    offer = (ROOT / "tests/sfu/fixtures/chrome_audio.sdp").read_text()
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(offer)
        proc.stdin.close()
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("a=ssrc:"):
                break
        answer = "\n".join(lines)
        assert answer.startswith("v=0")
        assert "a=ice-lite" in answer and "a=setup:passive" in answer
        assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host", answer)
        proc.send_signal(signal.SIGINT)
        proc.stdin = None  # already closed: communicate() must not flush it
        _, err = proc.communicate(timeout=10)
        assert "'room_id': 'lobby'" in err  # the finally block ran: clean shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
