"""Profiler agent: labels each item's domain and skill, estimates difficulty, screens for errors, scores
distractors.

Measuring is separate from deciding: every result is persisted as a Diagnostic in the run store, and
what is already stored is skipped, so a re-plan or a resumed run never pays for it again.

Stages (options come from `ctx.options`; the graph's defaults keep the demo fast):
1. per item, concurrently: the label (skill from signals and exemplars; the judge is asked only for
   `skill_method="model"` or the 1–5 rating) and, with a panel, each member's answer
   (with `batch`, these calls first go through the OpenAI Batch API: `batch_profile`);
2. difficulty for the set: `difficulty_method` = "rating" (default) | "elo" | "irt" (agents/difficulty.py);
3. distractors (`distractors: True`): MiniLM embeddings + panel pick rates;
4. error screening, cheapest first: deterministic checks + panel + distractor cue, then the validator on
   suspects (p_error ≥ `validator_threshold`) through `validation.verdicts.check_original` (or `hooks.check_original`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from refinelab.agents.batching import panel_batch_jobs, run_batches
from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import (
    default_panel,
    difficulty_method,
    elo_difficulty,
    irt_difficulty,
    measuring_panel,
    rating_diagnostic,
)
from refinelab.agents.label_batches import label_in_batches
from refinelab.agents.labels import (
    LABEL_MAX_TOKENS,
    asks_judge,
    awaiting_label,
    classify_skill,
    label_request,
)
from refinelab.agents.panel import answer_panel
from refinelab.agents.screening import (
    error_diagnostic,
    load_check_original,
    validate_suspect,
)
from refinelab.domains import UNSURE
from refinelab.errors import BudgetExhausted
from refinelab.metrics.distractors import panel_pick_rates, score_distractors
from refinelab.metrics.error_checks import modal_choice_count
from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.batch import BatchRequest


@dataclass
class ProfileOptions:
    """What to measure, read from the run options once per call."""

    difficulty: str = "rating"
    panel: list[str] = field(default_factory=list)
    distractors: bool = False
    validator_threshold: float = 0.5

    @classmethod
    def from_context(cls, ctx: AgentContext) -> ProfileOptions:
        method = difficulty_method(ctx)
        panel = measuring_panel(ctx.options)
        if not ctx.options.panel and panel:  # the judge answers (IRT): a plugged-in judge model answers as it
            panel = default_panel(ctx)
        return cls(difficulty=method, panel=panel, distractors=ctx.options.distractors,
                   validator_threshold=ctx.options.validator_threshold)


def label_item(ctx: AgentContext, item: QAItem) -> Diagnostic:
    """The item's skill (agents/labels.py: signals, then the skill exemplars or the judge; "unsure" rather
    than an empty cell) and, when the judge is asked, its 1-5 rating as difficulty in [0, 1]."""
    return classify_skill(ctx, item, LABEL_MAX_TOKENS)


def batch_profile(ctx: AgentContext, items: Sequence[QAItem], options: ProfileOptions) -> None:
    """`--batch`: the label calls of every item not labelled yet (the judge's endpoint) and the panel calls
    not answered yet (each member's endpoint), as Batch API jobs in flight together (agents/batching.py);
    `measure_item` then finds each answer already paid for (tools/batch.py), so the stored evidence is
    the same as without `--batch`."""
    labels = [BatchRequest(*label_request(ctx, item), LABEL_MAX_TOKENS)
              for item in items if asks_judge(ctx, item) and awaiting_label(ctx, item)]
    panel = panel_batch_jobs(ctx, items, options.panel) if options.panel else []
    run_batches(ctx, "batch_profile", [(ctx.client("judge"), labels), *panel])


def measure_item(ctx: AgentContext, item: QAItem, options: ProfileOptions) -> None:
    """Stage 1 for one item: the label call and the panel's answers, each only if not stored yet."""
    if awaiting_label(ctx, item):  # none yet, or a call that never got an answer (a resume asks again)
        ctx.store.put_diagnostics([label_item(ctx, item)])
    if options.panel:
        panel = answer_panel(ctx, item, options.panel)
        if panel is not None:
            ctx.store.put_diagnostics([panel])


def labelled(ctx: AgentContext, item: QAItem) -> QAItem:
    """`item` with domain, skill and difficulty from its stored diagnostics."""
    label = ctx.store.diagnostic(item.id, "label")
    difficulty = ctx.store.diagnostic(item.id, "difficulty")
    update: dict[str, Any] = {"domain": ctx.domain_of(item)}
    if label is not None:  # an item is never left with an empty cell: no answer is "unsure"
        update["skill"] = label.evidence.get("skill") or UNSURE
    if difficulty is not None:
        update["difficulty"] = difficulty.score
    elif label is not None and label.evidence.get("difficulty") is not None:
        update["difficulty"] = label.evidence["difficulty"]
    return item.model_copy(update=update)


# ----------------------------------------------------------------------------------- dataset stages

def _needs_difficulty(ctx: AgentContext, item: QAItem, method: str) -> bool:
    diag = ctx.store.diagnostic(item.id, "difficulty")
    return diag is None or diag.evidence.get("method") != method


def _rating_difficulty(ctx: AgentContext, items: Sequence[QAItem], overwrite: bool) -> None:
    out = []
    for item in items:
        if not overwrite and ctx.store.has_diagnostic(item.id, "difficulty"):
            continue
        label = ctx.store.diagnostic(item.id, "label")
        diag = rating_diagnostic(label) if label is not None else None
        if diag is not None:
            out.append(diag)
    ctx.store.put_diagnostics(out)


def estimate_difficulty(ctx: AgentContext, items: Sequence[QAItem], options: ProfileOptions) -> str:
    """Stage 2; returns a stop reason when the budget ran out (items then keep the rating difficulty)."""
    todo = [i for i in items if _needs_difficulty(ctx, i, options.difficulty)]
    if not todo:
        return ""
    _rating_difficulty(ctx, todo, overwrite=False)  # a floor if Elo/IRT cannot finish
    if options.difficulty == "rating":
        _rating_difficulty(ctx, todo, overwrite=True)
        return ""
    if options.difficulty == "elo":
        with ctx.tracer.span("elo_difficulty", "chain", {"items": len(todo)}) as run:
            try:
                diags = elo_difficulty(ctx, todo)
            except BudgetExhausted:
                run.outputs = {"stopped": "budget"}
                return "budget exhausted during Elo difficulty"
            run.outputs = {"rated": len(diags)}
        ctx.store.put_diagnostics(diags)
        return ""
    panel = {d.item_id: d for d in ctx.store.diagnostics("panel")}
    ctx.store.put_diagnostics(irt_difficulty(ctx, todo, panel))
    return ""


def score_item_distractors(ctx: AgentContext, items: Sequence[QAItem], options: ProfileOptions) -> None:
    """Stage 3: embedding diversity/plausibility plus panel pick rates, for items not scored yet."""
    todo = [i for i in items if not ctx.store.has_diagnostic(i.id, "distractors")]
    if not options.distractors or not todo:
        return
    embed = ctx.embedder()
    rates: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for item in todo:
        panel = ctx.store.diagnostic(item.id, "panel")
        measured = panel_pick_rates(panel.evidence, len(item.choices)) if panel is not None else None
        if measured is not None:
            # the score judges the rates only from `min_responses` members' distributions or answers: one
            # model's probabilities are not a population of test-takers, and counting them moved 5 of the 40
            # least diverse MMLU items of distractors_s31_cold above the rewrite threshold
            rates[item.id], counts[item.id] = measured.rates, measured.n
    with ctx.tracer.span("distractors", "tool", {"items": len(todo)}) as run:
        diags = score_distractors(todo, embed=embed,
                                  pick_rates=rates or None, n_responses=counts or None)
        run.outputs = {"scored": len(diags), "flagged": sum(d.flag for d in diags)}
    ctx.store.put_diagnostics(diags)


def screen(ctx: AgentContext, items: Sequence[QAItem], options: ProfileOptions, expected: int | None) -> str:
    """Stage 4: pool the evidence, then ask the validator about suspects; returns a stop reason."""
    diags = {i.id: error_diagnostic(ctx, i, expected) for i in items}
    ctx.store.put_diagnostics(diags.values())
    check = load_check_original(ctx)
    if check is None:
        return ""
    suspects = [i for i in items if diags[i.id].evidence["p_error"] >= options.validator_threshold
                and not ctx.store.has_diagnostic(i.id, "validator")]
    if not suspects:
        return ""
    stop = ""

    def one(item: QAItem) -> Diagnostic | None:
        try:
            return validate_suspect(ctx, check, item)
        except BudgetExhausted:
            return None

    workers = max(1, ctx.settings.roles.validator.total_concurrency())
    with ctx.tracer.span("validate_suspects", "chain", {"suspects": len(suspects)}) as run, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in suspects]
        verdicts = [f.result() for f in futures]
        run.outputs = {"validated": sum(v is not None for v in verdicts)}
    for item, verdict in zip(suspects, verdicts, strict=True):
        if verdict is None:
            stop = "budget exhausted during validation of suspects"
            continue
        ctx.store.put_diagnostics([verdict])
        ctx.store.put_diagnostics([error_diagnostic(ctx, item, expected)])
    return stop


# ---------------------------------------------------------------------------------------- the job

def profile_items(
    ctx: AgentContext, items: list[QAItem], progress: Callable[[int, int], None] | None = None,
    what: str = "profiling",
) -> tuple[int, str]:
    """Profile `items` and store the labelled items; returns (profiled, stop reason). `what` names the work
    in the stop reason ("budget exhausted during profiling", or during the measuring of a round's edits).

    This is the profile node's whole job; the graph calls it for the input and, after each round,
    for new and edited items. Items whose label call could not be paid for are left unprofiled.
    """
    options = ProfileOptions.from_context(ctx)
    expected = modal_choice_count(items)  # the option count `option_count_mismatch` compares against
    done = 0
    stop = ""

    def one(item: QAItem) -> QAItem | None:
        try:
            measure_item(ctx, item, options)
        except BudgetExhausted:
            return None
        return item

    label_in_batches(ctx, items)  # several items per label call when options.label_batch > 1
    if ctx.options.batch:
        batch_profile(ctx, items, options)
    measured: list[QAItem] = []
    workers = max(1, ctx.settings.roles.judge.total_concurrency())
    with ThreadPoolExecutor(max_workers=workers) as pool:  # copy_context: LLM runs nest under the node
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in items]
        for future in futures:
            item = future.result()
            if item is None:
                stop = f"budget exhausted during {what}"
                continue
            measured.append(item)
            if progress is not None:
                progress(len(measured), len(items))
    # an item cut off mid-panel still has its label: keep it, with the evidence it has
    measured_ids = {i.id for i in measured}
    measured += [i for i in items if i.id not in measured_ids and ctx.store.has_diagnostic(i.id, "label")]

    stop = estimate_difficulty(ctx, measured, options) or stop
    try:
        score_item_distractors(ctx, measured, options)
    except (ImportError, OSError, RuntimeError) as exc:  # embeddings unavailable (no torch, no weights): profiling goes on without
        ctx.store.set_meta("distractors_error", f"{type(exc).__name__}: {exc}")
    stop = screen(ctx, measured, options, expected) or stop

    statuses = ctx.store.statuses()
    for item in measured:
        ctx.store.replace_item(labelled(ctx, item), statuses.get(item.id, "kept"))
        done += 1
    return done, stop
