"""Building a Problem from plain profile data."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from refinelab.operations import Op
from refinelab.planner.catalogue import ApplicabilityPolicy, Catalogue
from refinelab.planner.problem import (
    CandidateOp,
    DifficultyBuckets,
    Item,
    PlanTargets,
    Problem,
    build_problem,
)
from refinelab.schema import Cell


def test_build_problem_from_profiles() -> None:
    rows = [
        {"id": "a", "domain": "math", "skill": "calc", "difficulty": 0.1, "p_error": 0.4,
         "distractor_score": 0.3, "length_chars": 400},
        {"id": "b", "domain": "math", "skill": "calc", "difficulty": 0.5, "p_error": 0.0},
        {"id": "c", "cell": "law|recall", "bucket": "hard", "length_tokens": 50},
    ]
    problem = build_problem(rows, budget=10_000)
    a, b, c = problem.items
    assert a.cell == Cell.of("math", "calc").key and a.bucket == "easy" and a.length == 100
    assert b.bucket == "medium" and c.cell == "law|recall"
    ops_a = {x.op for x in a.candidates}
    # p_error 0.4 is below the defect threshold: fixable, not removable (deletion is the exception)
    assert ops_a == {Op.FIX, Op.REWRITE_DISTRACTORS, Op.CALIBRATE}
    assert {x.to_bucket for x in a.candidates if x.op is Op.CALIBRATE} == {"medium"}
    assert {x.to_bucket for x in b.candidates if x.op is Op.CALIBRATE} == {"easy", "hard"}
    assert Op.FIX not in {x.op for x in b.candidates}
    fix = next(x for x in a.candidates if x.op is Op.FIX)
    assert fix.errors_fixed == pytest.approx(0.4 * fix.success)
    # default targets: uniform over present cells and over buckets
    assert problem.targets.coverage == pytest.approx({"law|recall": 0.5, "math|calc": 0.5})
    assert sum(problem.targets.difficulty.values()) == pytest.approx(1)
    assert {o.op for o in problem.new_options} == {Op.EXPAND, Op.GENERATE}
    assert problem.target_total == 3


def test_no_rewrite_is_offered_for_options_that_refer_to_each_other() -> None:
    """The refiner refuses to replace such distractors; a plan that bought the rewrite wasted an edit on it
    (two of the demo's four pilot edits, before)."""
    rows = [{"id": "a", "distractor_score": 0.3, "distractors_replaceable": False},
            {"id": "b", "distractor_score": 0.3}]
    a, b = build_problem(rows, budget=10_000).items
    assert Op.REWRITE_DISTRACTORS not in {x.op for x in a.candidates}
    assert Op.REWRITE_DISTRACTORS in {x.op for x in b.candidates}


def test_targets_are_normalised_and_can_add_cells() -> None:
    problem = build_problem([{"id": "a", "domain": "x", "skill": "y"}], budget=1,
                            targets=PlanTargets(coverage={"x|y": 1, "new|cell": 3}, total=10))
    assert problem.targets.coverage["new|cell"] == pytest.approx(0.75)
    assert any(o.cell == "new|cell" for o in problem.new_options)
    assert problem.target_total == 10


def test_custom_buckets_and_policy() -> None:
    buckets = DifficultyBuckets(names=["lo", "hi"], edges=[0.5])
    cat = Catalogue(applicability=ApplicabilityPolicy(fix_min_p_error=0.5, calibrate_max_steps=1))
    problem = build_problem([{"id": "a", "difficulty": 0.9, "p_error": 0.3}], budget=1, catalogue=cat,
                            buckets=buckets)
    assert problem.items[0].bucket == "hi"
    assert Op.FIX not in {c.op for c in problem.items[0].candidates}
    assert problem.buckets[:2] == ["lo", "hi"]


def test_validation() -> None:
    with pytest.raises(ValidationError):
        CandidateOp(op=Op.CALIBRATE, cost=1, success=0.5)
    with pytest.raises(ValidationError):
        CandidateOp(op=Op.EXPAND, cost=1, success=0.5)
    with pytest.raises(ValidationError):
        Problem(items=[Item(id="a", cell="c", bucket="b"), Item(id="a", cell="c", bucket="b")], budget=1)
    with pytest.raises(ValidationError):
        PlanTargets(coverage={"a": -1})
    with pytest.raises(ValidationError):
        DifficultyBuckets(names=["a", "b"], edges=[0.2, 0.4])


def test_targets_from_the_resolved_target_file() -> None:
    from refinelab.metrics.targets import Targets as Resolved
    from refinelab.planner.problem import targets_from_resolved

    resolved = Resolved(coverage={"STEM": {"recall": 0.25, "reasoning": 0.75}}, difficulty={"easy": 0.2, "hard": 0.8},
                        buckets=["easy", "hard"], thresholds=[0.5])
    targets, buckets = targets_from_resolved(resolved)
    assert targets.coverage == pytest.approx({"STEM|recall": 0.25, "STEM|reasoning": 0.75})
    assert buckets.names == ["easy", "hard"] and buckets.bucket(0.7) == "hard"
    problem = build_problem([{"id": "a", "domain": "STEM", "skill": "recall", "difficulty": 0.9}], budget=1e4,
                            targets=targets, buckets=buckets)
    assert problem.items[0].bucket == "hard"


def test_trusted_construction_matches_validated_models() -> None:
    """The Problem build skips re-validation for speed; what it builds must equal validated models."""
    from refinelab.planner.problem import CandidateOp, Item, build_problem

    problem = build_problem([{"id": "a", "domain": "d", "skill": "s", "difficulty": 0.5, "p_error": 0.6,
                              "distractor_score": 0.2, "length_tokens": 80}], budget=1000)
    item = problem.items[0]
    assert item.candidates and item == Item.model_validate(item.model_dump())
    for candidate in item.candidates:
        assert candidate == CandidateOp.model_validate(candidate.model_dump())
        assert candidate.model_fields_set == set(CandidateOp.model_fields)
    assert problem.model_dump() == type(problem).model_validate(problem.model_dump()).model_dump()


def test_an_expand_into_a_cell_that_keeps_failing_is_priced_as_unlikely() -> None:
    """Per-cell evidence: three expands written for law|recall all failed their cell measurement, two for
    new|cell landed; the planner prices each cell's next expand by what that cell has shown."""
    from refinelab.planner.problem import target_success

    targets = PlanTargets(coverage={"x|y": 1, "law|recall": 1, "new|cell": 1}, total=10)
    problem = build_problem([{"id": "a", "domain": "x", "skill": "y"}], budget=1, targets=targets,
                            cell_outcomes={"law|recall": (0, 3), "new|cell": (2, 2)})
    success = {o.cell: o.success for o in problem.new_options if o.op is Op.EXPAND}
    prior = success["x|y"]
    assert success["law|recall"] == pytest.approx(target_success(prior, (0, 3))) and success["law|recall"] < prior / 2
    assert prior < success["new|cell"] <= 1.0
    assert target_success(prior, None) == prior


def test_a_generate_into_a_bucket_that_keeps_failing_is_priced_as_unlikely() -> None:
    """Per-bucket evidence, as per cell: four generates written for "hard" all measured elsewhere; the
    planner prices the next one by that, and the other buckets at the operation's rate."""
    from refinelab.planner.problem import target_success

    targets = PlanTargets(difficulty={"easy": 1, "medium": 1, "hard": 1}, total=10)
    problem = build_problem([{"id": "a", "domain": "x", "skill": "y", "difficulty": 0.1}], budget=1,
                            targets=targets, bucket_outcomes={"hard": (0, 4)})
    success = {o.bucket: o.success for o in problem.new_options if o.op is Op.GENERATE}
    prior = success["easy"]
    assert success["medium"] == prior and success["hard"] == pytest.approx(target_success(prior, (0, 4)))
    assert success["hard"] < prior / 2


def test_a_round_tries_no_more_new_items_for_a_target_than_it_lacks() -> None:
    """Ten items, all easy, uniform thirds: hard lacks ceil(10/3) = 4 items. At an honest success rate of
    0.1 the expected-value plan would buy ~34 attempts for hard with this budget; one round tries 4."""
    from refinelab.planner.ilp import solve
    from refinelab.planner.problem import attempts_per_round

    assert attempts_per_round(1 / 3, 10, 0) == 4 and attempts_per_round(0.5, 10, 5) == 0
    catalogue = Catalogue(applicability=ApplicabilityPolicy(enabled=frozenset({Op.GENERATE})))
    assert catalogue.success(Op.GENERATE) <= 0.15  # the measured prior
    profiles = [{"id": f"i{k}", "domain": "x", "skill": "y", "difficulty": 0.1} for k in range(10)]
    problem = build_problem(profiles, budget=100_000, catalogue=catalogue,
                            targets=PlanTargets(difficulty={"easy": 1, "medium": 1, "hard": 1}))
    caps = {o.bucket: o.max_count for o in problem.new_options}
    assert caps == {"easy": 0, "medium": 4, "hard": 4}
    plan = solve(problem, mode="ilp")
    bought = {n.bucket: n.count for n in plan.new_items}
    assert bought.get("hard", 0) == 4 and bought.get("medium", 0) == 4, bought
