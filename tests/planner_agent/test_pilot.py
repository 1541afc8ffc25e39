"""The pilot: real refine + validate on a small stratified sample, tokens from the ledger, refit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from refinelab.agents.planner_agent import current_catalogue, edit_catalogue, observations, plan_round
from refinelab.operations import Op
from tests.support.plan_helpers import OPS, profiled_context, run_pilot


def _accounted_once(ctx) -> None:  # noqa: ANN001
    ids = [i for i, _, _ in ctx.store.originals()]
    assert len(ids) == len(set(ids))
    assert {s for _, s, _ in ctx.store.originals()} <= {"kept", "edited", "removed", "failed"}


def test_pilot_measures_tokens_and_success_and_refits_the_catalogue(tmp_path: Path) -> None:
    ctx = profiled_context(tmp_path, pilot_per_op=2)
    before_spent = ctx.ledger.spent
    result = run_pilot(ctx, OPS)
    assert result.status == "done" and result.finished == result.tasks > 0
    outcomes = ctx.store.outcomes(0)
    ops = Counter(o["operation"] for o in outcomes)
    assert "remove" not in ops  # never piloted: it would delete items
    assert set(ops) == {"fix", "rewrite_distractors", "calibrate", "expand", "generate"}
    assert all(n <= 2 for n in ops.values())
    # tokens: what the ledger attributed to node "pilot" is exactly what the store recorded per edit
    pilot_tokens = ctx.ledger.summary()["by_node"]["pilot"]["tokens"]
    assert pilot_tokens == ctx.ledger.spent - before_spent == result.tokens > 0
    assert sum(e["tokens"] for e in ctx.store.edits() if e["round"] == 0) == pilot_tokens
    # one stratified sample: distinct items for the item operations
    touched = [o["item_id"] for o in outcomes if o["operation"] in ("fix", "rewrite_distractors", "calibrate")]
    assert len(touched) == len(set(touched))
    # the catalogue moved from the priors toward what was observed
    # (a fix that abstained on the stored evidence tried nothing and is left out of the fit)
    prior = edit_catalogue(OPS, ctx.options.max_attempts)
    fitted, n = current_catalogue(ctx, OPS)
    abstained = Counter(e["operation"] for e in ctx.store.edits() if e["reason"].startswith("abstained: "))
    assert n == result.finished - sum(abstained.values())
    for op in ("fix", "rewrite_distractors", "calibrate", "expand", "generate"):
        assert fitted.spec(op).cost.n_observations == ops[op] - abstained[op]
        if ops[op] > abstained[op]:
            assert fitted.spec(op).cost.intercept != prior.spec(op).cost.intercept
    # the fitted success rates move from the prior toward what the pilot measured (the scripted writer
    # changes the key text on a calibrate, which the refiner rejects: 0% there)
    assert result.by_op["calibrate"]["committed"] == 0
    for op in (Op.CALIBRATE, Op.REWRITE_DISTRACTORS, Op.FIX):
        observed = result.by_op[op.value]["committed"] / result.by_op[op.value]["edits"]
        if observed < prior.success(op):
            assert fitted.success(op) < prior.success(op), op
        else:
            assert fitted.success(op) >= prior.success(op), op
    # committed pilot edits landed like graph edits; every input item is still accounted exactly once
    statuses = ctx.store.statuses()
    for o in outcomes:
        if o["status"] == "committed" and o["operation"] in ("fix", "calibrate"):
            assert statuses[o["item_id"]] == "edited"
    assert sum(1 for o in outcomes if o["status"] == "committed" and o["operation"] in ("expand", "generate")) \
        == ctx.store.status_counts().get("new", 0)
    _accounted_once(ctx)
    # the next plan never edits a pilot-touched item again; the one exception is removing an item whose
    # fix failed (an error that could not be repaired is a defect)
    plan, problem = plan_round(ctx, OPS, "ilp")
    failed_fixes = {o["item_id"] for o in outcomes if o["operation"] == "fix" and o["status"] == "gave_up"}
    again = {a.item_id: a.op for a in plan.assignments if a.item_id in set(touched)}
    assert all(op is Op.REMOVE and item in failed_fixes for item, op in again.items()), again
    assert all(all(c.op is Op.REMOVE for c in i.candidates) and (not i.candidates or i.id in failed_fixes)
               for i in problem.items if i.id in touched)


def test_pilot_is_not_run_twice(tmp_path: Path) -> None:
    ctx = profiled_context(tmp_path, pilot_per_op=1)
    first = run_pilot(ctx, OPS)
    spent = ctx.ledger.spent
    again = run_pilot(ctx, OPS)  # e.g. the plan node re-run after a resume
    assert again == first and ctx.ledger.spent == spent


def test_pilot_per_op_zero_uses_priors(tmp_path: Path) -> None:
    ctx = profiled_context(tmp_path, pilot_per_op=0)
    spent = ctx.ledger.spent
    result = run_pilot(ctx, OPS)
    assert result.status == "skipped" and "priors" in result.reason
    assert ctx.ledger.spent == spent and not ctx.store.edits()
    fitted, n = current_catalogue(ctx, OPS)
    assert n == 0 and fitted == edit_catalogue(OPS, ctx.options.max_attempts)


def test_pilot_with_no_budget_left_uses_priors(tmp_path: Path) -> None:
    ctx = profiled_context(tmp_path, pilot_per_op=3)
    ctx.ledger.cap = ctx.ledger.spent  # profiling took everything
    result = run_pilot(ctx, OPS)
    assert result.status == "skipped" and not ctx.store.edits()
    assert observations(ctx) == []
    plan, _ = plan_round(ctx, OPS, "ilp")
    assert plan.empty and plan.reason.startswith("budget is zero")


def test_budget_exhausted_stops_the_pilot_and_planning_goes_on(tmp_path: Path) -> None:
    # the share check is fooled on purpose (share 100x) so the ledger itself must stop the pilot
    ctx = profiled_context(tmp_path, pilot_per_op=3, pilot_share=100.0)
    ctx.ledger.cap = ctx.ledger.spent + 2_500
    result = run_pilot(ctx, OPS)
    assert result.status == "budget" and "budget ran out" in result.reason
    assert ctx.ledger.spent <= ctx.ledger.cap
    cut = [o for o in ctx.store.outcomes(0) if "budget exhausted" in o["reason"]]
    assert cut and all(o["status"] == "gave_up" for o in cut)
    # cut edits measured nothing and are left out, as are fixes that abstained on the stored evidence
    abstained = {e["edit_id"] for e in ctx.store.edits() if e["reason"].startswith("abstained: ")}
    assert len(observations(ctx)) == result.finished - len(abstained)
    _accounted_once(ctx)
    plan, _ = plan_round(ctx, OPS, "ilp")
    assert plan.forecast_tokens <= (ctx.ledger.available or 0)


def test_the_pilot_share_goes_to_the_item_edits_in_pilot_order() -> None:
    """A share that fits one edit buys the rewrite (pilot order 1), not the calibration (alphabetically first)."""
    from refinelab.agents.pilot import _within_share
    from refinelab.agents.planner_agent import item_length_tokens
    from refinelab.state import EditTask
    from tests.support.plan_helpers import dataset

    items = {i.id: i for i in dataset(2).items}
    first, second = list(items)
    tasks = [EditTask(f"r0-calibrate-{first}", first, "calibrate", 0, target="hard"),
             EditTask(f"r0-rewrite_distractors-{second}", second, "rewrite_distractors", 0)]
    catalogue = edit_catalogue(OPS, 2)
    rewrite = catalogue.cost("rewrite_distractors", item_length_tokens(items[second]))
    calibrate = catalogue.cost("calibrate", item_length_tokens(items[first]))
    assert rewrite < calibrate
    kept = _within_share(tasks, catalogue, items, cap=max(rewrite, calibrate) * 1.01)
    assert [t.operation for t in kept] == ["rewrite_distractors"]


def test_a_failed_fix_makes_a_defect_only_of_an_item_screening_flagged(tmp_path: Path) -> None:
    """A fix that abstained on an item screening did not flag is doubt, not evidence of an error: the item
    is kept, not removed (a fresh demo had removed a correctly keyed item that way)."""
    from refinelab.agents.planner_agent import item_profiles

    ctx = profiled_context(tmp_path, n=8)
    items = ctx.store.items(("kept",))
    flagged, unflagged = items[0], items[1]  # profiled_context flags every 4th item
    assert ctx.store.diagnostic(flagged.id, "error").flag and not ctx.store.diagnostic(unflagged.id, "error").flag
    for item in (flagged, unflagged):
        ctx.store.set_outcome(f"r1-fix-{item.id}", item.id, "fix", 1, "gave_up", "abstained", 2)
    defects = {p.id: p.defect for p in item_profiles(ctx)}
    assert defects[flagged.id] is True and defects[unflagged.id] is False


def test_a_fix_the_refiner_would_abstain_on_is_priced_at_zero(tmp_path: Path) -> None:
    """The stored panel doubts an item's key (its favourite leads the key) but favours no option by the
    move margin: the refiner's fix abstains before any model call and sends the item to review, so the
    planner prices that fix at 0 tokens and it reserves no budget. A clear favourite is a key move, which
    is validated, and keeps the fix's price; abstentions stay out of the cost and success fit."""
    from refinelab.agents.planner_agent import item_profiles, make_problem
    from refinelab.schema import Diagnostic

    ctx = profiled_context(tmp_path, n=8)
    doubted, moved = ctx.store.items(("kept",))[0], ctx.store.items(("kept",))[4]  # both flagged
    for item, pooled in ((doubted, [0.20, 0.20, 0.20, 0.20]), (moved, [0.05, 0.05, 0.05, 0.05])):
        probs = list(pooled)
        favourite = (item.answer + 1) % 4
        probs[favourite] = 0.40 if item is doubted else 0.85
        ctx.store.put_diagnostics([Diagnostic(item_id=item.id, check="panel", flag=False, score=0.0,
                                              evidence={"answers": {"judge": favourite}, "pooled": probs})])
    abstains = {p.id: p.fix_abstains for p in item_profiles(ctx)}
    assert abstains[doubted.id] is True and abstains[moved.id] is False
    problem = make_problem(ctx, 1e9, ["fix", "remove"], edit_catalogue(["fix", "remove"], 2))
    fix_cost = {i.id: c.cost for i in problem.items for c in i.candidates if c.op is Op.FIX}
    assert fix_cost[doubted.id] == 0.0 and fix_cost[moved.id] > 100

    # the outcome's reason is the review's ("kept the original: rejected in review"); the attempt says why
    ctx.store.record_attempt(f"r0-fix-{doubted.id}", 0, 0, doubted.id, "fix", "", doubted, None, "", 0,
                             error="abstained: the panel doubts the key")
    ctx.store.set_outcome(f"r0-fix-{doubted.id}", doubted.id, "fix", 0, "gave_up", "kept the original", 1)
    ctx.store.record_attempt(f"r0-fix-{moved.id}", 0, 0, moved.id, "fix", "", moved, moved, "", 300)
    ctx.store.set_outcome(f"r0-fix-{moved.id}", moved.id, "fix", 0, "committed", "moved", 1)
    assert [(o.passed, o.tokens) for o in observations(ctx)] == [(True, 300.0)]
