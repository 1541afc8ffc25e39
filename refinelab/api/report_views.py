"""The edit views of `report.html`: changes.jsonl rows grouped into edits, each attempt shown as a word diff.

Kept apart from the plots and the page because this is where untrusted item text (user files, model outputs)
becomes markup: every piece is escaped as it is joined, so what leaves here as `Markup` is safe to place in
the autoescaping template unescaped. The diff is bounded (EXACT_DIFF_TOKENS) because a run folder is
untrusted input and difflib's work grows with the cube of a text's length.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from typing import Any

from markupsafe import Markup, escape

from refinelab.operations import writes_new_item
from refinelab.schema import LETTERS
from refinelab.state import CONFIRMED

MAX_EXAMPLES_PER_OP = 3  # edit examples shown in full per operation
MAX_EVIDENCE_CHARS = 4000


def edit_groups(changes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """changes.jsonl rows grouped per edit, attempts in order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in changes:
        groups[str(row.get("edit_id"))].append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: r.get("attempt") or 0)
    return groups


def edit_outcome(attempts: list[dict[str, Any]], gave_up: set[str]) -> str:
    """committed, confirmed (a fix that passed with the item unchanged), gave up, or failed."""
    last = attempts[-1]
    if str(last.get("edit_id")) in gave_up:
        return "gave up"
    if last.get("outcome") == CONFIRMED:
        return CONFIRMED
    return "committed" if last.get("verdict") == "pass" else "failed"


# SequenceMatcher's work grows with the cube of the token count on text whose tokens repeat (every whitespace
# separator is a token): 39 s for one 1,000-word question, and a run folder is untrusted input. Up to this
# many tokens (before and after together, about 100 words a side: 0.05 s at worst) it diffs the whole text,
# so ordinary items show what they always did; longer texts are first trimmed of their common beginning and
# end (linear), and a changed middle still longer than this is shown as one deletion and one insertion.
EXACT_DIFF_TOKENS = 400


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib opcodes turning `a` into `b`, in bounded time (see EXACT_DIFF_TOKENS)."""
    if len(a) + len(b) <= EXACT_DIFF_TOKENS:
        return difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    a_end, b_end = len(a) - tail, len(b) - tail
    ops: list[tuple[str, int, int, int, int]] = [("equal", 0, head, 0, head)] if head else []
    if (a_end - head) + (b_end - head) <= EXACT_DIFF_TOKENS:
        matcher = difflib.SequenceMatcher(a=a[head:a_end], b=b[head:b_end], autojunk=False)
        ops += [(op, i1 + head, i2 + head, j1 + head, j2 + head) for op, i1, i2, j1, j2 in matcher.get_opcodes()]
    elif a_end > head or b_end > head:
        op = "replace" if a_end > head and b_end > head else "delete" if a_end > head else "insert"
        ops.append((op, head, a_end, head, b_end))
    if tail:
        ops.append(("equal", a_end, len(a), b_end, len(b)))
    return ops


def _ratio(a: list[str], b: list[str]) -> float:
    """SequenceMatcher.ratio() over `_opcodes`: twice the matched tokens over all tokens."""
    if not a and not b:
        return 1.0
    matched = sum(i2 - i1 for op, i1, i2, _, _ in _opcodes(a, b) if op == "equal")
    return 2.0 * matched / (len(a) + len(b))


def diff_text(before: str, after: str) -> Markup:
    """Word-level diff: removed words in <del>, added in <ins>; every piece escaped."""
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    out: list[Markup] = []
    for op, i1, i2, j1, j2 in _opcodes(a, b):
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(Markup("<del>%s</del>") % "".join(a[i1:i2]))
        if j2 > j1:
            out.append(Markup("<ins>%s</ins>") % "".join(b[j1:j2]))
    return Markup("").join(out)


def _as_item(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    choices = value.get("choices")
    return {"question": str(value.get("question", "")),
            "choices": [str(c) for c in choices] if isinstance(choices, list) else [],
            "answer": value.get("answer") if isinstance(value.get("answer"), int) else None,
            "id": str(value.get("id", "")), "domain": str(value.get("domain", "")),
            "skill": str(value.get("skill", "")), "difficulty": value.get("difficulty")}


REPLACE_BELOW = 0.4  # below this word similarity, before and after are shown as two blocks, not one inline diff


def _choice_rows(item: dict[str, Any], key_field: str) -> list[dict[str, Any]]:
    return [{"letter": LETTERS[i] if i < len(LETTERS) else str(i), "text": escape(c), key_field: item["answer"] == i}
            for i, c in enumerate(item["choices"])]


def _similarity(old: dict[str, Any], new: dict[str, Any]) -> float:
    a = re.split(r"\s+", " ".join([old["question"], *old["choices"]]))
    b = re.split(r"\s+", " ".join([new["question"], *new["choices"]]))
    return _ratio(a, b)


def item_view(before: Any, after: Any, operation: str = "") -> dict[str, Any]:
    """What the template shows for one attempt: blocks of stem + options, with an inline diff for edits.

    Kinds: `edit` (inline word diff), `rewrite` (too different to diff: before and after blocks),
    `new` (expand/generate: only the written item; the seed is named), `removed`, `none` (no candidate).
    """
    old, new = _as_item(before), _as_item(after)
    seed = None
    if writes_new_item(operation):  # its `before` is the seed item the writer was shown, not a prior version
        seed, old = (old or {}).get("id"), None
    kind = ("none" if not (old or new) else "removed" if not new else "new" if not old
            else "edit" if _similarity(old, new) >= REPLACE_BELOW else "rewrite")
    blocks: list[dict[str, Any]] = []
    if kind == "edit":
        assert old is not None and new is not None
        rows = []
        for i in range(max(len(old["choices"]), len(new["choices"]))):
            a = old["choices"][i] if i < len(old["choices"]) else ""
            b = new["choices"][i] if i < len(new["choices"]) else ""
            rows.append({"letter": LETTERS[i] if i < len(LETTERS) else str(i), "text": diff_text(a, b),
                         "key": new["answer"] == i, "old_key": old["answer"] == i and new["answer"] != i})
        blocks.append({"label": "before → after", "question": diff_text(old["question"], new["question"]),
                       "choices": rows, "struck": False})
    else:
        if old is not None and kind in ("removed", "rewrite"):
            blocks.append({"label": "before", "question": escape(old["question"]),
                           "choices": _choice_rows(old, "key"), "struck": kind == "removed"})
        if new is not None:
            blocks.append({"label": "after" if kind == "rewrite" else "new item", "question": escape(new["question"]),
                           "choices": _choice_rows(new, "key"), "struck": False})
    meta: dict[str, str] = {}
    for field in ("domain", "skill", "difficulty"):
        a, b = (old or {}).get(field), (new or {}).get(field)
        if old and new and a != b:
            meta[field] = f"{a} → {b}"
        elif (b if new else a) not in (None, ""):
            meta[field] = str(b if new else a)
    return {"kind": kind, "blocks": blocks, "meta": meta, "seed": seed,
            "key_changed": bool(old and new and old["answer"] != new["answer"])}


def _evidence(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[:MAX_EVIDENCE_CHARS] + "\n… (cut; see changes.jsonl)"


def pick_examples(groups: dict[str, list[dict[str, Any]]], gave_up: set[str],
                  per_op: int = MAX_EXAMPLES_PER_OP) -> list[dict[str, Any]]:
    """A few edits per operation, most informative first: loop-backs and failures, then content edits."""
    by_op: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for attempts in groups.values():
        by_op[str(attempts[0].get("operation"))].append(attempts)

    def interest(attempts: list[dict[str, Any]]) -> tuple[int, int, int]:
        failed = sum(a.get("verdict") != "pass" for a in attempts)
        has_after = any(a.get("after") for a in attempts)
        return (-min(failed, 1), -int(len(attempts) > 1), -int(has_after))

    examples = []
    for op in sorted(by_op):
        for attempts in sorted(by_op[op], key=interest)[:per_op]:
            first = attempts[0]
            examples.append({
                "edit_id": first.get("edit_id"), "operation": op, "round": first.get("round"),
                "item_id": first.get("item_id"), "target": first.get("target"),
                "outcome": edit_outcome(attempts, gave_up), "count": len(by_op[op]),
                "attempts": [{"attempt": a.get("attempt"), "verdict": a.get("verdict"), "reason": a.get("reason"),
                              "tokens": a.get("tokens"), "evidence": _evidence(a.get("evidence")),
                              "view": item_view(a.get("before"), a.get("after"), op)} for a in attempts],
            })
    return examples
