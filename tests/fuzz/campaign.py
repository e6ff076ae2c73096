"""Run fuzzing campaigns, one target at a time, bounded in inputs and time.

    nice -n 19 .venv/bin/python -m tests.fuzz.campaign --runs 1000000 --max-time 3600
    nice -n 19 .venv/bin/python -m tests.fuzz.campaign rtp sdp --runs 200000 --merge

Each target runs in its own ``tests/fuzz/run.py`` process (libFuzzer exits when done) on a
copy of its corpus: new inputs go to ``WORKDIR/<target>/new``, crashes to
``WORKDIR/<target>/crash-*``, libFuzzer's output to ``WORKDIR/<target>.log``; the repository's
corpus is only changed by ``--merge``, which replaces it with libFuzzer's minimal set of
files (``-merge=1``) that keeps the coverage of the old corpus plus the new inputs. A table of
inputs run, speed, coverage and crashes ends the run (``--json`` writes it as JSON too);
the exit status is 1 if any target found a failure. ``tests/fuzz/test_fuzz.py`` uses
:func:`run_target` for the short campaign in ``ci/test``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .harness import TARGETS, Target

__all__ = ["Result", "merge_corpus", "run_target"]

_ROOT = Path(__file__).resolve().parents[2]
_PROGRESS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", re.M)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)


@dataclass
class Result:
    """What one campaign of one target did (from libFuzzer's own report)."""

    target: str
    runs: int = 0
    seconds: float = 0.0
    exec_per_s: int = 0
    cov: int = 0  # libFuzzer's "cov": instrumented edges (Python branches) reached
    ft: int = 0  # libFuzzer's "ft": features (edges with hit-count buckets)
    corpus_files: int = 0
    new_units: int = 0
    peak_rss_mb: int = 0
    exit_code: int = 0
    crashes: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.crashes

    def row(self) -> str:
        verdict = "ok" if self.ok else f"FAILED ({', '.join(self.crashes) or self.exit_code})"
        return (f"| {self.target} | {self.runs:,} | {self.seconds:,.0f} | {self.exec_per_s:,} | "
                f"{self.cov} / {self.ft} | {self.corpus_files} | {verdict} |")


def _command(target: Target, workdir: Path, flags: list[str], *dirs: Path) -> list[str]:
    """The libFuzzer command line, through a script that runs ``tests.fuzz.run TARGET``:
    libFuzzer re-runs its argv[0] for ``-merge=1``, so that must be a program."""
    wrapper = workdir / f"run-{target.name}"
    wrapper.write_text(f'#!/bin/sh\ncd {shlex.quote(str(_ROOT))} && WALKIE_FUZZ_ARGV0="$0" exec '
                       f'{shlex.quote(sys.executable)} -m tests.fuzz.run {target.name} "$@"\n')
    wrapper.chmod(0o755)
    return [str(wrapper), f"-max_len={target.max_len}", *flags, *(str(d) for d in dirs)]


def run_target(target: Target, runs: int, max_time: int, workdir: Path,
               seed: int = 0) -> Result:
    """One bounded campaign of ``target`` from its corpus; the corpus is not changed."""
    new = workdir / target.name / "new"
    new.mkdir(parents=True, exist_ok=True)
    flags = [f"-runs={runs}", f"-max_total_time={max_time}", "-timeout=30",
             "-rss_limit_mb=2048", "-print_final_stats=1", f"-seed={seed}",
             f"-artifact_prefix={workdir / target.name}/"]
    log = workdir / f"{target.name}.log"  # written as it runs: `tail -f` shows progress
    started = time.monotonic()
    with log.open("w") as sink:
        seeds = [d for d in (target.corpus, target.regressions) if d.is_dir()]
        done = subprocess.run(_command(target, workdir, flags, new, *seeds), cwd=_ROOT,
                              stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                              timeout=max_time + 600)
    result = Result(target.name, seconds=time.monotonic() - started, exit_code=done.returncode)
    result.log = log.read_text(errors="replace")
    stats = {k: int(v) for k, v in _STAT.findall(result.log)}
    result.runs = stats.get("number_of_executed_units", 0)
    # libFuzzer's average is whole runs per whole second of fuzzing (0 in a sub-second run)
    result.exec_per_s = stats.get("average_exec_per_sec") or round(result.runs / result.seconds)
    result.new_units = stats.get("new_units_added", 0)
    result.peak_rss_mb = stats.get("peak_rss_mb", 0)
    progress = _PROGRESS.findall(result.log)
    if progress:
        _, cov, ft, files, _ = progress[-1]
        result.cov, result.ft, result.corpus_files = int(cov), int(ft), int(files)
    result.crashes = sorted(p.name for p in (workdir / target.name).iterdir()
                            if p.name.split("-")[0] in ("crash", "timeout", "oom", "leak"))
    return result


def merge_corpus(target: Target, workdir: Path) -> int:
    """Replace the repository corpus by the minimal set covering it and the new inputs."""
    merged = workdir / target.name / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    subprocess.run(_command(target, workdir, ["-merge=1"], merged, target.corpus,
                            workdir / target.name / "new"),
                   cwd=_ROOT, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    if not any(merged.iterdir()):
        raise RuntimeError(f"merging the {target.name} corpus gave nothing; corpus left as it was")
    for old in target.corpus.iterdir():
        old.unlink()
    for path in merged.iterdir():
        shutil.copy(path, target.corpus / path.name)
    return len(list(merged.iterdir()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.campaign",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[],
                        metavar="TARGET", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--max-time", type=int, default=3600, help="seconds per target")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer -seed (0: random)")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--merge", action="store_true",
                        help="minimise the repository corpus with what the run found")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="walkie-fuzz-"))
    print(f"work directory: {workdir}", flush=True)
    results = []
    print("| target | inputs | s | exec/s | cov / ft | corpus | result |\n|---|---|---|---|---|---|---|",
          flush=True)
    for name in args.targets or list(TARGETS):
        result = run_target(TARGETS[name], args.runs, args.max_time, workdir, args.seed)
        results.append(result)
        print(result.row(), flush=True)
        if args.merge and result.ok:
            files = merge_corpus(TARGETS[name], workdir)
            print(f"  {name}: corpus merged to {files} files", flush=True)
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in asdict(r).items() if k != "log"}
                                         for r in results], indent=1) + "\n")
    for result in results:
        if not result.ok:
            print(f"\n{result.target}: see {workdir / result.target}.log", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
