"""A throwaway web site on 127.0.0.1 serving one empty HTML page at every path."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def blank_page(title: str) -> Iterator[str]:
    """Serve ``<title>title</title>`` in a thread; yields the site's origin URL.

    Browsers need a real http:// page for some tests: getUserMedia wants a secure context
    (http://127.0.0.1 is one), and an Origin check needs a page from another origin.
    """
    body = f"<!doctype html><title>{title}</title>".encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
