"""Fixtures for the protocol tests: the real server + the real media plane on 127.0.0.1.

Both run in-process on ephemeral ports (HTTP/WebSocket and UDP), and clients are plain
``websockets`` clients speaking the JSON protocol, exactly as a browser page would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import sfu
from signaling.server import ServerConfig, SignalingServer

from .hookreceiver import Receiver

TIMEOUT = 5.0


class WsClient:
    """A protocol client that keeps every message it received, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.backlog: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        message = json.loads(text)
        assert isinstance(message, dict) and isinstance(message.get("type"), str), message
        self.seen.append(message)
        return message

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (others are kept for later ``expect`` calls)."""
        for i, message in enumerate(self.backlog):
            if message["type"] == kind:
                del self.backlog[i]
                return self._check(message, fields)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        skipped: list[dict[str, Any]] = []
        try:
            while True:
                text = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - loop.time()))
                message = json.loads(text)
                self.seen.append(message)
                if message["type"] == kind:
                    return self._check(message, fields)
                skipped.append(message)
        finally:
            self.backlog.extend(skipped)

    @staticmethod
    def _check(message: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            assert message.get(key) == value, (key, message)
        return message

    async def join(self, room: str, name: str, password: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "join", "room": room, "name": name}
        if password is not None:
            message["password"] = password
        await self.send(message)
        return await self.expect("joined")

    async def ping(self) -> None:
        """Round trip: proves the session is alive and everything before it was handled."""
        await self.send({"type": "ping"})
        await self.expect("pong")

    async def closed(self, timeout: float = TIMEOUT) -> int | None:
        """Wait for the server to close us; returns the close code."""
        try:
            while True:
                text = await asyncio.wait_for(self.ws.recv(), timeout)
                self.backlog.append(json.loads(text))
        except ConnectionClosed:
            pass
        return self.ws.close_code

    async def nothing_more(self, wait: float = 0.2) -> None:
        """Assert no message arrives (after a ping round trip flushed what was pending)."""
        assert not self.backlog, self.backlog
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(self.ws.recv(), wait)


@pytest.fixture
async def router() -> AsyncIterator[sfu.Router]:
    r = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    try:
        yield r
    finally:
        await r.close()


ServerFactory = Callable[..., Awaitable[SignalingServer]]


@pytest.fixture
async def make_server(router: sfu.Router) -> AsyncIterator[ServerFactory]:
    servers: list[SignalingServer] = []

    async def make(**overrides: Any) -> SignalingServer:
        settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "tick_interval": 0.05}
        settings.update(overrides)
        server = await SignalingServer.start(ServerConfig(**settings), router)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: ServerFactory) -> SignalingServer:
    return await make_server()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (tests/signaling/hookreceiver.py)."""
    r = Receiver()
    r.server = await asyncio.start_server(r._handle, "127.0.0.1", 0)
    yield r
    r.server.close()


ClientFactory = Callable[..., Awaitable[WsClient]]


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[[SignalingServer], Awaitable[WsClient]]]:
    clients: list[WsClient] = []

    async def make(server: SignalingServer, **kwargs: Any) -> WsClient:
        host, port = server.address
        ws = await connect(f"ws://{host}:{port}/ws", open_timeout=TIMEOUT, **kwargs)
        client = WsClient(ws)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.ws.close()


@pytest.fixture
async def new_client(
    server: SignalingServer,
    client_factory: Callable[[SignalingServer], Awaitable[WsClient]],
) -> Callable[[], Awaitable[WsClient]]:
    """A client of the default server."""

    async def make() -> WsClient:
        return await client_factory(server)

    return make


async def http(server: SignalingServer, request: str) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 exchange (raw so that paths like /static/../x reach the server as sent)."""
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)  # server closes after responding
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


def get(path: str, method: str = "GET", extra: str = "") -> str:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n"
