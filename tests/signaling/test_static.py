"""Static files without a socket: routes, content types, ETags, HEAD, traversal."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.static import StaticSite, find_www_dir


@pytest.fixture
def site(tmp_path: Path) -> StaticSite:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<h1>walkie</h1>")
    (www / "room.html").write_text("<h1>room</h1>")
    (www / "app.js").write_text("console.log(1)")
    (www / "style.css").write_text("body{}")
    (www / "icon.svg").write_text("<svg/>")
    (www / "sw.js").write_text("self.x = 1")
    (www / "__init__.py").write_text("SECRET = 1")
    (www / ".env").write_text("SECRET=1")
    (www / "sub").mkdir()
    (www / "sub" / "x.js").write_text("x")
    (tmp_path / "outside.js").write_text("outside")
    (www / "link.js").symlink_to(tmp_path / "outside.js")
    return StaticSite(www)


def header(response, name: str) -> str | None:  # type: ignore[no-untyped-def]
    for key, value in response.headers:
        if key.lower() == name.lower():
            return value
    return None


@pytest.mark.parametrize(
    "target,body,ctype",
    [
        ("/", b"<h1>walkie</h1>", "text/html; charset=utf-8"),
        ("/r/ops-1", b"<h1>room</h1>", "text/html; charset=utf-8"),
        ("/r/ops-1?name=ann", b"<h1>room</h1>", "text/html; charset=utf-8"),
        ("/static/app.js", b"console.log(1)", "text/javascript; charset=utf-8"),
        ("/static/style.css", b"body{}", "text/css; charset=utf-8"),
        ("/static/icon.svg", b"<svg/>", "image/svg+xml"),
        ("/static/sub/x.js", b"x", "text/javascript; charset=utf-8"),
        # The service worker from the root: its scope may then be the whole site.
        ("/sw.js", b"self.x = 1", "text/javascript; charset=utf-8"),
    ],
)
def test_files_with_content_type_and_revalidation(site: StaticSite, target: str, body: bytes,
                                                  ctype: str) -> None:
    response = site.respond("GET", target, {})
    assert response.status == 200
    assert response.body == body
    assert header(response, "Content-Type") == ctype
    assert header(response, "Content-Length") == str(len(body))
    assert header(response, "Cache-Control") == "no-cache"
    etag = header(response, "ETag")
    assert etag and etag.startswith('"')
    again = site.respond("GET", target, {"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert site.respond("GET", target, {"If-None-Match": f'"nope", W/{etag}'}).status == 304
    assert site.respond("GET", target, {"If-None-Match": '"other"'}).status == 200


def test_head_has_headers_but_no_body(site: StaticSite) -> None:
    response = site.respond("HEAD", "/static/app.js", {})
    assert response.status == 200 and response.body == b""
    assert header(response, "Content-Length") == str(len("console.log(1)"))
    missing = site.respond("HEAD", "/nope", {})
    assert missing.status == 404 and missing.body == b""


def test_etag_changes_with_content(site: StaticSite) -> None:
    first = header(site.respond("GET", "/static/app.js", {}), "ETag")
    (site.root / "app.js").write_text("console.log(2222)")
    response = site.respond("GET", "/static/app.js", {"If-None-Match": first or ""})
    assert response.status == 200 and response.body == b"console.log(2222)"
    assert header(response, "ETag") != first


@pytest.mark.parametrize(
    "target",
    [
        "/nope",
        "/index.html",                       # files live under /static/ only
        "/app.js",                           # (the service worker is the one exception)
        "/sw.js/x",
        "/static/",
        "/static/missing.js",
        "/static/../outside.js",
        "/static/%2e%2e/outside.js",
        "/static/sub/../../outside.js",
        "/static/..%2foutside.js",
        "/static/sub%2f..%2f..%2foutside.js",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/.env",
        "/static/__init__.py",               # not a web file type
        "/static/sub",                       # a directory
        "/static/link.js",                   # symlink out of www/
        "/static/app.js%00.png",
        "/static/%ff.js",
        "/static/a\\..\\outside.js",
        "/r/",
        "/r/has space",
        "/r/a/b",
        "/r/" + "a" * 65,
    ],
)
def test_not_found_and_no_traversal(site: StaticSite, target: str) -> None:
    response = site.respond("GET", target, {})
    assert response.status == 404, target
    assert b"outside" not in response.body and b"SECRET" not in response.body


def test_room_urls_are_canonicalised_to_lower_case(site: StaticSite) -> None:
    response = site.respond("GET", "/r/Ops-1", {})
    assert response.status == 308
    assert header(response, "Location") == "/r/ops-1"


def test_other_methods_are_refused(site: StaticSite) -> None:
    response = site.respond("POST", "/", {})
    assert response.status == 405
    assert header(response, "Allow") == "GET, HEAD"


def test_security_headers(site: StaticSite) -> None:
    response = site.respond("GET", "/", {})
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "Referrer-Policy") == "no-referrer"


def test_www_dir_is_found() -> None:
    www = find_www_dir()
    assert www.name == "www" and www.is_dir()
