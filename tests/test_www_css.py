"""The page's style sheet parses as a list of blocks: every ``{`` closed, none closed twice.

A rule left open (a lost ``}``, as a merge once did) makes a browser read every rule after
it as nested in it, silently: the Recording badge lost its colour that way. Comments and
strings are skipped; no CSS parser is needed for this one property."""

from __future__ import annotations

import re
from pathlib import Path

WWW = Path(__file__).resolve().parents[1] / "www"
SKIP = re.compile(r"/\*.*?\*/|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", re.S)


def unbalanced(css: str) -> list[str]:
    problems, depth = [], 0
    for line_no, line in enumerate(SKIP.sub(lambda m: "\n" * m.group().count("\n"), css)
                                   .splitlines(), 1):
        for ch in line:
            if ch == "{":
                depth += 1
                if depth > 2:  # @media { rule { } } is as deep as the page goes
                    problems.append(f"line {line_no}: a block opened inside a rule")
            elif ch == "}":
                depth -= 1
                if depth < 0:
                    problems.append(f"line {line_no}: '}}' closes nothing")
                    depth = 0
    if depth:
        problems.append(f"{depth} block(s) never closed")
    return problems


def test_every_style_sheet_closes_its_blocks() -> None:
    sheets = sorted(WWW.glob("*.css"))
    assert sheets
    for sheet in sheets:
        assert unbalanced(sheet.read_text()) == [], sheet.name


def test_the_check_finds_a_rule_left_open() -> None:
    assert unbalanced(".a { color: red;\n.b { color: blue; }\n") == ["1 block(s) never closed"]
    assert unbalanced("/* { */ .a { content: '}'; }") == []
