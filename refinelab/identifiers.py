"""Item ids that mean what they look like: NFKC-normalised, no invisible or control characters, no
look-alike letters from another script mixed in.

`q1`, `q1` + ZERO WIDTH SPACE and `q` + RIGHT-TO-LEFT OVERRIDE + `1q` would otherwise be three distinct
ids that print the same (or deceptively); fullwidth `ｑ１` is the same id as `q1` after NFKC, so it is
caught as a duplicate. `skeleton` folds the common Cyrillic/Greek look-alikes of Latin letters, so a
dataset cannot hold `q1` and Cyrillic `ԛ1` side by side either.
"""

from __future__ import annotations

import unicodedata

MAX_ID_CHARS = 256
# Cc control, Cf format (ZWSP, ZWJ, RLO, BOM…), Cs surrogates, Co private use, Cn unassigned,
# Zl/Zp line and paragraph separators.
_FORBIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_CONFUSABLE_SCRIPTS = {"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"}

# Look-alikes of Latin letters (Unicode confusables, the common subset).
_FOLD = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "ı": "i", "ȷ": "j", "ℓ": "l",
})


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "UNKNOWN"


def clean_id(value: str) -> str:
    """`value` in NFKC form; ValueError naming the offending character when it has no place in an id."""
    if not isinstance(value, str):
        raise ValueError(f"id must be text, got {type(value).__name__}")
    normal = unicodedata.normalize("NFKC", value)
    for position, ch in enumerate(normal):
        category = unicodedata.category(ch)
        if category in _FORBIDDEN or (ch.isspace() and ch != " "):
            name = unicodedata.name(ch, f"U+{ord(ch):04X}")
            raise ValueError(f"id contains an invisible or control character {name} (U+{ord(ch):04X}) at "
                             f"position {position}; ids must be plain visible text")
    if normal != normal.strip():
        raise ValueError("id has leading or trailing spaces")
    if not normal:
        raise ValueError("id is empty")
    if len(normal) > MAX_ID_CHARS:
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters")
    scripts = {_script(ch) for ch in normal if ch.isalpha()}
    if "LATIN" in scripts and scripts & _CONFUSABLE_SCRIPTS:
        odd = next(ch for ch in normal if ch.isalpha() and _script(ch) in _CONFUSABLE_SCRIPTS)
        raise ValueError(f"id mixes Latin letters with look-alike {_script(odd).title()} letter {odd!r} "
                         f"(U+{ord(odd):04X}); use one script")
    return normal


def skeleton(value: str) -> str:
    """What an id looks like: look-alike letters folded to Latin."""
    return unicodedata.normalize("NFKC", value).translate(_FOLD)
