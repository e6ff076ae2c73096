"""The page's files over plain HTTP: routing, content types, ETags, no traversal.

The WebSocket server answers ordinary HTTP requests on the same port (websockets calls
``process_request`` before the upgrade); this module decides what to answer, independent of
websockets, so it can be tested without a socket.

Routes: ``/`` -> ``index.html``, ``/r/<room>`` -> ``room.html`` (the page reads the room from
its URL, which is why HTML must use absolute ``/static/...`` paths), ``/static/<file>`` ->
that file of www/, ``/sw.js`` -> ``sw.js`` (the service worker: from the root, its scope is
the whole site; ``no-cache`` like every file, so browsers see a new version at once). Only files with a known content type are served: ``www`` is a Python
package, and its ``__init__.py`` is nobody's business.
"""

from __future__ import annotations

import email.utils
import hashlib
import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from .messages import ROOM_RE

__all__ = ["CONTENT_TYPES", "HttpResponse", "StaticSite", "find_www_dir", "text_response"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".wav": "audio/wav",
    ".woff2": "font/woff2",
}

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class _Cached:
    mtime_ns: int
    size: int
    body: bytes
    etag: str


def find_www_dir() -> Path:
    """Locate the page: the installed ``www`` package, else the repository's www/."""
    try:
        candidate = importlib.resources.files("www").joinpath("room.html")
        if isinstance(candidate, Path) and candidate.is_file():
            return candidate.parent
    except (ModuleNotFoundError, TypeError, ValueError, OSError):
        pass
    return Path(__file__).resolve().parent.parent / "www"


def _common_headers() -> list[tuple[str, str]]:
    return [
        ("Date", email.utils.formatdate(usegmt=True)),
        # websockets closes the TCP connection after any non-upgrade response.
        ("Connection", "close"),
        ("X-Content-Type-Options", "nosniff"),
        # Room names are in our URLs; do not leak them to other sites.
        ("Referrer-Policy", "no-referrer"),
    ]


def text_response(
    status: int,
    reason: str,
    text: str,
    content_type: str = "text/plain; charset=utf-8",
    head: bool = False,
    extra: list[tuple[str, str]] | None = None,
) -> HttpResponse:
    body = text.encode("utf-8")
    headers = _common_headers() + [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    headers.extend(extra or [])
    return HttpResponse(status, reason, headers, b"" if head else body)


class StaticSite:
    """Serves the files of one directory under the routes above."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _Cached] = {}

    def respond(self, method: str, target: str, headers: Mapping[str, str]) -> HttpResponse:
        """The response to ``method target`` (``target`` as sent: path and query)."""
        path = target.split("?", 1)[0].split("#", 1)[0]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return text_response(
                405, "Method Not Allowed", "method not allowed\n", extra=[("Allow", "GET, HEAD")]
            )
        if path == "/":
            return self._file("index.html", head, headers)
        if path == "/sw.js":
            return self._file("sw.js", head, headers)
        if path.startswith("/r/"):
            room = unquote(path[3:])
            if ROOM_RE.fullmatch(room):
                return self._file("room.html", head, headers)
            lowered = room.lower()
            if ROOM_RE.fullmatch(lowered):
                # People type room names by hand; send them to the canonical URL.
                return text_response(
                    308, "Permanent Redirect", "see /r/" + lowered + "\n",
                    head=head, extra=[("Location", "/r/" + lowered)],
                )
            return self._not_found(head)
        if path.startswith("/static/"):
            relative = self._safe_relative(path[len("/static/"):])
            if relative is None:
                return self._not_found(head)
            return self._file(relative, head, headers)
        return self._not_found(head)

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _safe_relative(raw: str) -> str | None:
        """A relative path made of plain segments only, or None (traversal, dotfiles...)."""
        try:
            decoded = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        segments = decoded.split("/")
        if not segments or not all(_SAFE_SEGMENT.fullmatch(s) for s in segments):
            return None  # rejects "", ".", "..", ".hidden", backslashes, NUL, "%2e%2e"
        return "/".join(segments)

    def _file(self, relative: str, head: bool, headers: Mapping[str, str]) -> HttpResponse:
        content_type = CONTENT_TYPES.get(Path(relative).suffix.lower())
        if content_type is None:
            return self._not_found(head)
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):  # a symlink pointing out of www/
            return self._not_found(head)
        cached = self._load(path)
        if cached is None:
            return self._not_found(head)
        common = _common_headers() + [
            ("Cache-Control", "no-cache"),  # always revalidate: pages change with deploys
            ("ETag", cached.etag),
        ]
        if _etag_matches(headers.get("If-None-Match"), cached.etag):
            return HttpResponse(304, "Not Modified", common)
        common += [("Content-Type", content_type), ("Content-Length", str(cached.size))]
        return HttpResponse(200, "OK", common, b"" if head else cached.body)

    def _load(self, path: Path) -> _Cached | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        cached = self._cache.get(path)
        if cached is not None and (cached.mtime_ns, cached.size) == (stat.st_mtime_ns, stat.st_size):
            return cached
        try:
            body = path.read_bytes()
        except OSError:
            return None
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        cached = _Cached(stat.st_mtime_ns, len(body), body, etag)
        self._cache[path] = cached
        return cached

    @staticmethod
    def _not_found(head: bool) -> HttpResponse:
        return text_response(404, "Not Found", "not found\n", head=head)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate in ("*", etag):
            return True
    return False
