"""The outcome of a WebSocket handshake to walkie, as a browser page of some origin sees it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def ws_status(url: str, origin: str | None, **kwargs: Any) -> int:
    """101 when the handshake succeeds (and a ping is answered), else the HTTP status."""
    headers = {"Origin": origin} if origin else {}
    try:
        async with connect(url, additional_headers=headers, open_timeout=5, **kwargs) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code
