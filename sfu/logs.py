"""Log lines as text or as one JSON object per line, for the signaling process and the media
workers alike (``walkie serve --log-format json``).

It lives in ``sfu`` because a media worker process imports nothing but the media plane; the
signaling process uses the same formatter and adds its connection id through a filter
(``signaling/logcontext.py``) that sets ``record.conn``. A worker learns the format from the
environment variable :data:`LOG_FORMAT_ENV`, which it inherits from the parent (the same
name as ``walkie serve``'s setting, so setting it for the service does both).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

__all__ = ["FORMATS", "LOG_FORMAT_ENV", "JsonFormatter", "configure"]

LOG_FORMAT_ENV = "WALKIE_LOG_FORMAT"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "pid", ["conn"], ["exc"]}`` on one line.

    ``time`` is UTC ISO 8601 with milliseconds; ``conn`` is the WebSocket connection the
    line was logged while handling (when a filter set it); ``exc`` a traceback, if any.
    Non-ASCII stays readable; newlines inside values are escaped by JSON, so one record is
    always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        conn = getattr(record, "conn", None)
        if conn is not None:
            entry["conn"] = conn
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: int | str, fmt: str | None = None, text_format: str | None = None,
              filters: tuple[logging.Filter, ...] = ()) -> logging.Handler:
    """Send the root logger's records to stderr in ``fmt`` (``text`` or ``json``; None: the
    environment's :data:`LOG_FORMAT_ENV`, else text). Returns the handler."""
    fmt = fmt or os.environ.get(LOG_FORMAT_ENV) or "text"
    if fmt not in FORMATS:
        fmt = "text"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        text_format or "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for f in filters:
        handler.addFilter(f)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
