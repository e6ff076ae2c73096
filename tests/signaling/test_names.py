"""Display names: the rule set (shared cases with the page) and one name per person."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.names import MAX_NAME_CHARS, NameRefused, check_name, name_key, unique_name
from tests.name_cases import ACCEPTED, REFUSED


@pytest.mark.parametrize("raw,name", ACCEPTED)
def test_accepted(raw: str, name: str) -> None:
    assert check_name(raw) == name


@pytest.mark.parametrize("raw,message", REFUSED)
def test_refused(raw: str, message: str) -> None:
    with pytest.raises(NameRefused) as info:
        check_name(raw)
    assert str(info.value) == message


def test_no_format_character_but_the_joiners_gets_through() -> None:
    # Every Cf character of this Python's Unicode, between two letters.
    refused = 0
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) != "Cf":
            continue
        try:
            name = check_name(f"a{char}b")
        except NameRefused:
            refused += 1
            continue
        assert char in "\u200c\u200d", f"U+{code:04X} accepted in {name!r}"
    assert refused > 150


def test_same_name_gets_a_number() -> None:
    assert unique_name("Ann", []) == "Ann"
    assert unique_name("Ann", ["Bob"]) == "Ann"
    assert unique_name("Ann", ["Ann"]) == "Ann (2)"
    assert unique_name("Ann", ["Ann", "Ann (2)"]) == "Ann (3)"
    # A gap is filled: the second of three left.
    assert unique_name("Ann", ["Ann", "Ann (3)"]) == "Ann (2)"


@pytest.mark.parametrize(
    "other",
    ["ann", "ANN", "Ａｎｎ", "A\u200dnn", "Ann\ufe0f", "A\u034fnn"],
)
def test_names_that_look_the_same_are_the_same(other: str) -> None:
    assert name_key(other) == name_key("Ann")
    assert unique_name(other, ["Ann"]) == f"{other} (2)"


def test_case_folding_and_spaces() -> None:
    assert name_key("STRASSE") == name_key("straße")
    assert name_key("Ann  Lee") == name_key("ann lee")
    assert name_key("Zoë") == name_key("Zoe\u0308")
    assert name_key("Ann") != name_key("Anna")
    # Cross-script confusables are out of scope (Cyrillic а).
    assert name_key("\u0430nn") != name_key("ann")


def test_a_long_name_is_cut_to_fit_its_number() -> None:
    long = "x" * MAX_NAME_CHARS
    assert unique_name(long, [long]) == "x" * (MAX_NAME_CHARS - 4) + " (2)"
    # The cut never leaves a joiner or a space before the number.
    spaced = "x" * 27 + " " + "y" * 4
    assert unique_name(spaced, [spaced]) == "x" * 27 + " (2)"
    joined = "x" * 26 + "👨\u200d👩" + "y" * 3
    assert unique_name(joined, [joined]) == "x" * 26 + "👨 (2)"


VALID_CHARS = st.sampled_from(
    list("aAzZ09 ._-(") + ["ü", "ß", "İ", "ﬁ", "Ａ", "😀", "👩", "\u200d", "\u200c", "\u0301",
                            "\u094d", "क", "\ufe0f", "\u3000", "\u0430", "Σ", "ς"]
)


@given(
    st.text(VALID_CHARS, min_size=1, max_size=MAX_NAME_CHARS),
    st.lists(st.text(VALID_CHARS, min_size=1, max_size=MAX_NAME_CHARS), max_size=16),
)
def test_unique_name_is_valid_and_unique(raw: str, others: list[str]) -> None:
    try:
        name = check_name(raw)
    except NameRefused:
        return
    taken = []
    for other in others:
        try:
            taken.append(check_name(other))
        except NameRefused:
            pass
    given_name = unique_name(name, taken)
    assert check_name(given_name) == given_name
    assert name_key(given_name) not in {name_key(t) for t in taken}
    assert given_name == name or given_name.endswith(")")
