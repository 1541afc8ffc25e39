"""The refiner agent: turns an edit task into a candidate item.

What each operation asks for comes from the operation registry: its prompt (a file in prompts/, chosen by
the item's domain pack), its output schema, and the rules a candidate must meet (`must_change`,
`keeps_key_text`, `new_distractors`). `prompt_variables` holds the per-operation template variables. A
rejected attempt comes back with the validator's reason as `feedback`; the raw text of every attempt is
kept in the run store by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.key_correction import panel_key_move
from refinelab.errors import LLMCallFailed
from refinelab.model_outputs import ItemDraft
from refinelab.operations import Op, operation
from refinelab.schema import LETTERS, Cell, Provenance, QAItem, normalise_text
from refinelab.state import Candidate, EditTask
from refinelab.tools.ledger import CallTag

BUCKET_HINTS = {
    "easy": "It should be answerable by most students who studied the basics (recall of a core fact).",
    "medium": "It should need understanding or one step of reasoning, not just recall.",
    "hard": "It should need several steps of reasoning or specialist knowledge; distractors should be close.",
}


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


def _draft_to_item(draft: ItemDraft, task: EditTask, base: QAItem) -> QAItem:
    """Build the candidate; schema validation (distinct options, key in range) raises ValueError."""
    op = operation(task.operation)
    new = op.creates_item
    item_id = f"{task.edit_id}" if new else base.id
    return QAItem(
        id=item_id, question=draft.question.strip(), choices=strip_option_labels(draft.choices),
        answer=draft.answer_index, subject=base.subject, domain=base.domain,
        skill=Cell.parse(task.target).skill if op.target == "cell" else base.skill,
        difficulty=None if new or op.resets_difficulty else base.difficulty,
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


def _expand_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    cell = Cell.parse(task.target)
    return {"subject": base.subject, "domain": cell.domain or base.domain, "skill": cell.skill,
            "examples": _examples(ctx, base.subject, base.id)}


def _generate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"subject": base.subject, "bucket": task.target, "bucket_hint": BUCKET_HINTS.get(task.target, ""),
            "examples": _examples(ctx, base.subject, base.id, 1)}


def _calibrate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    current = base.difficulty if base.difficulty is not None else 0.5
    order = ["easy", "medium", "hard"]
    direction = "harder" if task.target in order and order.index(task.target) > min(2, int(current * 3)) else "easier"
    return {"item": base, "bucket": task.target, "direction": direction}


def _rewrite_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"item": base}


def _fix_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    error = ctx.store.diagnostic(base.id, "error")
    problem = (error.evidence.get("error_label") if error else None) or "possible error"
    return {"item": base, "problem": problem}


#: The template variables of each operation that calls the writer (its prompt is in the registry).
PROMPT_VARIABLES: dict[Op, Callable[[AgentContext, EditTask, QAItem], dict[str, Any]]] = {
    Op.EXPAND: _expand_variables, Op.GENERATE: _generate_variables, Op.CALIBRATE: _calibrate_variables,
    Op.REWRITE_DISTRACTORS: _rewrite_variables, Op.FIX: _fix_variables,
}


def prompt_for(ctx: AgentContext, task: EditTask, base: QAItem) -> list[dict[str, str]]:
    """The writer's messages for this attempt: the operation's template with its variables."""
    op = operation(task.operation)
    if op.prompt is None:
        raise ValueError(f"operation {op.name!r} asks no model for a candidate")
    variables = PROMPT_VARIABLES[op.op](ctx, task, base)
    return ctx.pack(base).messages(op.prompt, feedback=task.feedback, n_choices=len(base.choices), **variables)


def refine(ctx: AgentContext, task: EditTask) -> Candidate:
    """Ask the writer model for a candidate. Never returns a silent None: failures carry a reason."""
    base = ctx.store.item(task.item_id)
    op = operation(task.operation)
    if op.op is Op.FIX and task.attempt == 0 and (moved := panel_key_move(ctx, base)) is not None:
        return Candidate(moved, moved.metadata["rationale"], 0)  # measured, not written: see key_correction.py
    messages = prompt_for(ctx, task, base)
    tag = CallTag(node=task.ledger_node("refine"), operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("writer").structured(messages, op.output_schema or ItemDraft, tag)
    except LLMCallFailed as exc:
        return Candidate(None, "\n---\n".join(exc.raw_outputs), exc.tokens, error=f"writer output unusable: {exc}")
    try:
        item = _draft_to_item(result.parsed, task, base)
    except ValueError as exc:
        message = str(exc).splitlines()
        return Candidate(None, result.text, result.tokens, error=f"structurally invalid: {message[-1] if message else exc}")
    if op.must_change and _same_item(item, base):
        return Candidate(item, result.text, result.tokens,
                         error="the edit changed nothing; rewrite as asked" + (
                             " (replace the wrong options with new ones)" if op.new_distractors else ""))
    if op.keeps_key_text and item.answer_text.strip() != base.answer_text.strip():
        return Candidate(item, result.text, result.tokens,
                         error="the correct option was changed; keep it exactly and only replace distractors")
    if op.new_distractors and _distractors(item) == _distractors(base):
        return Candidate(item, result.text, result.tokens, error="the distractors are unchanged; replace them")
    return Candidate(item, result.text, result.tokens)
