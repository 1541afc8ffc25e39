"""Measured edits: an edit is committed only when a measurement shows it did what the plan paid for.

The validator's pass says the candidate is sound (the key is still right); it does not say the edit
helped. An operation that names a `measure` in the registry gets one more check after the pass, and the
measurement is stored with the verdict as the edit's evidence (`evidence["measured"]`):

- ``p_correct`` (calibrate): the panel answers the original and the candidate; the probability of a
  correct answer must move in the intended direction (down for "harder", up for "easier"). With the
  panel's option probabilities (logprobs) it is the mean probability of the key; otherwise the share of
  members that pick it. The panel is `options.panel`, or the judge alone when none is configured.
- ``diversity`` (rewrite_distractors): the mean pairwise cosine distance among the distractors must rise,
  with the stem and the key's text unchanged and no new distractor a paraphrase of the key.
- ``cell`` (expand): the new item is labelled as the profiler labels any item (agents/labels.py); it counts
  when its domain and skill are the cell the plan paid for, or another cell still below its target share
  (the item then still moves coverage towards the target; the evidence says which). The writer being asked for a cell is not
  evidence that it wrote one: on the skewed JSD eval most new items landed in the three skills a 1.5B
  labeller names, whatever cell they were written for. The label is stored, so the item is not labelled
  again after the round. This placement (`place_new_item`) runs before the validator, the rest after it.
  The panel also answers the new item, and it fails when the panel prefers another option to its key
  (`contradicted_key`).
- ``bucket`` (generate): the panel answers the new item and its difficulty is placed on the profile's scale
  (the IRT fit, or the shipped p(key) reference of the one-member embedded panel), as a calibrated item's
  is; it counts when that difficulty falls in the bucket the plan paid for, or in another bucket still
  below its target share. A writer asked for a "medium" item is not evidence that it wrote one. Without
  an IRT scale (`difficulty_method` "rating" or "elo") there is nothing to place the item on: the pass
  stands, and the evidence says it was not measured.

Why expand's new items face the panel's answers and generate's do not. A new item's key has one source at
most: the writer, whose agreement with itself is not evidence, and a validator that may be the same model.
The panel reading the item the other way is evidence against it, as a new distractor the judge prefers to
the key is for a distractor rewrite; in `make demo` a new econometrics item keyed "the number of variables
has no impact on the AIC" passed the retrieval check, and the judge put 0.46 on "directly affects"
against the key's 0.18. But a "hard" item is by its measurement one the panel gets wrong: for generate the
check would refuse every item it was bought to write, so its key rests on the validator (and review).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from refinelab.agents.calibration_drafts import (
    MIN_P_CHANGE,
    ORIGINAL_PANEL,
    measuring_members,
    p_correct,
    stored_panel,
)
from refinelab.agents.candidate_probe import REWRITE_LEAD
from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import remeasured_difficulty
from refinelab.agents.labels import LABEL_MAX_TOKENS, classify_skill
from refinelab.agents.panel import PanelAnswers, ask_member
from refinelab.agents.refiner import calibrate_direction, run_buckets
from refinelab.metrics.distractors import distractor_diversity, value_relation
from refinelab.metrics.divergence import coverage_distribution, difficulty_distribution
from refinelab.metrics.option_probs import margin_against
from refinelab.operations import operation
from refinelab.planner.problem import PlanTargets, targets_from_resolved, with_default_shares
from refinelab.schema import LETTERS, Cell, Diagnostic, QAItem, normalise_text
from refinelab.state import EditTask, Verdict
from refinelab.tools.together import run_together

MIN_DIVERSITY_GAIN = 1e-4
NEW_KEY_LEAD = REWRITE_LEAD  # another option ahead of a new item's key by this much contradicts the key
PARAPHRASE_COSINE = 0.85  # a new distractor this close to the key may be a second correct answer


@dataclass
class Measurement:
    """What was measured, whether it shows the intended improvement, and why not."""

    improved: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    panel_after: Diagnostic | None = None  # the panel's answers on the candidate (calibrate)
    label: Diagnostic | None = None  # the new item's label (expand), stored when it is committed
    difficulty: Diagnostic | None = None  # the new item's measured difficulty (generate), stored likewise


def _panel_on(ctx: AgentContext, task: EditTask, item: QAItem, members: list[str]) -> tuple[Diagnostic, int]:
    """The panel's answers on `item` (nothing stored is reused) and their tokens, failed calls' included,
    charged to the edit's validate node: a measurement is part of what the edit costs, and the planner
    refits on it. Each member is asked as the profile asked it (`panel.ask_member`: a `cloze:` member's
    distribution, a `rag:` member's passages, `panel_reasoning`), so a before/after comparison is one
    method's, whichever side was measured here."""
    node = task.ledger_node("validate")
    # Members at the same time (they are independent); BudgetExhausted propagates: the validate node
    # records it as the verdict.
    answers = run_together([partial(ask_member, ctx, name, item, node) for name in members])
    panel = PanelAnswers()
    for name, answer in zip(members, answers, strict=True):
        panel.add(name, answer)
    return panel.diagnostic(item), sum(answer.tokens for answer in answers)


def measure_p_correct(ctx: AgentContext, task: EditTask, before: QAItem, after: QAItem) -> Measurement:
    """Calibrate's measurement: p(correct) before and after, and the direction the plan paid for."""
    members = measuring_members(ctx)
    direction = calibrate_direction(ctx, before, task.target)
    tokens = 0
    before_diag = stored_panel(ctx, before)
    if before_diag is None:
        before_diag, tokens = _panel_on(ctx, task, before, members)
    after_diag, spent = _panel_on(ctx, task, after, members)
    tokens += spent
    p_before, p_after = p_correct(before_diag), p_correct(after_diag)
    evidence = {"measure": "p_correct", "direction": direction, "members": members,
                "p_before": p_before, "p_after": p_after}
    if p_before is None or p_after is None:
        return Measurement(False, "could not measure p(correct): the panel gave no usable answer", evidence,
                           tokens)
    change = p_after - p_before
    evidence["change"] = round(change, 6)
    wanted = change < -MIN_P_CHANGE if direction == "harder" else change > MIN_P_CHANGE
    if wanted:
        return Measurement(True, f"measured p(correct) {p_before:.3f} -> {p_after:.3f} ({direction})", evidence,
                           tokens, panel_after=after_diag)
    return Measurement(False, f"the edit did not make the item {direction} by {MIN_P_CHANGE}: measured p(correct) "
                       f"{p_before:.3f} -> {p_after:.3f}; change what the question demands, not its wording",
                       evidence, tokens)


def measure_diversity(ctx: AgentContext, before: QAItem, after: QAItem) -> Measurement:
    """rewrite_distractors' measurement: diversity rose, stem and key text kept, no paraphrase of the key."""
    embed = ctx.embedder()
    d_before = distractor_diversity(before.choices, before.answer, embed)
    d_after = distractor_diversity(after.choices, after.answer, embed)
    key_kept = normalise_text(after.answer_text) == normalise_text(before.answer_text)
    stem_kept = normalise_text(after.question) == normalise_text(before.question)
    old = {normalise_text(c) for c in before.choices}
    new = [c for i, c in enumerate(after.choices) if i != after.answer and normalise_text(c) not in old]
    close: list[str] = []
    if new:
        vectors = np.asarray(embed([after.answer_text, *new]), dtype=float)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        relations = [value_relation(after.answer_text, c) for c in new]
        close = [c for c, s, relation in zip(new, vectors[1:] @ vectors[0], relations, strict=True)
                 if relation == "same" or (relation is None and s >= PARAPHRASE_COSINE)]
    evidence = {"measure": "diversity", "diversity_before": d_before, "diversity_after": d_after,
                "key_kept": key_kept, "stem_kept": stem_kept, "new_distractors": len(new),
                "paraphrases_key": close}
    if not key_kept or not stem_kept:
        return Measurement(False, "the stem or the correct option changed; only the distractors may", evidence)
    if close:
        return Measurement(False, f"new distractors paraphrase the correct answer: {close}", evidence)
    if d_before is None or d_after is None:
        return Measurement(False, "could not measure distractor diversity (fewer than two distractors)", evidence)
    if d_after < d_before + MIN_DIVERSITY_GAIN:
        return Measurement(False, f"distractor diversity did not rise ({d_before:.3f} -> {d_after:.3f}); "
                           "write wrong options that differ more from each other", evidence)
    return Measurement(True, f"distractor diversity {d_before:.3f} -> {d_after:.3f}", evidence)


def place_new_item(ctx: AgentContext, task: EditTask, candidate: QAItem) -> Measurement:
    """expand's placement: the new item's measured cell (its domain from the subject map or the cell it was
    written for, its skill from the run's labeller) must be the cell the plan paid for, or another cell
    still below its target share. `validate` asks this before the paid validator: with the exemplar
    labeller it costs nothing, with the judge's one label call, and an item that lands in a covered cell
    needs no answer check (on the 100k JSD eval such items had each cost one)."""
    target = Cell.parse(task.target)
    label = classify_skill(ctx, candidate, LABEL_MAX_TOKENS, node=task.ledger_node("validate"))
    skill = str(label.evidence.get("skill") or "")
    domain = ctx.domain_of(candidate)
    evidence = {"measure": "cell", "target": task.target, "domain": domain, "skill": skill,
                "by": label.evidence.get("by"), "skill_probs": label.evidence.get("skill_probs")}
    tokens = int(label.evidence.get("tokens") or 0)
    if label.flag:
        return Measurement(False, f"could not label the new item: {label.evidence.get('error', '')}", evidence,
                           tokens)
    if domain == target.domain and skill == target.skill:
        reason = f"labelled {domain} x {skill}, the cell it was written for"
    else:
        share, wanted = cell_shares(ctx, Cell(domain, skill))
        evidence |= {"cell_share": round(share, 4), "cell_target": round(wanted, 4)}
        if share >= wanted:
            why = ("the targets want no items there" if wanted <= 0.0
                   else f"that cell is already covered ({share:.3f} >= {wanted:.3f})")
            return Measurement(False, f"the new item reads as {domain} x {skill}, not {target.domain} x "
                               f"{target.skill}, and {why}: write a question that mainly tests {target.skill}",
                               evidence, tokens)
        # another cell, but one the set still lacks: the item moves coverage towards the target
        reason = (f"labelled {domain} x {skill}, not the cell it was written for, but that cell is under-covered "
                  f"too ({share:.3f} < {wanted:.3f})")
    return Measurement(True, reason, evidence, tokens, label=label)


def places_new_item(ctx: AgentContext, task: EditTask) -> bool:
    """Whether `task`'s candidate is placed in a cell before it is validated (expand, unless the run
    commits new items wherever they land: `options.measure_new_item_cells`)."""
    return operation(task.operation).measure == "cell" and ctx.options.measure_new_item_cells


def measure_cell(ctx: AgentContext, task: EditTask, candidate: QAItem,
                 placement: Measurement | None = None) -> Measurement:
    """expand's measurement: its placement (`place_new_item`, which `validate` has usually done before the
    validator), then the panel's answers on it, which must not prefer another option to its key."""
    placement = placement or place_new_item(ctx, task, candidate)
    if not placement.improved:
        return placement
    evidence, tokens = dict(placement.evidence), placement.tokens
    panel, panel_tokens = _panel_on(ctx, task, candidate, measuring_members(ctx))
    tokens += panel_tokens
    evidence["p_options"] = panel.evidence.get("pooled")
    if contradiction := contradicted_key(panel, candidate):
        return Measurement(False, contradiction, evidence, tokens)
    return Measurement(True, placement.reason, evidence, tokens, label=placement.label)


def contradicted_key(panel: Diagnostic, item: QAItem) -> str:
    """Why the panel's answers contradict a new item's key: its pooled favourite is another option, ahead
    of the key by `NEW_KEY_LEAD`. Empty when they do not, or when the panel gave no option probabilities
    (votes alone are too coarse to read a lead from)."""
    pooled = list(panel.evidence.get("pooled") or [])
    if len(pooled) != len(item.choices) or -margin_against(pooled, item.answer) < NEW_KEY_LEAD:
        return ""
    favourite = max(range(len(pooled)), key=pooled.__getitem__)
    return (f"the panel prefers option {LETTERS[favourite]} ({item.choices[favourite]!r}, p {pooled[favourite]:.2f}) "
            f"to the new item's key {item.answer_letter} (p {pooled[item.answer]:.2f}): the key is doubtful; make "
            "exactly one option unambiguously correct")


def measure_bucket(ctx: AgentContext, task: EditTask, candidate: QAItem) -> Measurement:
    """generate's measurement: the new item's difficulty, from the panel's answers on it placed on the
    profile's scale with the template item's fit (abilities and anchors are the run's, not the item's),
    must fall in the bucket the plan paid for, or in another bucket the set still lacks."""
    evidence: dict[str, Any] = {"measure": "bucket", "target": task.target}
    scale = ctx.store.diagnostic(task.item_id, "difficulty")
    if scale is None or scale.evidence.get("method") != "irt":
        evidence["measured"] = False
        return Measurement(True, "difficulty not measured (the profile has no IRT scale to place it on)", evidence)
    members = measuring_members(ctx)
    panel_after, tokens = _panel_on(ctx, task, candidate, members)
    placed = remeasured_difficulty(scale, panel_after)
    if placed is None:
        return Measurement(False, "could not measure the new item's difficulty: no panel member answered it",
                           evidence, tokens)
    bucket = run_buckets(ctx).bucket(placed.score)
    evidence |= {"members": members, "difficulty": round(placed.score, 4), "bucket": bucket,
                 "p_key": p_correct(panel_after)}
    kept = (panel_after.model_copy(update={"item_id": candidate.id}), placed.model_copy(update={"item_id": candidate.id}))
    if bucket == task.target:
        return Measurement(True, f"measured {bucket} (difficulty {placed.score:.2f}), the bucket it was written "
                           "for", evidence, tokens, panel_after=kept[0], difficulty=kept[1])
    share, wanted = bucket_shares(ctx, bucket)
    evidence |= {"bucket_share": round(share, 4), "bucket_target": round(wanted, 4)}
    if share < wanted:  # another bucket, but one the set still lacks: the item moves difficulty to the target
        return Measurement(True, f"measured {bucket} (difficulty {placed.score:.2f}), not {task.target}, but that "
                           f"bucket is under-filled too ({share:.3f} < {wanted:.3f})", evidence, tokens,
                           panel_after=kept[0], difficulty=kept[1])
    return Measurement(False, f"the new item measures {bucket} (difficulty {placed.score:.2f}), not {task.target}, "
                       f"and that bucket is already filled ({share:.3f} >= {wanted:.3f}): write a question that "
                       f"is {task.target} for this set", evidence, tokens)


def bucket_shares(ctx: AgentContext, bucket: str) -> tuple[float, float]:
    """(the bucket's share of the current set's measured items, its target share): whether one more item
    there helps. Items without a difficulty are left out, as the difficulty figures leave them out."""
    buckets = run_buckets(ctx)
    items = ctx.store.items()
    scores = [i.difficulty for i in items if i.difficulty is not None]
    share = difficulty_distribution(scores, buckets.edges, buckets.names).get(bucket, 0.0) if scores else 0.0
    return share, planned_targets(ctx, items).difficulty.get(bucket, 0.0)


def planned_targets(ctx: AgentContext, items: list[QAItem]) -> PlanTargets:
    """The target shares the planner paid toward: the run's targets, uniform where they name none."""
    targets, buckets = targets_from_resolved(ctx.targets)
    return with_default_shares(targets, (i.cell.key for i in items), buckets.names)


def cell_shares(ctx: AgentContext, cell: Cell) -> tuple[float, float]:
    """(the cell's share of the current set, its target share): whether one more item there helps."""
    items = ctx.store.items()
    share = coverage_distribution(items).get(cell, 0.0) if items else 0.0
    return share, planned_targets(ctx, items).coverage.get(cell.key, 0.0)


def measured(ctx: AgentContext, task: EditTask, candidate: QAItem, verdict: Verdict,
             placement: Measurement | None = None) -> Verdict:
    """`verdict` unless the operation needs a measurement: then a passed verdict stands only when the
    measurement shows the improvement, and the measurement joins the evidence either way. `placement` is
    a new item's cell as `validate` measured it before the validator (expand); its tokens are counted here,
    once, with the rest of the measurement."""
    op = operation(task.operation)
    if not verdict.passed and placement is not None:  # the placement was paid for whatever the validator said
        return replace(verdict, evidence={**verdict.evidence, "measured": placement.evidence},
                       tokens=verdict.tokens + placement.tokens)
    if not verdict.passed or op.measure is None:
        return verdict
    if op.measure == "cell":
        if not places_new_item(ctx, task):
            return verdict
        result = measure_cell(ctx, task, candidate, placement)
    elif op.measure == "bucket":
        if not ctx.options.measure_new_item_buckets:
            return verdict
        result = measure_bucket(ctx, task, candidate)
    else:
        before = ctx.store.item(task.item_id)
        result = (measure_diversity(ctx, before, candidate) if op.measure == "diversity"
                  else measure_p_correct(ctx, task, before, candidate))
    evidence = {**verdict.evidence, "measured": result.evidence}
    if not result.improved:
        return replace(verdict, passed=False, reason=result.reason, method="measured", evidence=evidence,
                       tokens=verdict.tokens + result.tokens)
    if result.difficulty is not None:  # a new item (generate): no original to keep, only what was measured
        ctx.store.put_diagnostics([result.panel_after, result.difficulty])  # type: ignore[list-item]
        candidate.difficulty = result.difficulty.score
    elif result.panel_after is not None:
        adopt_measurement(ctx, candidate, result.panel_after)
    if result.label is not None:  # committed at once by the router: the item keeps the label it passed with
        ctx.store.put_diagnostics([result.label.model_copy(update={"item_id": candidate.id})])
        candidate.skill = str(result.label.evidence["skill"])
    return replace(verdict, reason=f"{verdict.reason}; {result.reason}", evidence=evidence,
                   tokens=verdict.tokens + result.tokens)


def adopt_measurement(ctx: AgentContext, candidate: QAItem, panel_after: Diagnostic) -> None:
    """A passed verdict is committed at once (the graph's router), so the panel's answers on the candidate
    become the item's panel evidence and its difficulty is placed on the profile's IRT fit (abilities and
    bucket anchors held fixed): the calibrated item enters the next plan at the difficulty it was
    measured at. The original's answers are kept as `panel_original`, so a validation re-run after a
    crash measures against the same baseline; nothing here depends on the order edits were measured in."""
    original = ctx.store.diagnostic(candidate.id, "panel")
    if original is not None and not ctx.store.has_diagnostic(candidate.id, ORIGINAL_PANEL):
        ctx.store.put_diagnostics([original.model_copy(update={"check": ORIGINAL_PANEL})])
    ctx.store.put_diagnostics([panel_after.model_copy(update={"item_id": candidate.id})])
    difficulty = ctx.store.diagnostic(candidate.id, "difficulty")
    moved = remeasured_difficulty(difficulty, panel_after) if difficulty is not None else None
    if moved is not None:
        ctx.store.put_diagnostics([moved])
        candidate.difficulty = moved.score
