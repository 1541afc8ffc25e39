"""Difficulty estimation for the profiler: a single rating, Elo from pairwise LLM judgements, or panel IRT.

Three methods, cheapest first (picked with `ctx.options.difficulty_method`):
- ``rating``: the labeller's 1–5 rating (no extra call; the label call already asks for it);
- ``elo``: "which question is harder?" asked of the judge for Swiss-paired items in both orders
  (metrics/elo.py does the pairing, the draws and the fit); ~n·(log2 n + 8) judge calls;
- ``irt`` (the default): a one-parameter Rasch fit of the model panel's correctness (metrics/irt.py),
  soft where the panel measured option probabilities, with bucket edges anchored on the fitted panel
  (`anchored_difficulty`); costs the panel's answers, which error screening also uses. Without a
  configured panel the judge alone answers (one short call per item).
Every result is stored as a ``difficulty`` Diagnostic (score = difficulty in [0, 1], 1 = hardest).
"""

from __future__ import annotations

import contextvars
import functools
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunOptions
from refinelab.agents.panel import JUDGE, injected_model, member_spec
from refinelab.config import EMBEDDED
from refinelab.errors import LLMCallFailed
from refinelab.metrics.elo import EloConfig, EloResult, Verdict, run_elo
from refinelab.metrics.irt import (
    anchored_difficulty,
    fit_item_logit,
    fit_rasch,
    reference_difficulty,
    score_on_anchors,
    soft_correctness,
)
from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.ledger import CallTag

ELO_SCALE = 400.0
ELO_ANCHORS = 16  # already-rated items mixed into a later Elo run to put new items on the old scale
JUDGE_MAX_TOKENS = 32  # {"harder": 1} is ~17 tokens with the whitespace models emit


class HarderOut(BaseModel):
    """The judge's answer: which of the two questions shown is harder."""

    harder: Literal[1, 2]


def difficulty_method(ctx: AgentContext) -> str:
    return ctx.options.difficulty_method


JUDGE_MEMBER = JUDGE  # the panel member that is the judge role (agents/panel.py)


def measuring_panel(options: RunOptions) -> list[str]:
    """Who answers every item while profiling: the configured panel, else the judge alone when difficulty is
    measured by IRT (it needs correctness from someone), else nobody. One rule for the profiler and for the
    checks made before a run (a calibration scores these members' answers: agents/screening.py)."""
    return list(options.panel) or ([JUDGE_MEMBER] if options.difficulty_method == "irt" else [])


def default_panel(ctx: AgentContext) -> list[str]:
    """The panel that measures how models do when the user configured none: the judge alone (one short
    call per item). A chat model plugged in for the judge role answers as that member too; that is decided
    where the member's client is made (`panel.injected_model`), so asking for the panel changes nothing."""
    return [JUDGE_MEMBER]


# ------------------------------------------------------------------------------------------ rating

def rating_diagnostic(label: Diagnostic) -> Diagnostic | None:
    """The labeller's rating as a difficulty Diagnostic; None when the label call failed."""
    difficulty = label.evidence.get("difficulty")
    if difficulty is None:
        return None
    return Diagnostic(item_id=label.item_id, check="difficulty", flag=False, score=float(difficulty),
                      evidence={"method": "rating", "rating": label.evidence.get("rating")})


# --------------------------------------------------------------------------------------------- elo

def judge_pair(ctx: AgentContext, first: QAItem, second: QAItem) -> Verdict:
    """One LLM judgement. A failed call answers "first" whatever the order, so the pair becomes a draw."""
    messages = ctx.pack(first).messages("judge_harder", first=first, second=second)
    tag = CallTag(node="profile", operation="elo", item_id=f"{first.id}|{second.id}")
    try:
        result = ctx.client("judge").structured(messages, HarderOut, tag, max_tokens=JUDGE_MAX_TOKENS)
    except LLMCallFailed:
        return "first"
    return "first" if result.parsed.harder == 1 else "second"


def make_batch_judge(ctx: AgentContext) -> Callable[[Sequence[tuple[QAItem, QAItem]]], list[Verdict]]:
    """A batch judge for `run_elo`: one Swiss round's queries run concurrently (judge role's concurrency).

    `copy_context` keeps each call's trace nested under the caller's run.
    """
    workers = max(1, ctx.settings.roles.judge.total_concurrency())

    def batch(queries: Sequence[tuple[QAItem, QAItem]]) -> list[Verdict]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(contextvars.copy_context().run, judge_pair, ctx, a, b) for a, b in queries]
            return [f.result() for f in futures]  # BudgetExhausted propagates and stops the Elo run

    return batch


def elo_config(ctx: AgentContext) -> EloConfig:
    """EloConfig from the run options (`elo_extra_rounds`, `elo_bootstrap`), seeded by the run's seed."""
    return EloConfig(extra_rounds=ctx.options.elo_extra_rounds,
                     bootstrap=ctx.options.elo_bootstrap, seed=ctx.options.seed)


def _anchors(rated: dict[str, Diagnostic], limit: int) -> list[str]:
    """Up to `limit` rated items spread evenly over the rating range."""
    ordered = sorted(rated, key=lambda i: rated[i].evidence["rating"])
    if len(ordered) <= limit:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, limit).round().astype(int)
    return [ordered[i] for i in sorted(set(picks.tolist()))]


def elo_difficulty(ctx: AgentContext, items: Sequence[QAItem]) -> list[Diagnostic]:
    """Rate `items` by Elo and return their difficulty Diagnostics.

    A first run fixes the scale (its mean rating is stored as the reference); a later run (new or
    edited items after a round) mixes in anchors already rated and shifts its ratings so the anchors
    keep their stored mean, then maps every rating to [0, 1] against the same reference.
    """
    rated = {d.item_id: d for d in ctx.store.diagnostics("difficulty")
             if d.evidence.get("method") == "elo" and d.item_id not in {i.id for i in items}}
    anchor_ids = _anchors(rated, ELO_ANCHORS) if rated else []
    anchors = [ctx.store.item(i) for i in anchor_ids]
    pool = list(items) + anchors
    if len(pool) < 2:
        return []
    result: EloResult[str] = run_elo(pool, batch_judge=make_batch_judge(ctx), ids=[i.id for i in pool],
                                     config=elo_config(ctx))
    ratings, low, high = result.ratings.copy(), result.ci_low.copy(), result.ci_high.copy()
    reference = ctx.store.get_meta("elo_reference_mean")
    if anchors:
        stored = np.array([rated[i].evidence["rating"] for i in anchor_ids])
        shift = float(stored.mean() - ratings[len(items):].mean())
        ratings, low, high = ratings + shift, low + shift, high + shift
    if reference is None:
        reference = float(ratings.mean())
        ctx.store.set_meta("elo_reference_mean", reference)
    matches = np.zeros(len(pool), dtype=int)
    draws = np.zeros(len(pool), dtype=int)
    for m in result.matches:
        matches[m.first] += 1
        matches[m.second] += 1
        if m.score == 0.5:
            draws[m.first] += 1
            draws[m.second] += 1
    out = []
    for index, item in enumerate(items):
        difficulty = 1.0 / (1.0 + 10 ** (-(ratings[index] - reference) / ELO_SCALE))
        out.append(Diagnostic(item_id=item.id, check="difficulty", flag=False, score=float(difficulty), evidence={
            "method": "elo", "rating": round(float(ratings[index]), 2),
            "ci": [round(float(low[index]), 2), round(float(high[index]), 2)],
            "matches": int(matches[index]), "draws": int(draws[index]), "comparisons_in_run": result.comparisons,
            "anchors": len(anchors),
        }))
    return out


# --------------------------------------------------------------------------------------------- irt

def _reference_for(ctx: AgentContext, members: Sequence[str]) -> dict | None:
    """The shipped p(key) reference (refinelab/data/difficulty_reference.json) when the panel is one member
    that is the model it was measured on — the embedded model answering through logprobs, nothing plugged
    in — else None (a Rasch fit over several members anchors the buckets on their abilities instead)."""
    if len(members) != 1 or ctx.options.panel_method != "logprobs" or injected_model(ctx, members[0]) is not None:
        return None
    spec = member_spec(ctx, members[0])
    reference = difficulty_reference()
    if spec.endpoint != EMBEDDED or spec.model != reference["model"]:
        return None
    return reference


@functools.cache
def difficulty_reference() -> dict:
    data = json.loads(resources.files("refinelab.data").joinpath("difficulty_reference.json").read_text("utf-8"))
    return {"model": data["model"], "p_key_quantiles": [float(v) for v in data["p_key_quantiles"]],
            "source": f"{data['model']} on {data['items']} MMLU-Redux items"}


def irt_difficulty(ctx: AgentContext, items: Sequence[QAItem], panel: dict[str, Diagnostic]) -> list[Diagnostic]:
    """Rasch difficulty from every stored panel answer (refitting is free); Diagnostics for `items`.

    Correctness is soft where the panel measured option probabilities (a member's probability of the
    key), else 1/0 from its answer. The score is `anchored_difficulty`: the bucket edges come from the
    fitted panel (weakest and strongest member), not from a fixed share of "a model gets it wrong"."""
    members = sorted({m for diag in panel.values() for m in diag.evidence.get("answers", {})})
    item_ids = list(panel)
    if not members or not item_ids:
        return []
    matrix = np.full((len(members), len(item_ids)), np.nan)
    for i, item_id in enumerate(item_ids):
        evidence = panel[item_id].evidence
        for m, member in enumerate(members):
            value = soft_correctness(evidence, member)
            if value is not None:
                matrix[m, i] = value
    fit = fit_rasch(matrix, item_ids=item_ids, model_ids=members)
    score, low, high = anchored_difficulty(fit.item_logit, fit.ability)
    anchors: list[float] | None = [round(low, 3), round(high, 3)]
    reference = _reference_for(ctx, members)
    if reference is not None:  # one member: read each p(key) against the model's reference population
        quantiles = reference["p_key_quantiles"]
        score = np.asarray([float(score[k]) if np.isnan(matrix[0, k]) else reference_difficulty(matrix[0, k], quantiles)
                            for k in range(len(item_ids))])
        anchors = None  # the Rasch anchors did not place these items; the evidence must not say they did
    by_id = {i: k for k, i in enumerate(fit.item_ids)}
    abilities = {m: round(a, 3) for m, a in fit.ability_by_model().items()}
    soft = bool(any(panel[i].evidence.get("probs") for i in item_ids))
    out = []
    for item in items:
        k = by_id.get(item.id)
        if k is None:
            continue
        out.append(Diagnostic(item_id=item.id, check="difficulty", flag=False, score=float(score[k]),
                              evidence={"method": "irt", "logit": round(float(fit.item_logit[k]), 3),
                                        "responses": int(fit.n_responses[k]), "panel_ability": abilities,
                                        "anchors": anchors, "soft": soft,
                                        "reference": reference["source"] if reference else None,
                                        "p_avg_model_wrong": round(float(fit.difficulty[k]), 4),
                                        "converged": fit.converged}))
    return out


def remeasured_difficulty(difficulty: Diagnostic, panel_after: Diagnostic) -> Diagnostic | None:
    """An IRT difficulty moved to where the panel's answers on the edited item place it, the profile's scale
    held fixed; None when `difficulty` is not IRT's or no member it was fitted on answered.

    Both ways the profile places items: on the Rasch fit (the item's logit refitted with the members'
    abilities held, scored against the same anchors) or, for the one-member embedded panel, on the shipped
    p(key) reference (`reference_difficulty`). A calibrated item then enters the next plan, and the report's
    difficulty figures, at the difficulty it was measured at (before, the reference case kept none: the
    item left the difficulty distribution)."""
    if difficulty.evidence.get("method") != "irt":
        return None
    abilities: dict[str, float] = difficulty.evidence.get("panel_ability") or {}
    members = [m for m in abilities if soft_correctness(panel_after.evidence, m) is not None]
    if not members:
        return None
    correct = [float(soft_correctness(panel_after.evidence, m)) for m in members]  # type: ignore[arg-type]
    anchors = difficulty.evidence.get("anchors")
    logit = fit_item_logit(correct, [abilities[m] for m in members])
    if difficulty.evidence.get("reference") and len(members) == 1:
        score = reference_difficulty(correct[0], difficulty_reference()["p_key_quantiles"])
    elif anchors:
        score = float(score_on_anchors(logit, float(anchors[0]), float(anchors[1])))
    else:
        return None
    return difficulty.model_copy(update={"score": score, "evidence": {
        **difficulty.evidence, "logit": round(logit, 3), "measured_after_edit": True}})
