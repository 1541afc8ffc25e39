"""ilp vs lp-round vs greedy vs random at equal budgets: realised quality gain per token.

Each planner mode drives a real refinement run on the same skewed MMLU mix as eval_jsd_curve.py, with
the same budget, targets, operations and model; profiling labels are shared through the response
cache, so the modes differ only in what the planner bought and what that edit really cost and did.

Realised quality gain (higher is better) = drop in coverage JSD + drop in difficulty JSD + drop in
expected errors per item (from report.json's before/after metrics). It is reported per 1,000 tokens
really spent (ledger) and per 1,000 tokens the plan forecast (removals cost no model call, so a plan
of removals can gain with zero real spend). The planner's own objective (gain it forecast) is shown
next to it. bench_planner.py compares the modes' objectives on large synthetic instances; this eval
checks that the ranking survives real edits on a small set.

    python evals/eval_modes.py --quick
    python evals/eval_modes.py --n 80 --budget 30000 --modes ilp lp-round greedy random
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    HEAVY,
    HEAVY_SHARE,
    UNIFORM_TARGETS,
    add_common_args,
    deadline_seconds,
    log,
    model_label,
    num,
    skewed_mix,
    table,
    write_results,
)
from eval_jsd_curve import profile_once, run_budget  # noqa: E402

from refinelab.config import PLANNER_MODES  # noqa: E402
from refinelab.operations import OPERATION_NAMES  # noqa: E402

OPERATIONS = list(OPERATION_NAMES)


def gain(row: dict[str, Any]) -> dict[str, float | None]:
    """Realised quality gain and its parts from one run's before/after metrics."""
    parts: dict[str, float | None] = {}
    for name in ("coverage_jsd", "difficulty_jsd"):
        before, after = row[f"{name}_before"], row[f"{name}_after"]
        parts[name] = None if before is None or after is None else before - after
    eb, ea = row["expected_errors_before"], row["expected_errors_after"]
    parts["errors_per_item"] = eb / max(1, row["items_before"]) - ea / max(1, row["items_after"])
    parts["total"] = sum(v for v in parts.values() if v is not None)
    return parts


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for r in result["runs"]:
        g = r["gain"]
        rows.append([r["mode"], f"{r['spent']:,}", f"{r['forecast_tokens']:,.0f}", num(r["objective"], 2),
                     num(g["coverage_jsd"]), num(g["difficulty_jsd"]), num(g["errors_per_item"]), num(g["total"]),
                     num(r["gain_per_1k_spent"]), num(r["gain_per_1k_forecast"]),
                     ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())) or "—",
                     f"{r['seconds']:.0f}" + (" (deadline)" if r["deadline_hit"] else "")])
    return "\n".join([
        f"# Planner modes at equal budget: realised gain per token ({result['tag']})", "",
        f"{result['n']} skewed MMLU items (as eval_jsd_curve); budget {result['budget']:,} tokens per mode; "
        f"model: {result['model']}; operations: {', '.join(result['operations'])}; rounds {result['rounds']}; "
        f"pilot per op {result['pilot']}; {result['elapsed_s']} s.", "",
        table(["mode", "spent", "forecast", "plan objective", "Δcov JSD", "Δdiff JSD", "Δerr/item", "gain",
               "gain/1k spent", "gain/1k forecast", "edits", "s"], rows), "",
        "gain = Δcoverage JSD + Δdifficulty JSD + Δexpected errors per item (positive = better). Removals cost "
        "no model call, hence the forecast column. On a set this small one edit more or less moves the "
        "figures; bench_planner.py has the large-instance comparison of the objectives.",
    ])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=600)
    parser.add_argument("--n", type=int, default=None, help="items (quick 20, full 80)")
    parser.add_argument("--budget", type=int, default=None, help="tokens per mode (quick 3000, full 30000)")
    parser.add_argument("--modes", nargs="*", default=list(PLANNER_MODES), choices=PLANNER_MODES)
    parser.add_argument("--operations", nargs="*", default=OPERATIONS, choices=OPERATION_NAMES)
    parser.add_argument("--targets", default=str(UNIFORM_TARGETS))
    parser.add_argument("--heavy", nargs=2, default=list(HEAVY))
    parser.add_argument("--heavy-share", type=float, default=HEAVY_SHARE)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--pilot-per-op", type=int, default=None)
    args = parser.parse_args(argv)
    args.tag = args.tag or ("modes_quick" if args.quick else "modes")
    n = args.n or (20 if args.quick else 80)
    budget = args.budget or (3000 if args.quick else 30000)
    rounds = args.rounds or (1 if args.quick else 2)
    pilot = args.pilot_per_op if args.pilot_per_op is not None else (0 if args.quick else 2)
    dataset = skewed_mix(n, args.heavy, args.heavy_share, args.seed)
    total = deadline_seconds(args)
    started = time.monotonic()
    args.mode = "ilp"
    profiling = profile_once(dataset, args, None if total is None else total / 3)
    log(f"modes: profiling spent {profiling['spent']} tokens in {profiling['seconds']} s (then cached)")
    runs = []
    for k, mode in enumerate(args.modes):
        left = None if total is None else max(30.0, (total - (time.monotonic() - started)) / (len(args.modes) - k))
        args.mode = mode
        log(f"modes: {mode} at {budget} tokens, deadline {left and round(left)} s")
        row = run_budget(dataset, budget, args, rounds, pilot, left, profiling["tokens"])
        plan = (row.get("plans") or [{}])[0]
        row.update(mode=mode, objective=plan.get("objective"), forecast_tokens=sum(p.get("forecast_tokens", 0.0)
                                                                                   for p in row.get("plans") or []))
        row["gain"] = gain(row)
        total_gain = row["gain"]["total"]
        row["gain_per_1k_spent"] = 1000 * total_gain / row["spent"] if row["spent"] else None
        row["gain_per_1k_forecast"] = 1000 * total_gain / row["forecast_tokens"] if row["forecast_tokens"] else None
        log(f"  gain {num(total_gain)}, spent {row['spent']}, forecast {row['forecast_tokens']:.0f}")
        runs.append(row)
    result = {
        "tag": args.tag, "model": model_label(args), "n": n, "budget": budget, "operations": args.operations,
        "rounds": rounds, "pilot": pilot, "profiling": profiling, "runs": runs, "elapsed_s": round(time.monotonic() - started, 1),
        "headline": {r["mode"]: {"gain": r["gain"]["total"], "gain_per_1k_spent": r["gain_per_1k_spent"],
                                 "gain_per_1k_forecast": r["gain_per_1k_forecast"]} for r in runs},
    }
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
