"""One line of text for display: what a listing, a summary line or a dataset card shows of a longer text
(a question, an error), with one cut rule wherever such a line is made. Escaping for where it is shown (a
terminal, Markdown) is the caller's: it differs by destination."""

from __future__ import annotations


def one_line(text: str, limit: int) -> str:
    """`text` with its whitespace folded, at most `limit` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
