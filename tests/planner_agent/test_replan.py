"""Re-planning in the graph: each round plans with the costs observed so far and the budget left, and the
solver runs as a LangChain tool whose run (inputs, outputs) is in trace.jsonl."""

from __future__ import annotations

from pathlib import Path

from refinelab.agents.options import RunHooks
from refinelab.agents.planner_agent import PLAN_SAFETY, current_catalogue, new_item_outcomes, plan_round
from refinelab.api import refine
from refinelab.operations import Op
from refinelab.planner.problem import target_success
from refinelab.planner.tool import TOOL_NAME
from refinelab.tools.tracing import read_trace
from tests.support.plan_helpers import OPS, dataset, profiled_context, run_pilot, settings
from tests.support.scripted import EXTRAS, models


def test_two_rounds_replan_on_observed_costs_and_what_is_left(tmp_path: Path) -> None:
    budget = 40_000
    result = refine(dataset(20), budget=budget, settings=settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**EXTRAS, "pilot_per_op": 1, "rounds": 2})
    runs = read_trace(result.run_dir / "trace.jsonl")
    plans = [r for r in runs if r["name"] == "ilp_plan"]
    assert len(plans) == 2 and all(r["run_type"] == "tool" for r in plans)
    first, second = (r["inputs"] for r in plans)
    assert first["observations"] >= 1  # the pilot's edits
    assert second["observations"] > first["observations"]  # plus round 1's
    assert second["available"] < first["available"] <= budget
    for basis, run in zip((first, second), plans, strict=True):
        assert abs(basis["budget"] - PLAN_SAFETY * basis["available"]) < 1e-6
        assert run["outputs"]["forecast_tokens"] <= basis["budget"]
    assert first["catalogue"] != second["catalogue"]  # refitted on round 1's edits
    assert result.report["ledger"]["spent"] <= budget
    # the solver ran as the LangChain tool, nested under each ilp_plan, with inputs and outputs
    tools = [r for r in runs if r["name"] == TOOL_NAME]
    assert [t["parent_run_id"] for t in tools] == [p["id"] for p in plans]
    for tool in tools:
        assert tool["run_type"] == "tool" and tool["error"] is None
        assert tool["inputs"]["mode"] == "ilp" and tool["inputs"]["detail"] == "full"
        assert tool["inputs"]["problem"]["items"] > 0 and "candidates_by_op" in tool["inputs"]["problem"]
        assert {"forecast_tokens", "by_op", "by_op_and_group", "metrics", "marginal_value_per_1k",
                "assignments"} <= set(tool["outputs"])
    # the pilot ran once, as round 0, under the first plan node
    pilot = [r for r in runs if r["name"] == "pilot"]
    assert len(pilot) == 1 and result.report["ledger"]["by_node"]["pilot"]["tokens"] > 0


def test_replan_prices_edits_with_the_refitted_catalogue_within_what_is_left(tmp_path: Path) -> None:
    ctx = profiled_context(tmp_path, budget=60_000, pilot_per_op=2)
    run_pilot(ctx, OPS)
    available = ctx.ledger.available
    assert available is not None and available < 60_000
    plan, problem = plan_round(ctx, OPS, "ilp")
    assert problem.budget == PLAN_SAFETY * available and plan.forecast_tokens <= problem.budget
    fitted, n = current_catalogue(ctx, OPS)
    assert n > 0
    for item in problem.items:
        for cand in item.candidates:  # a fix that would abstain on the stored evidence costs nothing
            expected = 0.0 if cand.op is Op.FIX and item.fix_abstains else fitted.cost(cand.op, item.length)
            assert abs(cand.cost - expected) < 1e-6
    # a new item is priced by its cell's (expand) or bucket's (generate) own record where the pilot tried it
    outcomes = new_item_outcomes(ctx)
    cells, buckets = outcomes.get(Op.EXPAND, {}), outcomes.get(Op.GENERATE, {})
    for option in problem.new_options:
        record = cells.get(option.cell or "") if option.op is Op.EXPAND else buckets.get(option.bucket or "")
        assert abs(option.success - target_success(fitted.success(option.op), record)) < 1e-9


def test_edit_priors_account_for_loop_backs() -> None:
    from refinelab.agents.planner_agent import edit_catalogue
    from refinelab.planner.catalogue import Catalogue

    base, once, twice = Catalogue(), edit_catalogue(OPS, 1), edit_catalogue(OPS, 2)
    for op in ("fix", "expand", "calibrate"):
        s = base.success(op)
        assert abs(once.cost(op, 100) - base.cost(op, 100)) < 1e-9 and abs(once.success(op) - s) < 1e-9
        assert abs(twice.cost(op, 100) - base.cost(op, 100) * (2 - s)) < 1e-6  # E[attempts] = 1 + (1 - s)
        assert abs(twice.success(op) - (1 - (1 - s) ** 2)) < 1e-9
    assert twice.spec("remove") == base.spec("remove")  # never validated, never retried
