"""End to end: ``walkie serve --record DIR`` writes a talker's turn as an Ogg Opus file that
decodes to the tone it sent, for the time it talked.

A real server (signaling in its process, media in a worker process, which hands the turn to
signaling over its control channel). The talker is the bench's synthetic client (ICE,
DTLS, SRTP; Opus frames of a 440 Hz tone encoded with opuslib, one every 20 ms); a plain
WebSocket member sees that the room is recorded (``joined.recorded``) and /healthz says so.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opuslib")

import websockets  # noqa: E402

from bench.audio import encode_loop  # noqa: E402
from bench.client import SyntheticClient  # noqa: E402
from bench.context import BenchContext  # noqa: E402
from bench.freeze import ws_url  # noqa: E402
from bench.server import ServerProcess, fetch_healthz  # noqa: E402
from signaling.recordings import INDEX  # noqa: E402

from ..oggopus import decode, frequency, rms  # noqa: E402

FRAMES = 100  # two seconds of talk


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def server(record_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess.start(max_users=15, core=None,
                                 extra_args=["--record", str(record_dir)])
    try:
        yield server
    finally:
        server.stop()


async def wait_for_index(record_dir: Path, timeout: float = 15.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = record_dir / INDEX
        if index.exists() and index.read_text().strip():
            return [json.loads(line) for line in index.read_text().splitlines()]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recording in {record_dir} within {timeout} s")


async def test_a_turn_is_recorded_and_decodes_to_the_tone(server: ServerProcess,
                                                          record_dir: Path) -> None:
    health = await fetch_healthz(server.url)
    assert health is not None and health["recording"] is True
    async with websockets.connect(ws_url(server.url)) as observer:
        await observer.send(json.dumps({"type": "join", "room": "rec-e2e", "name": "Obs"}))
        joined = json.loads(await asyncio.wait_for(observer.recv(), 10.0))
        assert joined["type"] == "joined" and joined["recorded"] is True

        ctx = BenchContext(encode_loop("tone", 1.0), kernel_timestamps=False)
        talker = SyntheticClient(ctx, "rec-e2e", "Ann Talker")
        try:
            await talker.join(ws_url(server.url), None, timeout=20.0)
            talker.start_talking()
            outcome, _ = await talker.request_floor(timeout=10.0)
            assert outcome == "granted"
            talker.granted()
            start = time.monotonic()
            for tick in range(FRAMES):  # on a 20 ms metronome, bounded by FRAMES
                talker.send_frame(tick)
                await asyncio.sleep(max(0.0, start + (tick + 1) * 0.02 - time.monotonic()))
            talker.stop_talking()
            assert await talker.release_floor()
            (entry,) = await wait_for_index(record_dir)
        finally:
            await talker.close()
    assert (entry["room"], entry["talker"], entry["talker_id"]) == ("rec-e2e", "Ann Talker",
                                                                    talker.id)
    assert entry["truncated"] is False
    assert entry["duration_s"] == pytest.approx(FRAMES * 0.02, abs=0.001)
    path = record_dir / str(entry["file"])
    assert path.name.endswith("_rec-e2e_Ann-Talker.opus")
    data = path.read_bytes()
    assert entry["bytes"] == len(data)
    info, samples = decode(data)
    assert info.tags["TALKER"] == "Ann Talker" and info.tags["ROOM"] == "rec-e2e"
    assert len(samples) == FRAMES * 960 - info.pre_skip  # every frame, nothing concealed
    middle = samples[4800:-4800]
    assert frequency(middle) == pytest.approx(440, abs=5)
    assert rms(middle) > 3000
