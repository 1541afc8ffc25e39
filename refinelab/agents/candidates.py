"""A writer's whole-item draft as a candidate item, and the rules an operation's candidate must meet.

Both paths that take a writer's draft build and refuse it here: the refiner's single draft
(agents/refiner.py) and calibrate's stem drafts (agents/calibration.py). One home for the rules keeps
the refusal, which is also the writer's feedback on its retry, worded the same whichever path drafted it.
"""

from __future__ import annotations

from pydantic import BaseModel

from refinelab.model_outputs import ItemDraft
from refinelab.operations import Operation, operation
from refinelab.schema import Cell, Provenance, QAItem, normalise_text, strip_option_labels
from refinelab.state import EditTask


def _draft_to_item(draft: ItemDraft, task: EditTask, base: QAItem) -> QAItem:
    """Build the candidate; schema validation (distinct options, key in range) raises ValueError."""
    op = operation(task.operation)
    new = op.creates_item
    item_id = f"{task.edit_id}" if new else base.id
    subject, domain, skill = base.subject, base.domain, base.skill
    if op.target == "cell":  # written for the cell: its domain, and the template's subject only if it is there
        cell = Cell.parse(task.target)
        skill = cell.skill
        if cell.domain and cell.domain != base.domain:
            subject, domain = "", cell.domain
    return QAItem(
        id=item_id, question=draft.question.strip(), choices=strip_option_labels([c.strip() for c in draft.choices]),
        answer=draft.answer_index, subject=subject, domain=domain, skill=skill,
        difficulty=None if new or op.resets_difficulty else base.difficulty,
        metadata={**({} if new else base.metadata), "rationale": draft.rationale},
        provenance=Provenance(source=base.provenance.source, created_by=task.operation,
                              parent_id=base.id, run_id=None),
    )


def distractor_texts(item: QAItem) -> set[str]:
    """The item's wrong options, normalised: two sets compare equal when only case or spacing differs."""
    return {normalise_text(c) for i, c in enumerate(item.choices) if i != item.answer}


def draft_to_item(parsed: BaseModel, task: EditTask, base: QAItem) -> QAItem:
    """The candidate from a writer's whole-item draft (a distractor list goes through
    `distractor_rewrite.choose_distractors`, which measures it)."""
    if not isinstance(parsed, ItemDraft):
        raise ValueError(f"no candidate builder for {type(parsed).__name__}")
    return _draft_to_item(parsed, task, base)


def candidate_problem(op: Operation, base: QAItem, item: QAItem) -> str | None:
    """Why `item` breaks a rule `op` sets for its candidates (`must_change`, `keeps_key_text`,
    `new_distractors`), said as the writer's retry can act on it; None when it keeps them all."""
    if op.must_change and item.same_text(base):
        return "the edit changed nothing; rewrite as asked" + (
            " (replace the wrong options with new ones)" if op.new_distractors else "")
    if op.keeps_key_text and item.answer_text.strip() != base.answer_text.strip():
        return "the correct option was changed; keep its text exactly" + (
            " and only replace distractors" if op.new_distractors else
            " and change the question and the other options")
    if op.new_distractors and distractor_texts(item) == distractor_texts(base):
        return "the distractors are unchanged; replace them"
    return None
