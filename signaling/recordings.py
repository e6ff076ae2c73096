"""What recording decides, without touching a disk: file names, index lines, what to sweep.

The I/O is in recorder.py; here are its rules, pure and tested on their own:

* :func:`file_name`: ``<UTC start>_<room>_<talker>.opus``, e.g.
  ``20261201T023000.123Z_ops-north_Ann.opus``. The time comes first so that a listing sorts
  by time; room and display name are reduced to letters, digits, ``-``, ``_`` and ``.``
  (any script: ``Zoë`` and ``鈴木`` stay readable), pieces made only of dots left out, cut
  to :data:`PART_CHARS`, never starting with a dot or a dash. So no name, whatever it holds (``../../etc``, ``/``, NUL, newlines, RTL marks,
  a thousand characters), can leave the directory, hide a file, or break a line of a log or a
  terminal. The index keeps the names as they were.
* :func:`index_line`: one JSON object per recording for ``index.jsonl``.
* :func:`expired`: which of a directory's names are recordings older than the retention,
  by the start time in the name (a backup restore that resets modification times changes
  nothing); files that do not look like ours are never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["INDEX", "PART_CHARS", "SUFFIX", "expired", "file_name", "index_line", "safe_part",
           "started_at"]

#: The index of a recording directory: one JSON object per line, one line per file.
INDEX = "index.jsonl"
#: RFC 7845 §9: ``.opus`` is the extension of Ogg files holding only Opus.
SUFFIX = ".opus"
#: The longest room or talker part of a file name, in characters (the name stays under
#: the 255 bytes file systems allow, even in 4-byte UTF-8).
PART_CHARS = 40

_TIME_FORMAT = "%Y%m%dT%H%M%S"
_OURS = re.compile(r"^(\d{8}T\d{6})\.(\d{3})Z_.+\.opus$")
_UNSAFE_RUN = re.compile(r"[^\w.-]+")


def safe_part(text: str) -> str:
    """``text`` as a piece of a file name: see the module docstring (never empty)."""
    text = unicodedata.normalize("NFC", text)
    kept = "".join(c if (c.isalnum() or c in "-_.") and c.isprintable() else " " for c in text)
    pieces = [p for p in _UNSAFE_RUN.sub("-", kept.strip()).split("-") if p.strip(".")]
    part = "-".join(pieces).lstrip(".-")[:PART_CHARS].rstrip("-.")  # no "..", no ".x", no "-x"
    return part or "x"


def _stamp(started_at: float) -> str:
    when = dt.datetime.fromtimestamp(started_at, dt.timezone.utc)
    return f"{when:{_TIME_FORMAT}}.{when.microsecond // 1000:03d}Z"


def file_name(room: str, talker: str, started_at: float, attempt: int = 0) -> str:
    """The recording's file name; ``attempt`` > 0 when a file of that name exists already
    (two talkers who start in the same millisecond with the same safe names)."""
    extra = f"-{attempt + 1}" if attempt else ""
    return f"{_stamp(started_at)}_{safe_part(room)}_{safe_part(talker)}{extra}{SUFFIX}"


def started_at(name: str) -> float | None:
    """The start time (Unix) in a recording's file name; None: not one of ours."""
    match = _OURS.match(name)
    if match is None:
        return None
    try:
        when = dt.datetime.strptime(match.group(1), _TIME_FORMAT)
    except ValueError:
        return None
    return when.replace(tzinfo=dt.timezone.utc).timestamp() + int(match.group(2)) / 1000


def iso(moment: float) -> str:
    """Unix time as ISO 8601 UTC, to the millisecond (the ``DATE`` tag, the index)."""
    when = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def index_line(file: str, room: str, talker: str, talker_id: str, start: float,
               duration: float, size: int, truncated: bool) -> str:
    """One line of ``index.jsonl`` (with its newline)."""
    entry = {"file": file, "room": room, "talker": talker, "talker_id": talker_id,
             "start": iso(start), "duration_s": round(duration, 3), "bytes": size,
             "truncated": truncated}
    return json.dumps(entry, ensure_ascii=False) + "\n"


def expired(names: Iterable[str], now: float, keep_days: float) -> list[str]:
    """The recordings among ``names`` that started more than ``keep_days`` before ``now``
    (``keep_days`` 0: keep everything)."""
    if keep_days <= 0:
        return []
    limit = now - keep_days * 86400
    return sorted(name for name in names
                  if (start := started_at(name)) is not None and start < limit)
