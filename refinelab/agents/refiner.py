"""The refiner agent: turns an edit task into a candidate item.

What each operation asks for comes from the operation registry: its prompt (a file in prompts/, chosen by
the item's domain pack), its output schema, and the rules a candidate must meet (`must_change`,
`keeps_key_text`, `new_distractors`, checked by agents/candidates.py) and how it drafts (`measured_first`,
`multi_draft`, `batched`). `PROMPT_VARIABLES` holds the per-operation template variables: they are each
operation's own code, which the registry (a bottom-layer module) cannot hold. A rejected attempt comes
back with the validator's reason as `feedback`; the raw text of every attempt is kept in the run store by
the caller.

`refine` is the one entry point; it hands a distractor rewrite's candidates to agents/distractor_rewrite.py
to choose a set from, and a calibrate of several drafts to agents/calibration.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refinelab.agents.calibration import refine_calibration
from refinelab.agents.candidate_probe import OVERGENERATE, probe_candidates
from refinelab.agents.candidates import candidate_problem, draft_to_item
from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty_aims import split_aims
from refinelab.agents.distractor_rewrite import (
    NoImprovement,
    NoSetStands,
    choose_distractors,
    pick_rates,
    weak_distractors,
)
from refinelab.agents.expand_batches import BATCH_PROMPT, DraftShare, DraftSlot, batch_prompt_usable
from refinelab.agents.key_correction import key_doubted, panel_key_move
from refinelab.agents.style_examples import style_examples, subject_examples
from refinelab.errors import LLMCallFailed, validation_problems
from refinelab.metrics.error_checks import distractors_replaceable
from refinelab.model_outputs import DistractorsOut, ItemDraft
from refinelab.operations import Op, operation
from refinelab.planner.problem import DifficultyBuckets, targets_from_resolved
from refinelab.schema import Cell, QAItem
from refinelab.state import ABSTAINED, Candidate, EditTask
from refinelab.tools.ledger import CallTag

BUCKET_HINTS = {
    "easy": "It should be answerable by most students who studied the basics (recall of a core fact).",
    "medium": "It should need understanding or one step of reasoning, not just recall.",
    "hard": "It should need several steps of reasoning or specialist knowledge; distractors should be close.",
}


def _examples(ctx: AgentContext, subject: str, exclude: str, limit: int = 2) -> list[QAItem]:
    return subject_examples(ctx.store.items(("kept", "edited")), subject, exclude, limit)


def _expand_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    """The plan's difficulty aims for the task's batch (`EditTask.aims`, agents/difficulty_aims.py): a batch
    prompt reads `aims`, one per draft; a single draft (a retry, or a batch drafted one by one) its own."""
    cell = Cell.parse(task.target)
    slot = DraftSlot.parse(task.batch)
    aims = split_aims(task.aims)
    position = slot.position if slot is not None else 0
    bucket = aims[position] if position < len(aims) else ""
    return {"subject": base.subject, "domain": cell.domain or base.domain, "skill": cell.skill,
            "skill_description": ctx.skills.skills.get(cell.skill, ""),
            "skill_writing": ctx.skills.writing.get(cell.skill, ""),
            "examples": style_examples(ctx.options.expand_examples, ctx.store.items(("kept", "edited")),
                                       base.subject, cell.domain or base.domain, cell.skill, base.id),
            "aims": aims, "aim_hints": {name: BUCKET_HINTS[name] for name in dict.fromkeys(aims) if name in BUCKET_HINTS},
            "bucket": bucket, "bucket_hint": BUCKET_HINTS.get(bucket, "")}


def _generate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"subject": base.subject, "bucket": task.target, "bucket_hint": BUCKET_HINTS.get(task.target, ""),
            "examples": _examples(ctx, base.subject, base.id, 1)}


def run_buckets(ctx: AgentContext) -> DifficultyBuckets:
    """The run's difficulty buckets as the planner reads them (`targets_from_resolved`; the default thirds
    when they are unusable): what calibrate and generate aim at, and what their measurements are read
    against."""
    try:
        return targets_from_resolved(ctx.targets)[1]
    except ValueError:
        return DifficultyBuckets()


def calibrate_direction(ctx: AgentContext, base: QAItem, target: str) -> str:
    """"harder" when `target` is a harder bucket than the item's own (by the run's bucket names and edges),
    else "easier"; what calibrate asks the writer for and what its measurement must show."""
    buckets = run_buckets(ctx)
    names = buckets.names
    here = names.index(buckets.bucket(base.difficulty if base.difficulty is not None else 0.5))
    return "harder" if target in names and names.index(target) > here else "easier"


def _calibrate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"item": base, "bucket": task.target, "direction": calibrate_direction(ctx, base, task.target)}


def _rewrite_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"item": base, "weak": weak_distractors(base, pick_rates(ctx, base)),
            "n_candidates": OVERGENERATE * (len(base.choices) - 1)}


def _fix_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    error = ctx.store.diagnostic(base.id, "error")
    label = error.evidence.get("error_label") if error else None
    # "ok" is screening's label for an item it did not flag; a fix bought on the panel's doubt alone got
    # "This question was flagged: ok." and the 1.5B writer returned that sentence as the new stem
    problem = label if label and label != "ok" else "its key may be wrong, or the question unclear"
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


def batched_draft(ctx: AgentContext, task: EditTask, base: QAItem, tag: CallTag) -> DraftShare | None:
    """This expand's draft from its batch (agents/expand_batches.py): its own position on a first attempt, a
    spare on a retry. None when it has no batch, no spare is left, or its pack words the single prompt its
    own way: then it asks the writer for its own draft."""
    slot = DraftSlot.parse(task.batch)
    pack = ctx.pack(base)
    if slot is None or not batch_prompt_usable(pack):
        return None
    if task.attempt > 0:
        return ctx.draft_batches.spare(slot)
    return ctx.draft_batches.share(ctx.client("writer"), slot, lambda: pack.messages(
        BATCH_PROMPT, count=slot.drafts, n_choices=len(base.choices), **_expand_variables(ctx, task, base)), tag)


def refine(ctx: AgentContext, task: EditTask) -> Candidate:
    """Ask the writer model for a candidate. Never returns a silent None: failures carry a reason."""
    base = ctx.store.item(task.item_id)
    op = operation(task.operation)
    if op.measured_first and task.attempt == 0:  # measured, not written: see key_correction.py
        if (moved := panel_key_move(ctx, base)) is not None:
            return Candidate(moved, moved.metadata["rationale"], 0)
        if (doubt := key_doubted(ctx, base)) is not None:
            return Candidate(None, "", 0, error=ABSTAINED + doubt)
    if op.new_distractors and not distractors_replaceable(base.choices):
        return Candidate(None, "", 0, error="the options refer to each other (e.g. 'A and D', 'all of the above'): "
                         "replacing distractors would change what the key says; not rewritten")
    tag = CallTag(node=task.ledger_node("refine"), operation=task.operation, item_id=task.item_id)
    if op.multi_draft and ctx.options.calibrate_drafts > 1:
        return refine_calibration(ctx, task, base, calibrate_direction(ctx, base, task.target),
                                  prompt_for(ctx, task, base), tag)
    batched = batched_draft(ctx, task, base, tag) if op.batched else None
    if batched is not None and batched.draft is not None:
        parsed, text, tokens = batched.draft, batched.text, batched.tokens
    else:  # no batch, or its call failed (its share of that call is still this edit's)
        spent = batched.tokens if batched is not None else 0
        try:
            # each new item is its own draw: two expands from one template into one cell send the same
            # prompt, and without a sample of their own the second replayed the first's draft (a duplicate)
            result = ctx.client("writer").structured(prompt_for(ctx, task, base), op.output_schema or ItemDraft, tag,
                                                     sample=task.edit_id if op.creates_item else "")
        except LLMCallFailed as exc:
            return Candidate(None, "\n---\n".join(exc.raw_outputs), exc.tokens + spent,
                             error=f"writer output unusable: {exc}")
        parsed, text, tokens = result.parsed, result.text, result.tokens + spent
    try:
        if isinstance(parsed, DistractorsOut):  # measured before and after they are chosen
            probe = probe_candidates(ctx, task, base, [str(d) for d in parsed.distractors])
            tokens += probe.tokens
            item, measuring = choose_distractors(ctx, parsed, task, base, probe)
            tokens += measuring
        else:
            item = draft_to_item(parsed, task, base)
    except NoSetStands as exc:
        return Candidate(None, text, tokens + exc.tokens, error=str(exc))
    except NoImprovement as exc:
        return Candidate(None, text, tokens, error=str(exc))
    except ValueError as exc:
        return Candidate(None, text, tokens, error=f"structurally invalid: {validation_problems(exc)}")
    if (problem := candidate_problem(op, base, item)) is not None:
        return Candidate(item, text, tokens, error=problem)
    return Candidate(item, text, tokens)


