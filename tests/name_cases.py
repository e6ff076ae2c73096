"""Display-name cases that the server (signaling/names.py ``check_name``) and the page
(www/names.js ``checkName``) must judge alike: the same name, or the same refusal text.

tests/signaling/test_names.py runs them through the server's rules,
tests/browser/test_page_modules.py through the page's (plus random strings through both).
"""

from __future__ import annotations

#: (what the client sends, the name it gets)
ACCEPTED: list[tuple[str, str]] = [
    ("Ann", "Ann"),
    ("  Zoë  ", "Zoë"),
    ("Zoe\u0308", "Zoë"),  # NFC
    ("無線 📻", "無線 📻"),
    ("x" * 32, "x" * 32),
    ("\u00a0Sam\u3000", "Sam"),  # Unicode spaces are trimmed
    ("<b>x</b>", "<b>x</b>"),  # shown as text, never as HTML
    ("😀" * 32, "😀" * 32),
    # ZWJ / ZWNJ inside words: emoji sequences, Persian, Indic conjuncts.
    ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
    ("🏳\ufe0f\u200d🌈", "🏳\ufe0f\u200d🌈"),
    ("می\u200cخواهم", "می\u200cخواهم"),
    ("क\u094d\u200dष", "क\u094d\u200dष"),
    # Five marks on one letter (Burmese "hope"), three (Hebrew with cantillation).
    ("မျှော်", "မျှော်"),
    ("שִׁ֖ית", "שִׁ֖ית"),
    ("x" + "\u0301" * 6, "x" + "\u0301" * 6),  # the bound itself (no precomposed x́)
    ("a" + "\u0301" * 7, "á" + "\u0301" * 6),  # NFC takes the first mark into "á"
    ("Ann (2)", "Ann (2)"),
]

#: (what the client sends, the server's refusal text)
REFUSED: list[tuple[str, str]] = [
    ("", "name is empty"),
    ("   ", "name is empty"),
    ("x" * 33, "name is longer than 32 characters"),
    ("y" * 1000, "name is longer than 32 characters"),
    ("bell\x07", "name contains a control character (U+0007)"),
    ("tab\there", "name contains a control character (U+0009)"),
    ("del\x7f", "name contains a control character (U+007F)"),
    ("c1\x85", "name contains a control character (U+0085)"),
    ("evil\u202eoverride", "name contains a control character (U+202E)"),
    ("line\u2028sep", "name contains a control character (U+2028)"),
    ("bom\ufeff", "name contains a control character (U+FEFF)"),
    ("lone\ud800surrogate", "name contains a control character (U+D800)"),
    # Format characters (Cf), the three first.
    ("An\u200bn", "name contains an invisible formatting character (U+200B)"),
    ("Ann\u200e", "name contains an invisible formatting character (U+200E)"),
    ("A\u2060nn", "name contains an invisible formatting character (U+2060)"),
    ("x\U000e0041y", "name contains an invisible formatting character (U+E0041)"),
    ("\u00adAnn", "name contains an invisible formatting character (U+00AD)"),
    # Joiners outside a word.
    ("\u200dAnn", "name contains an invisible formatting character (U+200D)"),
    ("Ann\u200c", "name contains an invisible formatting character (U+200C)"),
    ("Ann \u200d Bo", "name contains an invisible formatting character (U+200D)"),
    ("A\u200d\u200dnn", "name contains an invisible formatting character (U+200D)"),
    ("1\u200d2", "name contains an invisible formatting character (U+200D)"),
    # Letters that render as nothing.
    ("\u3164", "name contains an invisible character (U+3164)"),
    ("Ann\u115f", "name contains an invisible character (U+115F)"),
    # Combining marks.
    ("x" + "\u0301" * 7, "name has more than 6 combining marks on one character"),
    ("Z" + "\u0336" * 31, "name has more than 6 combining marks on one character"),
    ("Z" + "\u0336\u0334" * 10, "name has more than 6 combining marks on one character"),
    ("x" + "\u0301" * 3 + "\u200d" + "\u0301" * 4, "name has more than 6 combining marks on one character"),
    ("\u0301Ann", "name starts with a combining mark"),
]
