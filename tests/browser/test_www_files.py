"""Static checks of www/ that need no browser: self-contained, absolute paths, no HTML sinks.

Why: the page must work offline on a LAN (no CDN, no web fonts), from /r/<room> (relative
paths would resolve under /r/), and must never put a display name into HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

WWW = Path(__file__).resolve().parents[2] / "www"
PAGE_FILES = sorted(p for p in WWW.iterdir() if p.suffix in {".html", ".css", ".js", ".svg", ".webmanifest"})


def test_page_files_exist() -> None:
    names = {p.name for p in PAGE_FILES}
    assert {"index.html", "room.html", "style.css", "app.js", "ptt.js"} <= names


def test_no_external_urls() -> None:
    for path in PAGE_FILES:
        text = path.read_text()
        # The SVG namespace is an identifier, not a fetch.
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name
        assert "@import" not in text and "@font-face" not in text, path.name


def test_html_references_are_absolute_and_exist() -> None:
    for name in ("index.html", "room.html"):
        html = (WWW / name).read_text()
        refs = re.findall(r'(?:src|href)="([^"#]+)(?:#[^"]*)?"', html)
        assert refs, name
        for ref in refs:
            if ref == "/":
                continue
            assert ref.startswith("/static/"), f"{name}: {ref} must be an absolute /static/ path"
            assert (WWW / ref.removeprefix("/static/")).is_file(), f"{name}: {ref} is missing"


def test_js_imports_resolve() -> None:
    for path in WWW.glob("*.js"):
        for ref in re.findall(r'from "([^"]+)"', path.read_text()):
            assert ref.startswith("./") and (WWW / ref[2:]).is_file(), f"{path.name}: {ref}"


def test_no_html_sinks_in_scripts() -> None:
    # Names and server text go in with textContent only.
    for path in WWW.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"
