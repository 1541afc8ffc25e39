"""Profiler agent: labels each item's domain and skill, rates difficulty, screens for errors.

Measuring is separate from deciding: every result is persisted as a Diagnostic in the run store, and
an item already profiled is skipped, so a re-plan or a resumed run never pays for it again.
"""

from __future__ import annotations

import contextvars
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from refinelab.agents.context import AgentContext
from refinelab.agents.schemas import ItemProfileOut
from refinelab.planner.error_checks import check_row, combine_error_evidence
from refinelab.tools.ledger import CallTag

from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.schema import Diagnostic, QAItem


def label_item(ctx: AgentContext, item: QAItem) -> Diagnostic:
    """One LLM call: skill from the taxonomy and a 1-5 difficulty rating, stored as difficulty in [0, 1]."""
    pack = ctx.pack(item)
    messages = pack.messages("profile_item", item=item, skills=ctx.skills.skills)
    try:
        result = ctx.client("judge").structured(
            messages, ItemProfileOut, CallTag(node="profile", operation="label", item_id=item.id))
    except LLMCallFailed as exc:
        return Diagnostic(item_id=item.id, check="label", flag=True, score=0.5,
                          evidence={"error": str(exc), "raw": exc.raw_outputs, "skill": "", "difficulty": None})
    skill = result.parsed.skill.strip().lower()
    if skill not in ctx.skills.skills:
        skill = "reasoning" if skill.startswith("reason") else next(iter(ctx.skills.skills))
    difficulty = (result.parsed.difficulty - 1) / 4
    return Diagnostic(item_id=item.id, check="label", flag=False, score=difficulty,
                      evidence={"skill": skill, "difficulty": difficulty, "rating": result.parsed.difficulty,
                                "tokens": result.tokens, "cached": result.cached})


def screen_errors(item: QAItem, expected_choices: int | None) -> Diagnostic:
    """Cheapest first: deterministic checks only here; panel and validator evidence join in profiling."""
    checks = check_row(item, expected_choices=expected_choices)
    return combine_error_evidence(item.id, checks).to_diagnostic()


def profile_item(ctx: AgentContext, item: QAItem, expected_choices: int | None) -> QAItem:
    """Profile one item (skipping what is already stored) and return it with domain, skill, difficulty."""
    if not ctx.store.has_diagnostic(item.id, "label"):
        ctx.store.put_diagnostics([label_item(ctx, item)])
    if not ctx.store.has_diagnostic(item.id, "error"):
        ctx.store.put_diagnostics([screen_errors(item, expected_choices)])
    label = ctx.store.diagnostic(item.id, "label")
    assert label is not None
    update = {"domain": ctx.domain_of(item)}
    if label.evidence.get("skill"):
        update["skill"] = label.evidence["skill"]
    if label.evidence.get("difficulty") is not None:
        update["difficulty"] = label.evidence["difficulty"]
    return item.model_copy(update=update)


def profile_items(
    ctx: AgentContext, items: list[QAItem], progress: Callable[[int, int], None] | None = None
) -> tuple[int, str]:
    """Profile `items` concurrently and store the labelled items; returns (profiled, stop reason).

    This is the profile node's whole job; the graph calls it for the input and, after each round,
    for new and edited items.
    """
    expected = Counter(len(i.choices) for i in items).most_common(1)[0][0] if items else None
    done = 0
    stop = ""

    def one(item: QAItem) -> QAItem | None:
        try:
            return profile_item(ctx, item, expected)
        except BudgetExhausted:
            return None

    workers = max(1, ctx.settings.roles.judge.concurrency)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # copy_context: LLM runs nest under the node
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in items]
        for future in futures:
            profiled = future.result()
            if profiled is None:
                stop = "budget exhausted during profiling"
                continue
            ctx.store.replace_item(profiled, ctx.store.statuses().get(profiled.id, "kept"))
            done += 1
            if progress is not None:
                progress(done, len(items))
    return done, stop
