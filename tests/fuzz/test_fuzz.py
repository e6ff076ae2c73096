"""The fuzz targets inside ci/test: every corpus file, the regressions, a short campaign.

Replaying the corpus (seeds plus what campaigns kept, tests/fuzz/corpus) needs no libFuzzer
and checks in seconds that no input a campaign once explored fails now. The short campaign
runs atheris for a bounded number of inputs per target (bounded in time too) from that
corpus, so a change that breaks a parser in a new way has a chance to be caught here rather
than by the next long campaign (docs/SECURITY.md, "Fuzzing").
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

import pytest

from tests.fuzz.campaign import run_target
from tests.fuzz.harness import TARGETS, Target

#: Inputs per target in ci/test; about 45 s for all eight on this project's 2-core machine.
SHORT_RUNS = 2000
SHORT_SECONDS = 60


@pytest.mark.parametrize("target", TARGETS.values(), ids=list(TARGETS))
def test_every_corpus_file_passes(target: Target) -> None:
    """The corpus and the inputs that once failed (tests/fuzz/regressions)."""
    files = target.inputs()
    assert files, f"no corpus for {target.name}: run python -m tests.fuzz.seeds"
    one_input = target.load()
    for path in files:
        one_input(path.read_bytes())


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None and platform.machine() != "x86_64",
    reason="atheris (the test extra installs it on x86-64 only) has no wheel for this machine",
)
@pytest.mark.parametrize("target", TARGETS.values(), ids=list(TARGETS))
def test_a_short_campaign_finds_nothing(target: Target, tmp_path: Path) -> None:
    result = run_target(target, SHORT_RUNS, SHORT_SECONDS, tmp_path, seed=1)
    assert result.ok, result.log[-4000:]
    assert result.runs > 0, result.log[-4000:]
    assert sorted(p.name for p in target.corpus.iterdir()), "the campaign emptied the corpus"
