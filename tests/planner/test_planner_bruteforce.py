"""On small instances the ILP's objective equals exhaustive enumeration of every feasible plan.

The brute force evaluates plans with its own, independent implementation of the objective of
docs/planner.md (expected counts, |n - t*N| deviations, errors fixed, distractor gains, the price of a
removal) and its own check of the size floor.
"""

from __future__ import annotations

import itertools

import pytest

from refinelab.operations import Op
from refinelab.planner.ilp import solve
from refinelab.planner.problem import Problem

from .conftest import random_problem


def _value(problem: Problem, choice: tuple[int, ...], counts: tuple[int, ...]) -> float:
    n_total = problem.target_total
    cells: dict[str, float] = {c: 0.0 for c in problem.targets.coverage}
    buckets: dict[str, float] = {b: 0.0 for b in problem.targets.difficulty}
    for item in problem.items:
        cells[item.cell] = cells.get(item.cell, 0.0) + 1
        buckets[item.bucket] = buckets.get(item.bucket, 0.0) + 1

    def penalty(cell_n: dict[str, float], bucket_n: dict[str, float]) -> float:
        w = problem.weights
        cov = sum(abs(n - problem.targets.coverage.get(c, 0.0) * n_total) for c, n in cell_n.items())
        dif = sum(abs(n - problem.targets.difficulty.get(b, 0.0) * n_total) for b, n in bucket_n.items())
        return w.coverage * cov + w.difficulty * dif

    before = penalty(cells, buckets)
    cells, buckets = dict(cells), dict(buckets)
    direct = 0.0
    for item, k in zip(problem.items, choice, strict=True):
        if k < 0:
            continue
        cand = item.candidates[k]
        direct += problem.weights.errors * cand.errors_fixed + problem.weights.distractors * cand.distractor_gain
        if cand.op is Op.REMOVE:
            direct -= problem.weights.removal * cand.success
            cells[item.cell] -= cand.success
            buckets[item.bucket] -= cand.success
        elif cand.op is Op.CALIBRATE:
            buckets[item.bucket] -= cand.success
            buckets[cand.to_bucket] = buckets.get(cand.to_bucket, 0.0) + cand.success
    for opt, y in zip(problem.new_options, counts, strict=True):
        if opt.cell is not None:
            cells[opt.cell] = cells.get(opt.cell, 0.0) + y * opt.success
        if opt.bucket is not None:
            buckets[opt.bucket] = buckets.get(opt.bucket, 0.0) + y * opt.success
    return direct + before - penalty(cells, buckets)


def brute_force(problem: Problem) -> float:
    best = 0.0
    item_choices = [range(-1, len(item.candidates)) for item in problem.items]
    option_counts = [range(0, (o.max_count or 0) + 1) for o in problem.new_options]
    for choice in itertools.product(*item_choices):
        spend = sum(problem.items[i].candidates[k].cost for i, k in enumerate(choice) if k >= 0)
        if spend > problem.budget:
            continue
        removals = sum(1 for i, k in enumerate(choice) if k >= 0 and problem.items[i].candidates[k].op is Op.REMOVE)
        if problem.min_size is not None and len(problem.items) - removals < problem.min_size:
            continue  # the size floor
        for counts in itertools.product(*option_counts):
            total = spend + sum(o.cost * y for o, y in zip(problem.new_options, counts, strict=True))
            if total <= problem.budget:
                best = max(best, _value(problem, choice, counts))
    return best


@pytest.mark.parametrize("seed", range(24))
def test_ilp_equals_brute_force(seed: int) -> None:
    problem = random_problem(seed, n_items=5 if seed % 2 else 6)
    expected = brute_force(problem)
    plan = solve(problem, mode="ilp", gap=1e-9)
    assert plan.objective == pytest.approx(expected, abs=1e-6), plan.summary()
    assert plan.forecast_tokens <= problem.budget + 1e-9
    if expected > 1e-9:
        assert plan.status == "optimal"


@pytest.mark.parametrize("mode", ["lp-round", "greedy", "random"])
def test_heuristics_never_beat_the_optimum(mode: str) -> None:
    for seed in range(8):
        problem = random_problem(100 + seed)
        best = brute_force(problem)
        assert solve(problem, mode=mode).objective <= best + 1e-6
