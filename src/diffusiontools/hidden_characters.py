"""Characters that a listing, a log or a shell line shows as something else, or breaks in two:
control characters (a newline, a tab, ESC...), line and paragraph separators (U+2028, U+2029)
and bidirectional overrides (U+202A..E, U+2066..9). Names the user gives (an output path, a
``--set`` key or value) are refused when they hold one."""

import unicodedata

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def hidden_characters(text: str) -> list[str]:
    """The characters of ``text`` that are not shown as themselves, in order (empty: none)."""
    return [c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI_CONTROLS]


def shown(text: str) -> str:
    """``text`` with each hidden character as its escape (``\\n``, ``\\u202e``): a message that
    quotes a user's name unquoted stays one line and shows what the name holds."""
    return "".join(repr(c)[1:-1] if c in hidden_characters(c) else c for c in text)
