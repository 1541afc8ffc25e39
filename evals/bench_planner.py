"""Planner benchmark: plan time at 1k / 10k / 100k items x 6 operations, and the objective of every mode.

Instances are synthetic but shaped like profiled MMLU-style data: 8 domains x 3 skills with skewed
coverage, difficulty skewed easy, ~6% mean error probability, distractor scores around 0.65, item
lengths log-normal around 100 tokens; the budget is `--tokens-per-item` tokens per item (default 250,
enough to touch roughly one item in six). Targets are uniform. Timing is `solve()` only (building the
Problem from profiles is reported separately): wall seconds, and this process's CPU seconds, which is
what the wall time would be on an otherwise idle machine (the solve is single-threaded: HiGHS or CBC
with threads=1, in-process for HiGHS; with CBC, which runs as a subprocess, CPU time undercounts).

    python evals/bench_planner.py            # 1k, 10k, 100k
    python evals/bench_planner.py --quick    # 1k and 10k, fewer modes at 10k
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from refinelab.config import PLANNER_MODES
from refinelab.planner.ilp import SolverPolicy, solve
from refinelab.planner.problem import Problem, build_problem


def synthetic_profiles(n: int, seed: int = 0) -> list[dict]:
    """Per-item profile rows as the profiler would persist them."""
    rng = np.random.default_rng(seed)
    domains = [f"domain{i}" for i in range(8)]
    skills = ["recall", "reasoning", "calculation"]
    cell_share = rng.dirichlet(np.full(len(domains) * len(skills), 1.5))
    cell = rng.choice(len(cell_share), size=n, p=cell_share)
    difficulty = rng.beta(2.0, 4.0, size=n)
    p_error = rng.beta(0.4, 6.0, size=n)
    distractor = rng.beta(4.0, 2.0, size=n)
    length = rng.lognormal(np.log(100.0), 0.5, size=n)
    return [
        {"id": f"q{i}", "domain": domains[c // len(skills)], "skill": skills[c % len(skills)],
         "difficulty": float(d), "p_error": float(p), "distractor_score": float(s), "length_tokens": float(ln)}
        for i, (c, d, p, s, ln) in enumerate(zip(cell.tolist(), difficulty.tolist(), p_error.tolist(),
                                                 distractor.tolist(), length.tolist(), strict=True))
    ]


def instance(n: int, tokens_per_item: float, seed: int = 0) -> tuple[Problem, float]:
    rows = synthetic_profiles(n, seed)
    t0 = time.process_time()
    problem = build_problem(rows, budget=tokens_per_item * n)
    return problem, time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only (CI-sized)")
    parser.add_argument("--sizes", type=int, nargs="*", help="item counts (default 1000 10000 100000)")
    parser.add_argument("--tokens-per-item", type=float, default=250.0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--gap", type=float, default=1e-3)
    parser.add_argument("--json", action="store_true", help="print one JSON line per (size, mode)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1000, 10000] if args.quick else [1000, 10000, 100000])
    policy = SolverPolicy(time_limit_s=args.time_limit, gap=args.gap, marginal="none")

    header = f"{'items':>7} {'mode':>8} {'seconds':>8} {'cpu_s':>6} {'objective':>11} {'tokens':>12} {'budget':>12} {'edits':>7} {'new':>6} {'classes':>7} status"
    if not args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"# {os.cpu_count()} cores, load average {load:.1f}; wall time is inflated when load > cores")
        print(header)
    for n in sizes:
        problem, build_s = instance(n, args.tokens_per_item)
        if not args.json:
            print(f"# {n} items: {sum(len(i.candidates) for i in problem.items)} candidate edits, "
                  f"{len(problem.new_options)} new-item options, Problem built in {build_s:.2f} s CPU")
        for mode in PLANNER_MODES:
            t0, c0 = time.perf_counter(), time.process_time()
            plan = solve(problem, mode=mode, policy=policy)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert plan.forecast_tokens <= problem.budget + 1e-6, "over budget"
            row = {"items": n, "mode": mode, "seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "objective": round(plan.objective, 3),
                   "tokens": round(plan.forecast_tokens), "budget": round(problem.budget),
                   "edits": len(plan.assignments), "new": sum(x.count for x in plan.new_items),
                   "classes": plan.classes, "status": plan.status}
            if args.json:
                print(json.dumps(row))
            else:
                print(f"{n:>7} {mode:>8} {seconds:>8.2f} {cpu:>6.2f} {plan.objective:>11.2f} {plan.forecast_tokens:>12,.0f} "
                      f"{problem.budget:>12,.0f} {row['edits']:>7} {row['new']:>6} {plan.classes:>7} {plan.status}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
