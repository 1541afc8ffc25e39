"""Deletion is the exception: removal is free of model tokens but only offered for defects (or when the
user allows shrinking), carries a price per removed item, and the size floor bounds it in every mode."""

from __future__ import annotations

import pytest

from refinelab.config import PLANNER_MODES
from refinelab.operations import Op
from refinelab.planner.catalogue import ApplicabilityPolicy, Catalogue
from refinelab.planner.ilp import check_plan, solve
from refinelab.planner.problem import PlanTargets, Weights, build_problem

# 40 items in one over-represented cell, 4 in another; the target is 50/50.
SKEWED = ([{"id": f"a{i}", "domain": "STEM", "skill": "calculation", "difficulty": 0.5} for i in range(40)]
          + [{"id": f"b{i}", "domain": "law", "skill": "recall", "difficulty": 0.5} for i in range(4)])
TARGETS = PlanTargets(coverage={"STEM|calculation": 1, "law|recall": 1}, difficulty={"medium": 1})


def test_removal_is_priced_at_zero_tokens() -> None:
    catalogue = Catalogue(applicability=ApplicabilityPolicy(allow_shrink=True))
    problem = build_problem(SKEWED[:2], budget=1000, catalogue=catalogue)
    remove = next(c for c in problem.items[0].candidates if c.op is Op.REMOVE)
    assert remove.cost == 0.0


def test_without_allow_shrink_only_defects_are_removable() -> None:
    rows = [{"id": "ok", "p_error": 0.1}, {"id": "bad", "p_error": 0.8}, {"id": "dup", "defect": True}]
    problem = build_problem(rows, budget=1000)
    removable = {i.id for i in problem.items if any(c.op is Op.REMOVE for c in i.candidates)}
    assert removable == {"bad", "dup"}


def test_coverage_is_bought_with_new_items_not_deletions() -> None:
    problem = build_problem(SKEWED, budget=20_000, targets=TARGETS, min_size=40)
    plan = solve(problem, gap=1e-9)
    assert "remove" not in plan.by_op  # nothing is defective and shrinking is not allowed
    assert plan.by_op["expand"].count > 0
    assert plan.metrics["coverage_deviation"].after < plan.metrics["coverage_deviation"].before


@pytest.mark.parametrize("mode", PLANNER_MODES)
def test_size_floor_holds_in_every_mode(mode: str) -> None:
    catalogue = Catalogue(applicability=ApplicabilityPolicy(allow_shrink=True))
    problem = build_problem(SKEWED, budget=50_000, targets=TARGETS, catalogue=catalogue, min_size=40)
    plan = solve(problem, mode=mode, gap=1e-9)
    removals = sum(1 for a in plan.assignments if a.op is Op.REMOVE)
    assert removals <= 4
    assert check_plan(problem, plan) == []


def test_with_allow_shrink_and_no_floor_removal_cuts_the_big_cell() -> None:
    catalogue = Catalogue(applicability=ApplicabilityPolicy(allow_shrink=True, enabled=frozenset({Op.REMOVE})))
    weights = Weights(difficulty=0.0)
    problem = build_problem(SKEWED, budget=1000, targets=TARGETS, catalogue=catalogue, weights=weights)
    plan = solve(problem, gap=1e-9)
    assert plan.by_op["remove"].count > 4  # nothing stops it but the price per removal
    bounded = build_problem(SKEWED, budget=1000, targets=TARGETS, catalogue=catalogue, weights=weights, min_size=40)
    assert solve(bounded, gap=1e-9).by_op["remove"].count == 4


def test_check_plan_reports_a_floor_violation() -> None:
    catalogue = Catalogue(applicability=ApplicabilityPolicy(allow_shrink=True, enabled=frozenset({Op.REMOVE})))
    problem = build_problem(SKEWED, budget=1000, targets=TARGETS, catalogue=catalogue, weights=Weights(difficulty=0.0))
    plan = solve(problem, gap=1e-9)
    floored = problem.model_copy(update={"min_size": 43})
    assert any("size floor" in p for p in check_plan(floored, plan))


def test_a_fix_beats_a_free_removal_when_affordable() -> None:
    rows = [{"id": "bad", "p_error": 0.9, "length_tokens": 100}, {"id": "ok"}]
    problem = build_problem(rows, budget=50_000, targets=PlanTargets(total=2),
                            weights=Weights(coverage=0.0, difficulty=0.0))
    plan = solve(problem, gap=1e-9)
    ops = {a.item_id: a.op for a in plan.assignments}
    assert ops.get("bad") is Op.FIX
