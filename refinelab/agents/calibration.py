"""Calibrate as over-generate-then-select: the attempt that moves an item to a neighbouring difficulty
bucket when `options.calibrate_drafts` asks for more than one draft.

Its parts live beside it: distractor swaps (agents/calibration_swaps.py) and the panel's measurement of
each draft (agents/calibration_drafts.py). Here they are put in order, the least invasive edit first, and
the measured winner is made the candidate with what was measured in its metadata. The writer's stem
drafts are refused by the same rules as the refiner's single draft (agents/candidates.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from refinelab.agents.calibration_drafts import (
    MeasuredDraft,
    best_draft,
    measure_drafts,
    p_correct,
    panel_p_correct,
    stored_panel,
)
from refinelab.agents.calibration_swaps import distractor_swaps
from refinelab.agents.candidates import candidate_problem, draft_to_item
from refinelab.agents.context import AgentContext
from refinelab.errors import LLMCallFailed, validation_problems
from refinelab.model_outputs import ItemDraft
from refinelab.operations import operation
from refinelab.schema import QAItem
from refinelab.state import Candidate, EditTask
from refinelab.tools.ledger import CallTag
from refinelab.tools.llm import CallResult
from refinelab.tools.together import run_together


def refine_calibration(ctx: AgentContext, task: EditTask, base: QAItem, direction: str,
                       messages: list[dict[str, str]], tag: CallTag) -> Candidate:
    """Calibrate as over-generate-then-select, the least invasive edit first: distractor swaps (stem and key
    kept, agents/calibration_swaps.py) are measured first; only when none moved the item far enough does
    the writer draft `options.calibrate_drafts` stem rewrites (agents/calibration_drafts.py). Every measured
    draft competes, and the one whose p(correct) moved furthest in `direction` ("harder" or "easier", the
    refiner's `calibrate_direction`, the same its prompt asked for) is the candidate."""
    stored = stored_panel(ctx, base)
    tokens = 0
    if stored is not None:
        p_before = p_correct(stored)
    else:
        p_before, tokens = panel_p_correct(ctx, task, base)
    measured: list[MeasuredDraft] = []
    texts: list[str] = []  # the writer text each measured draft came from, in the order of `measured`
    n_swaps = 0  # the first `n_swaps` of `measured` are distractor swaps, the rest stem drafts
    swap_problem = ("distractor swaps off (options.calibrate_swaps)" if not ctx.options.calibrate_swaps else
                    "not tried: the panel gave no option probabilities to measure swaps by")
    if ctx.options.calibrate_swaps and p_before is not None:
        swaps = distractor_swaps(ctx, task, base, direction, stored)
        tokens += swaps.tokens
        swap_problem = swaps.problem
        for draft in measure_drafts(ctx, task, swaps.items):
            tokens += draft.tokens
            measured.append(draft)
            texts.append(swaps.raw)
        n_swaps = len(measured)
        best, _ = best_draft(measured, p_before, direction) if measured else (None, "")
        if best is not None:
            return _calibration_candidate(measured, best, texts, tokens, p_before, direction, swaps=len(measured),
                                          asked=1, usable=len(measured), problems=[])
    stems = _stem_drafts(ctx, task, base, messages, tag)
    tokens += stems.tokens
    if not stems.drafts and not measured:
        return Candidate(stems.rejected, stems.raw, tokens, error=max(set(stems.problems), key=stems.problems.count))
    for draft in measure_drafts(ctx, task, [item for item, _ in stems.drafts]):
        tokens += draft.tokens
        measured.append(draft)
    texts.extend(text for _, text in stems.drafts)
    best, why = (None, "the panel gave no option probabilities for the original item") if p_before is None \
        else best_draft(measured, p_before, direction)
    if best is None and (p_before is None or all(m.p_correct is None for m in measured)):
        # nothing measurable here (e.g. an endpoint without logprobs): the first usable draft goes to the
        # validator unselected, whose own measurement then decides; the metadata says so
        best, why = measured[0], f"not selected: {why or 'the panel could not measure the drafts'}"
    if best is None:
        if swap_problem:
            why = f"{why}; no distractor swap either: {swap_problem}"
        return Candidate(None, stems.raw, tokens, error=why)
    return _calibration_candidate(measured, best, texts, tokens, p_before, direction, swaps=n_swaps, why=why,
                                  asked=len(stems.drafts) + len(stems.problems), usable=len(stems.drafts),
                                  problems=stems.problems)


@dataclass
class _StemDrafts:
    drafts: list[tuple[QAItem, str]]  # usable drafts and the writer text of each
    problems: list[str]  # why each other draft was set aside
    rejected: QAItem | None  # a draft that parsed but was set aside (the single-draft path keeps it too)
    raw: str
    tokens: int


def _stem_drafts(ctx: AgentContext, task: EditTask, base: QAItem, messages: list[dict[str, str]],
                 tag: CallTag) -> _StemDrafts:
    """`options.calibrate_drafts` independent stem rewrites; the unusable ones set aside with their reason."""
    writer = ctx.client("writer")
    op = operation(task.operation)

    def draw(k: int) -> CallResult | LLMCallFailed:
        try:
            return writer.structured(messages, ItemDraft, tag, sample=f"{task.edit_id}:{task.attempt}:{k}")
        except LLMCallFailed as exc:
            return exc

    results = run_together([partial(draw, k) for k in range(ctx.options.calibrate_drafts)])
    tokens, raws, drafts, problems = 0, [], [], []
    rejected: QAItem | None = None
    for result in results:
        if isinstance(result, LLMCallFailed):
            tokens += result.tokens
            raws.extend(result.raw_outputs)
            problems.append(f"writer output unusable: {result}")
            continue
        tokens += result.tokens
        raws.append(result.text)
        try:
            item = draft_to_item(result.parsed, task, base)
        except ValueError as exc:
            problems.append(f"structurally invalid: {validation_problems(exc)}")
            continue
        if (problem := candidate_problem(op, base, item)) is not None:
            problems.append(problem)
            rejected = rejected or item
        else:
            drafts.append((item, result.text))
    return _StemDrafts(drafts, problems, rejected, "\n---\n".join(raws), tokens)


def _calibration_candidate(measured: list[MeasuredDraft], best: MeasuredDraft, texts: list[str], tokens: int,
                           p_before: float | None, direction: str, *, swaps: int, asked: int, usable: int,
                           problems: list[str], why: str = "") -> Candidate:
    """The chosen draft as the candidate, with what was measured in its metadata (`calibration_drafts`):
    `kind` "swap" when it is one of the first `swaps` measured drafts (distractor swaps), else "stem"."""
    chosen = measured.index(best)
    if not why:
        why = f"best of {len(measured)} drafts: measured p(correct) {p_before:.3f} -> {best.p_correct:.3f}"
    item = best.item.model_copy(update={"metadata": {**best.item.metadata, "calibration_drafts": {
        "kind": "swap" if chosen < swaps else "stem", "swaps": swaps, "asked": asked, "usable": usable,
        "set_aside": problems, "direction": direction,
        "p_before": None if p_before is None else round(p_before, 4),
        "p_drafts": [None if m.p_correct is None else round(m.p_correct, 4) for m in measured],
        "chosen": chosen, "why": why}}})
    return Candidate(item, texts[chosen], tokens)
