"""Which WebSocket connection a log line is about: a context variable the server sets for
each session (``server.py``), and a logging filter that copies it onto every record.

asyncio copies the context into every task a session starts (its writer, its offers), so
anything logged while handling a connection carries its id, with no parameter passed down.
The id is the session's serial number (``c17``): it says nothing about the client.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

__all__ = ["ConnectionFilter", "connection_id"]

#: The connection being handled, e.g. "c17"; None outside any session.
connection_id: ContextVar[str | None] = ContextVar("walkie_connection_id", default=None)


class ConnectionFilter(logging.Filter):
    """Sets ``record.conn`` from :data:`connection_id` (JSON logs show it as ``conn``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        conn = connection_id.get()
        if conn is not None:
            record.conn = conn
        return True
