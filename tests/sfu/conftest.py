"""Fixtures shared by the media plane tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import sfu
from sfu.pool import WorkerPool

from .poolkit import worker_children


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    """Two real media worker processes on ephemeral ports (and the warm spare)."""
    p = await WorkerPool.start(2, sfu.RouterConfig(host="127.0.0.1", port=0))
    yield p
    await p.close()
    assert worker_children() == []
