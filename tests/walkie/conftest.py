"""Fixtures for the ``walkie`` command's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .serverproc import Serve


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """``serve(*argv, env=...)`` starts ``walkie serve``; every server is stopped at the end."""
    started: list[Serve] = []

    def make(*argv: str, env: dict[str, str] | None = None) -> Serve:
        server = Serve(tmp_path, *argv, env=env)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
