"""Fixtures for the browser tests (see harness.py for why they look the way they do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, Server, chromium_skip_reason, start_server, write_tone


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone(tmp_path_factory.mktemp("audio") / "tone440.wav")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(*extra: str) -> Server:
        server = start_server(tmp_path, *extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory()


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[object]:
    reason = chromium_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright_instance, tone_wav: Path) -> Iterator[object]:
    """One Chromium whose fake mic plays the 440 Hz tone (shared by all its pages)."""
    b = playwright_instance.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={tone_wav}"],
    )
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(playwright_instance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The landing page of a real server, for unit tests of the page's modules: they import
    /static/<module>.js exactly as the page does (one browser and server per test module)."""
    server = start_server(tmp_path_factory.mktemp("modules"))
    try:
        b = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = b.new_page()
        pg.goto(server.url + "/")
        yield pg
        b.close()
    finally:
        server.stop()
