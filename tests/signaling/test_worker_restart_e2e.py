"""End to end: a media worker is killed while someone talks, and everyone hears again.

Two members join one room through a real ``walkie serve`` (signaling in its process, media in
a worker process). aiortc, an independent WebRTC stack, is each member's browser, with a
noise "microphone". Ann holds the floor and Bob hears her; then the worker gets SIGKILL.
Both clients do what docs/PROTOCOL.md asks on ``media`` ``reset`` (close the old connection,
open a new one with the same track, offer again on the same socket), and Bob hears Ann again,
with nobody leaving and the floor unchanged. The Chromium version is in tests/browser.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

aiortc = pytest.importorskip("aiortc")
import aioice.ice  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.browser.harness import Server, start_server  # noqa: E402
from tests.sfu.test_interop_aiortc import NoiseTrack  # noqa: E402

from .conftest import WsClient  # noqa: E402


class Member:
    """One page: a signaling socket, a microphone track, the current RTCPeerConnection and
    what it heard (decoded audio frames with sound in them, per connection)."""

    def __init__(self, ws: WsClient, mic: MediaStreamTrack) -> None:
        self.ws = ws
        self.mic = mic
        self.pc: RTCPeerConnection | None = None
        self.heard: list[list[float]] = []  # per connection: arrival times of loud frames
        self._listeners: list[asyncio.Task[None]] = []

    async def media_up(self) -> None:
        """A new RTCPeerConnection with the same mic; offer; answer; ``media`` ``connected``."""
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        heard: list[float] = []
        self.heard.append(heard)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._listeners.append(asyncio.ensure_future(_listen(track, heard)))

        pc.addTransceiver(self.mic, direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await self.ws.expect("answer", timeout=10)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await self.ws.expect("media", state="connected", timeout=10)

    async def recover(self) -> dict[str, Any]:
        """On ``media`` ``reset``: close the old connection, then set up a new one."""
        reset = await self.ws.expect("media", state="reset", timeout=10)
        assert self.pc is not None
        await self.pc.close()
        await self.media_up()
        return reset

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in self._listeners:
            task.cancel()
        await self.ws.ws.close()


async def _listen(track: MediaStreamTrack, heard: list[float]) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if abs(frame.to_ndarray()).max() > 100:  # the talker's noise, not silence
            heard.append(time.monotonic())


async def _until(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _health(server: Server) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
            return json.loads(response.read())

    return await asyncio.to_thread(fetch)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # aioice leaves loopback out when it gathers; this test's namespace has nothing else.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    started = start_server(tmp_path)  # `python -m walkie serve`: one media worker process
    yield started
    started.stop()


async def test_killing_the_media_worker_while_ann_talks_and_bob_hears_her_again(
    server: Server,
) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/ws"
    ann = Member(WsClient(await connect(ws_url)), NoiseTrack(seed=1))
    bob = Member(WsClient(await connect(ws_url)), NoiseTrack(seed=2))
    try:
        await ann.ws.join("ops", "Ann")
        await bob.ws.join("ops", "Bob")
        await ann.media_up()
        await bob.media_up()
        await ann.ws.send({"type": "floor_request"})
        await ann.ws.expect("floor_granted")
        await _until(lambda: len(bob.heard[0]) >= 25, "Bob hearing Ann (0.5 s of audio)")

        health = await _health(server)
        (worker,) = health["media"]["workers"]
        while not health["media"]["spare_ready"]:
            await asyncio.sleep(0.1)
            health = await _health(server)
        port, pid = worker["address"][1], worker["pid"]
        await ann.ws.ping()  # read everything sent before the kill
        await bob.ws.ping()
        mark_a, mark_b = len(ann.ws.seen), len(bob.ws.seen)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)  # the server's media worker, by the pid it reports

        resets = await asyncio.gather(ann.recover(), bob.recover())
        assert all(r["reason"] == "media worker restarted" for r in resets)
        await _until(lambda: len(bob.heard[1]) >= 25, "Bob hearing Ann again")
        again = bob.heard[1][0] - killed
        print(f"\nkill -9 -> Bob hears Ann again: {again * 1000:.0f} ms")

        # Nobody left, the floor never moved: Ann still holds it, Bob is told so again.
        await bob.ws.send({"type": "floor_request"})
        await bob.ws.expect("floor_queued", position=1)
        for member, mark in ((ann, mark_a), (bob, mark_b)):
            kinds = [m["type"] for m in member.ws.seen[mark:]]
            assert "member_left" not in kinds and "floor" not in kinds, kinds
        health = await _health(server)
        (worker,) = health["media"]["workers"]
        assert worker["restarts"] == 1 and worker["alive"] and worker["pid"] != pid
        assert worker["address"][1] == port  # the same UDP port
        print(f"restart (death noticed -> new worker ready): {worker['last_restart_ms']} ms")
        assert health["members"] == 2
    finally:
        await ann.close()
        await bob.close()
