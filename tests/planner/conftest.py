"""Small random planning instances shared by the planner tests."""

from __future__ import annotations

import random

from refinelab.operations import Op
from refinelab.planner.problem import CandidateOp, Item, NewItemOption, PlanTargets, Problem, Weights

BUCKETS = ["easy", "medium", "hard"]


def random_problem(seed: int, n_items: int = 5, n_options: int = 2, max_count: int = 2,
                   budget: float | None = None, duplicates: bool = True) -> Problem:
    """A tiny instance with every kind of edit; some items are exact copies (exercises merging)."""
    rng = random.Random(seed)
    cells = ["A|x", "B|x", "C|y"]
    items: list[Item] = []
    for i in range(n_items):
        if duplicates and items and rng.random() < 0.3:
            twin = rng.choice(items)
            items.append(twin.model_copy(update={"id": f"i{i}"}))
            continue
        bucket = rng.choice(BUCKETS)
        p = round(rng.random() * 0.6, 2)
        d = round(rng.random(), 2)
        cands: list[CandidateOp] = []
        for op in rng.sample([Op.REMOVE, Op.FIX, Op.REWRITE_DISTRACTORS, Op.CALIBRATE], rng.randint(0, 3)):
            cost = float(rng.randint(1, 10))
            s = round(rng.uniform(0.3, 1.0), 2)
            if op is Op.CALIBRATE:
                here = BUCKETS.index(bucket)
                to = BUCKETS[here + 1] if here + 1 < len(BUCKETS) else BUCKETS[here - 1]
                cands.append(CandidateOp(op=op, cost=cost, success=s, to_bucket=to))
            elif op is Op.FIX:
                cands.append(CandidateOp(op=op, cost=cost, success=s, errors_fixed=p * s))
            elif op is Op.REWRITE_DISTRACTORS:
                cands.append(CandidateOp(op=op, cost=cost, success=s, distractor_gain=s * max(0.0, 0.9 - d)))
            else:
                cands.append(CandidateOp(op=op, cost=cost, success=s, errors_fixed=p * s))
        items.append(Item(id=f"i{i}", cell=rng.choice(cells), bucket=bucket, p_error=p, distractor_score=d,
                          length=100, candidates=cands))
    options: list[NewItemOption] = []
    for _ in range(n_options):
        kind = rng.choice([Op.EXPAND, Op.GENERATE])
        options.append(NewItemOption(
            op=kind, cell=rng.choice(cells) if kind is Op.EXPAND else None,
            bucket=rng.choice(BUCKETS) if kind is Op.GENERATE else None,
            cost=float(rng.randint(2, 9)), success=round(rng.uniform(0.4, 1.0), 2), max_count=max_count))
    targets = PlanTargets(coverage={c: rng.random() + 0.05 for c in cells},
                      difficulty={b: rng.random() + 0.05 for b in BUCKETS},
                      total=rng.choice([None, n_items + 2, max(1, n_items - 2)]))
    weights = Weights(coverage=rng.choice([0.5, 1.0, 2.0]), difficulty=rng.choice([0.5, 1.0]),
                      errors=rng.choice([1.0, 3.0]), distractors=rng.choice([0.5, 2.0]))
    weights.removal = rng.choice([0.0, 0.3])
    return Problem(items=items, new_options=options, targets=targets, weights=weights,
                   budget=float(rng.randint(0, 30)) if budget is None else budget, buckets=BUCKETS,
                   min_size=rng.choice([None, max(0, n_items - 1), n_items]))
