"""Elo difficulty wired to an LLM judge (scripted): both orders, draws, concurrency, storage, re-runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from refinelab.agents.profiler import profile_items
from tests.support.difficulty_helpers import spearman
from tests.support.pa_helpers import Recorder, make_context, planted_items
from tests.support.scripted_model import ScriptedChatModel

ELO = {"difficulty_method": "elo", "elo_extra_rounds": 3, "elo_bootstrap": 50}


def test_both_orders_issued_and_planted_order_recovered(tmp_path: Path) -> None:
    judge = Recorder()
    ctx = make_context(tmp_path, ScriptedChatModel(respond=judge), options=ELO)
    items = planted_items(12)
    ctx.store.load_items(items)
    done, stop = profile_items(ctx, ctx.store.items(("kept",)))
    assert (done, stop) == (12, "")
    pairs = Counter(judge.pairs())
    assert pairs and all(pairs[(b, a)] == n for (a, b), n in pairs.items())  # every pair in both orders
    diags = {d.item_id: d for d in ctx.store.diagnostics("difficulty")}
    assert len(diags) == 12 and all(d.evidence["method"] == "elo" for d in diags.values())
    for d in diags.values():
        low, high = d.evidence["ci"]
        assert low <= d.evidence["rating"] <= high and d.evidence["matches"] > 0 and 0 <= d.score <= 1
    rho = spearman([int(i[1:]) for i in sorted(diags)], [diags[i].score for i in sorted(diags)])
    assert rho >= 0.9
    stored = {i.id: i.difficulty for i in ctx.store.items()}
    assert all(stored[i] == diags[i].score for i in stored)  # the labelled items carry the Elo difficulty
    assert judge.threads and len(judge.threads) >= 2  # a Swiss round's calls ran concurrently


def test_position_bias_becomes_draws(tmp_path: Path) -> None:
    judge = Recorder(harder=lambda a, b: 1)  # always "the first one": no information
    ctx = make_context(tmp_path, ScriptedChatModel(respond=judge), options=ELO)
    ctx.store.load_items(planted_items(8))
    profile_items(ctx, ctx.store.items(("kept",)))
    diags = ctx.store.diagnostics("difficulty")
    assert all(d.evidence["draws"] == d.evidence["matches"] for d in diags)
    assert max(d.score for d in diags) - min(d.score for d in diags) < 1e-6  # all draws: all equal


def test_rerun_pays_nothing_and_new_items_join_the_scale(tmp_path: Path) -> None:
    judge = Recorder()
    model = ScriptedChatModel(respond=judge)
    ctx = make_context(tmp_path, model, options=ELO)
    items = planted_items(12)
    ctx.store.load_items(items[:10])
    profile_items(ctx, ctx.store.items(("kept",)))
    calls = model.calls
    profile_items(ctx, ctx.store.items(("kept",)))
    assert model.calls == calls  # everything stored: no call at all
    for item in items[10:]:
        ctx.store.add_item(item)
    profile_items(ctx, items[10:])  # new items: rated against anchors from the first run
    diags = {d.item_id: d for d in ctx.store.diagnostics("difficulty")}
    assert diags["q10"].evidence["anchors"] > 0
    assert diags["q11"].score > diags["q05"].score and diags["q10"].score > diags["q02"].score


def test_budget_exhausted_during_elo_keeps_rating(tmp_path: Path) -> None:
    judge = Recorder()
    ctx = make_context(tmp_path, ScriptedChatModel(respond=judge), options=ELO, budget=4_000, concurrency=1)
    # one judge slot: labels finish in order, so the budget runs out inside Elo, not while labelling
    ctx.store.load_items(planted_items(8))
    done, stop = profile_items(ctx, ctx.store.items(("kept",)))
    assert stop and "budget" in stop
    assert ctx.ledger.spent <= 4_000
    methods = [(d.item_id, d.evidence.get("method")) for d in ctx.store.diagnostics("difficulty")]
    assert all(m == "rating" for _, m in methods), methods
    assert done == len(ctx.store.diagnostics("label"))
