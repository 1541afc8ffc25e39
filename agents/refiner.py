"""Refiner agents: one function per operation, each turning an edit task into a candidate item.

The prompt for each operation is a file in prompts/ (chosen by the item's domain pack). A rejected
attempt comes back with the validator's reason as `feedback`. Output is structured (ItemDraft); the
raw text of every attempt is kept in the run store by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refinelab.agents.context import AgentContext
from refinelab.errors import LLMCallFailed
from refinelab.model_outputs import ItemDraft
from refinelab.schema import LETTERS, Provenance, QAItem, normalise_text
from refinelab.tools.ledger import CallTag

BUCKET_HINTS = {
    "easy": "It should be answerable by most students who studied the basics (recall of a core fact).",
    "medium": "It should need understanding or one step of reasoning, not just recall.",
    "hard": "It should need several steps of reasoning or specialist knowledge; distractors should be close.",
}


@dataclass
class EditTask:
    """One planned edit as it travels through refine → validate → (refine again | commit | give up)."""

    edit_id: str
    item_id: str  # the existing item, or a template item for new ones
    operation: str
    round: int
    attempt: int = 0
    target: str = ""  # the cell (expand) or bucket (generate, calibrate)
    feedback: str = ""


@dataclass
class Candidate:
    item: QAItem | None
    raw: str
    tokens: int
    error: str = ""


def _examples(ctx: AgentContext, subject: str, exclude: str, limit: int = 2) -> list[QAItem]:
    same = [i for i in ctx.store.items(("kept", "edited")) if i.subject == subject and i.id != exclude]
    return same[:limit]


_LABEL = re.compile(r"^\(?([A-J])[.):]\s+")


def strip_option_labels(choices: list[str]) -> list[str]:
    """Models copy the "A. " labels of the rendered item into the options; drop them, but only when every
    option carries its own letter in order (so an option that merely starts with "A." is left alone)."""
    stripped = [c.strip() for c in choices]
    matches = [_LABEL.match(c) for c in stripped]
    if all(m and m.group(1) == LETTERS[i] for i, m in enumerate(matches)):
        return [c[m.end():].strip() for c, m in zip(stripped, matches, strict=True)]  # type: ignore[union-attr]
    return stripped


def _draft_to_item(draft: ItemDraft, task: EditTask, base: QAItem, new: bool) -> QAItem:
    """Build the candidate; schema validation (distinct options, key in range) raises ValueError."""
    item_id = f"{task.edit_id}" if new else base.id
    return QAItem(
        id=item_id, question=draft.question.strip(), choices=strip_option_labels(draft.choices),
        answer=draft.answer_index, subject=base.subject, domain=base.domain,
        skill=task.target.split("|")[1] if new and "|" in task.target else base.skill,
        difficulty=None if new or task.operation == "calibrate" else base.difficulty,
        metadata={**({} if new else base.metadata), "rationale": draft.rationale},
        provenance=Provenance(source=base.provenance.source, created_by=task.operation,
                              parent_id=base.id, run_id=None),
    )


def _same_item(a: QAItem, b: QAItem) -> bool:
    return (normalise_text(a.question) == normalise_text(b.question)
            and [normalise_text(c) for c in a.choices] == [normalise_text(c) for c in b.choices]
            and a.answer == b.answer)


def _distractors(item: QAItem) -> set[str]:
    return {normalise_text(c) for i, c in enumerate(item.choices) if i != item.answer}


def prompt_for(ctx: AgentContext, task: EditTask, base: QAItem) -> list[dict[str, str]]:
    pack = ctx.pack(base)
    n_choices = len(base.choices)
    common = {"feedback": task.feedback, "n_choices": n_choices}
    if task.operation == "expand":
        domain, _, skill = task.target.partition("|")
        return pack.messages("refine_expand", subject=base.subject, domain=domain or base.domain, skill=skill,
                             examples=_examples(ctx, base.subject, base.id), **common)
    if task.operation == "generate":
        return pack.messages("refine_generate", subject=base.subject, bucket=task.target,
                             bucket_hint=BUCKET_HINTS.get(task.target, ""),
                             examples=_examples(ctx, base.subject, base.id, 1), **common)
    if task.operation == "calibrate":
        current = base.difficulty if base.difficulty is not None else 0.5
        order = ["easy", "medium", "hard"]
        direction = "harder" if task.target in order and order.index(task.target) > min(2, int(current * 3)) else "easier"
        return pack.messages("refine_calibrate", item=base, bucket=task.target, direction=direction, **common)
    if task.operation == "rewrite_distractors":
        return pack.messages("refine_rewrite_distractors", item=base, **common)
    if task.operation == "fix":
        error = ctx.store.diagnostic(base.id, "error")
        problem = (error.evidence.get("error_label") if error else None) or "possible error"
        return pack.messages("refine_fix", item=base, problem=problem, **common)
    raise ValueError(f"operation {task.operation!r} has no refiner")


def refine(ctx: AgentContext, task: EditTask) -> Candidate:
    """Ask the writer model for a candidate. Never returns a silent None: failures carry a reason."""
    base = ctx.store.item(task.item_id)
    messages = prompt_for(ctx, task, base)
    tag = CallTag(node="refine", operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("writer").structured(messages, ItemDraft, tag)
    except LLMCallFailed as exc:
        return Candidate(None, "\n---\n".join(exc.raw_outputs), 0, error=f"writer output unusable: {exc}")
    new = task.operation in ("expand", "generate")
    try:
        item = _draft_to_item(result.parsed, task, base, new)
    except ValueError as exc:
        message = str(exc).splitlines()
        return Candidate(None, result.text, result.tokens, error=f"structurally invalid: {message[-1] if message else exc}")
    if task.operation in ("calibrate", "rewrite_distractors") and _same_item(item, base):
        return Candidate(item, result.text, result.tokens,
                         error="the edit changed nothing; rewrite as asked" + (
                             " (replace the wrong options with new ones)" if task.operation == "rewrite_distractors" else ""))
    if task.operation == "rewrite_distractors" and item.answer_text.strip() != base.answer_text.strip():
        return Candidate(item, result.text, result.tokens,
                         error="the correct option was changed; keep it exactly and only replace distractors")
    if task.operation == "rewrite_distractors" and _distractors(item) == _distractors(base):
        return Candidate(item, result.text, result.tokens, error="the distractors are unchanged; replace them")
    return Candidate(item, result.text, result.tokens)
