"""Display names: what a member may be called, and one name per person in a room.

Two pure functions, no state:

* :func:`check_name` is the rule set for the name a client sends in ``join``
  (docs/PROTOCOL.md, "Limits"; ``messages.validate_name`` turns its refusal into the error
  ``bad_name``). ``www/names.js`` (``checkName``) mirrors it rule for rule and message for
  message, so that the page can say what is wrong before a round trip;
  ``tests/name_cases.py`` holds the cases both are run through, and a browser test feeds both
  the same random strings. Change one, change the other.
* :func:`unique_name` makes a second "Ann" in a room "Ann (2)", so that the member list never
  shows two people under one name (issue: impersonation). Names are compared by
  :func:`name_key`: case, compatibility forms, invisible joiners and variation selectors and
  runs of spaces do not make two names different.

Why the rules (each closes a way one member's name could fake or hide another's):

* control characters (Cc), lone surrogates (Cs), bidi embeddings/overrides/isolates,
  U+2028/2029 and U+FEFF: they reorder or break the text around them;
* every other format character (Cf: U+200B zero width space, U+200E/200F marks, U+2060 word
  joiner, tag characters, ...): invisible, so "Ann" and "An<U+200B>n" would look the same.
  Two are kept, **inside a word only**: U+200D ZERO WIDTH JOINER and U+200C ZERO WIDTH
  NON-JOINER. Scripts need them to spell words right: emoji sequences (👨‍👩‍👧, 🏳️‍🌈), Persian
  and other Arabic-script languages (ZWNJ in "می‌خواهم"), Indic scripts (ZWJ/ZWNJ after a
  virama pick the conjunct or half form: "क्‍ष"). "Inside a word" means between two
  letters, marks or symbols (Unicode L*, M*, S*); anywhere else they do nothing visible and
  are refused. Emoji tag sequences (the flags of England, Scotland and Wales) are refused with
  the other tag characters: tags are invisible in every other use;
* the Hangul fillers U+115F, U+1160, U+3164, U+FFA0: letters (Lo) that render as nothing, so
  a name made of them looks empty;
* combining marks: at most :data:`MAX_MARKS_PER_CHARACTER` in a row after one base character,
  and none without a base (at the start). The longest run everyday writing needs that we
  know of is 5 (Burmese "မျှော်", "hope": two medials, two vowel signs, asat; Hebrew with
  points and cantillation needs 3, Tibetan stacks 3-4; Vietnamese is precomposed by NFC);
  6 leaves one of margin and still refuses "Zalgo" stacks (a run of 31 was accepted before).
  ZWJ/ZWNJ between marks do not end the run.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterable


__all__ = [
    "MAX_MARKS_PER_CHARACTER",
    "MAX_NAME_CHARS",
    "NameRefused",
    "check_name",
    "name_key",
    "unique_name",
]

MAX_NAME_CHARS = 32
MAX_MARKS_PER_CHARACTER = 6

# Refused anywhere in the raw text, with the message "control character" (the rules of old).
_CONTROLS = frozenset(
    "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
# Format characters (Cf) kept inside a word: ZWNJ and ZWJ.
_JOINERS = frozenset("\u200c\u200d")
# Letters that render as nothing.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


class NameRefused(ValueError):
    """A display name that breaks a rule; the text says which (ASCII, safe to send back)."""


def check_name(raw: str) -> str:
    """The display name a client asked for: NFC, trimmed, checked; or :class:`NameRefused`."""
    if len(raw) > 4 * MAX_NAME_CHARS:
        # Refuse before normalising: NFC of a huge string is wasted work.
        raise _bad(f"name is longer than {MAX_NAME_CHARS} characters")
    for char in raw:
        if unicodedata.category(char) in ("Cc", "Cs") or char in _CONTROLS:
            raise _bad(f"name contains a control character ({_code(char)})")
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise _bad("name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise _bad(f"name is longer than {MAX_NAME_CHARS} characters")
    marks = 0
    for i, char in enumerate(name):
        category = unicodedata.category(char)
        if char in _INVISIBLE_LETTERS:
            raise _bad(f"name contains an invisible character ({_code(char)})")
        if category == "Cf":
            if char in _JOINERS and _in_word(name, i):
                continue  # transparent: does not end a run of marks
            raise _bad(f"name contains an invisible formatting character ({_code(char)})")
        if category[0] != "M":
            marks = 0
            continue
        if i == 0:
            raise _bad("name starts with a combining mark")
        marks += 1
        if marks > MAX_MARKS_PER_CHARACTER:
            raise _bad(
                f"name has more than {MAX_MARKS_PER_CHARACTER} combining marks on one character"
            )
    return name


def _in_word(name: str, i: int) -> bool:
    """A joiner at ``i`` sits between two letters, marks or symbols."""
    if i == 0 or i == len(name) - 1:
        return False
    return all(unicodedata.category(name[j])[0] in "LMS" for j in (i - 1, i + 1))


def _bad(message: str) -> NameRefused:
    return NameRefused(message)


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"


# -- one name per person ----------------------------------------------------------------

# Default-ignorable characters a valid name may hold (joiners, the combining grapheme joiner,
# variation selectors): they change nothing or almost nothing that a reader sees.
_IGNORED_IN_KEY = frozenset(
    ["\u200c", "\u200d", "\u034f", "\u180b", "\u180c", "\u180d", "\u180f"]
    + [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
)


def name_key(name: str) -> str:
    """What two names must differ in to count as different names in one room.

    NFKC and case folding (so "ANN", "ann" and "Ａｎｎ" are one name), invisible joiners and
    variation selectors dropped, runs of spaces made one. Confusables across scripts (Latin
    "a" and Cyrillic "а") are not folded: that needs Unicode's confusables data.
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(char for char in text if char not in _IGNORED_IN_KEY)
    return unicodedata.normalize("NFKC", " ".join(text.split()))


def unique_name(name: str, taken: Iterable[str]) -> str:
    """``name``, or ``name (2)``, ``(3)``... if a name in ``taken`` has the same key.

    ``name`` must be valid (:func:`check_name`); so is the result, and it stays within
    :data:`MAX_NAME_CHARS`: a long name is cut (at a character, never leaving a joiner or a
    space at the cut) to make room for the suffix.
    """
    keys = {name_key(other) for other in taken}
    if name_key(name) not in keys:
        return name
    for number in itertools.count(2):
        suffix = f" ({number})"
        base = name[: MAX_NAME_CHARS - len(suffix)]
        while base[-1].isspace() or base[-1] in _JOINERS:
            base = base[:-1]  # a valid name starts with neither, so base never empties
        candidate = base + suffix
        if name_key(candidate) not in keys:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends
