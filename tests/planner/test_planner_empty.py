"""Zero budget, no applicable operation and all-too-expensive give an empty plan with a stated reason."""

from __future__ import annotations

import pytest

from refinelab.config import PLANNER_MODES
from refinelab.planner.catalogue import ApplicabilityPolicy, Catalogue, CostModel
from refinelab.planner.ilp import solve
from refinelab.planner.problem import Item, PlanTargets, Problem, build_problem

PROFILES = [{"id": f"q{i}", "domain": "math" if i % 3 else "law", "skill": "calc", "difficulty": i / 10,
             "p_error": 0.3, "distractor_score": 0.2} for i in range(10)]


@pytest.mark.parametrize("mode", PLANNER_MODES)
def test_zero_budget(mode: str) -> None:
    plan = solve(build_problem(PROFILES, budget=0), mode=mode)
    assert plan.empty and plan.status == "empty"
    assert "budget is zero" in plan.reason


@pytest.mark.parametrize("mode", PLANNER_MODES)
def test_no_applicable_operation(mode: str) -> None:
    none = Catalogue(applicability=ApplicabilityPolicy(enabled=frozenset()))
    plan = solve(build_problem(PROFILES, budget=1e6, catalogue=none), mode=mode)
    assert plan.empty and "no operation applies" in plan.reason


@pytest.mark.parametrize("mode", PLANNER_MODES)
def test_everything_too_expensive(mode: str) -> None:
    pricey = Catalogue()
    pricey = Catalogue(specs={op: s.model_copy(update={"cost": CostModel(intercept=1e9, slope=0)})
                              for op, s in pricey.specs.items()})
    plan = solve(build_problem(PROFILES, budget=50_000, catalogue=pricey), mode=mode)
    assert plan.empty and "costs more than the budget" in plan.reason
    assert plan.forecast_tokens == 0


def test_nothing_worth_buying() -> None:
    # one item, already on target, with a fix that cannot help (no error)
    item = Item(id="a", cell="c", bucket="easy", p_error=0.0, candidates=[])
    problem = Problem(items=[item], targets=PlanTargets(coverage={"c": 1}, difficulty={"easy": 1}), budget=1e4)
    plan = solve(problem)
    assert plan.empty and "no operation applies" in plan.reason
    from refinelab.operations import Op
    from refinelab.planner.problem import CandidateOp

    item.candidates = [CandidateOp(op=Op.REMOVE, cost=10, success=1.0)]
    plan = solve(problem)
    assert plan.empty and plan.status == "empty" and "improves the objective" in plan.reason


def test_empty_problem() -> None:
    plan = solve(Problem(budget=1000))
    assert plan.empty and plan.reason
