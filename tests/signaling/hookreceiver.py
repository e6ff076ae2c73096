"""A local HTTP receiver for webhooks on loopback (tests of signaling/webhooks.py and of the
webhook counters in /metrics): it records each POST and answers from a script of statuses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["Receiver"]


class Receiver:
    """A loopback HTTP server that records each POST and answers from a script of statuses
    (then 200); ``hang`` makes it accept and never answer."""

    def __init__(self, statuses: list[int] | None = None, hang: bool = False) -> None:
        self.statuses = list(statuses or [])
        self.hang = hang
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Condition()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks?k=1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            headers[":request"] = lines[0]
            body = await reader.readexactly(int(headers["content-length"]))
            if self.hang:
                await asyncio.sleep(3600)
            status = self.statuses.pop(0) if self.statuses else 200
            async with self.arrived:
                self.requests.append((headers, body))
                self.arrived.notify_all()
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= count),
                                   timeout)
        return [json.loads(body) for _, body in self.requests]
