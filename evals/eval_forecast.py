"""Forecast vs actual: does a run spend what `refinelab plan --dry-run` said it would?

1. Dry run: profile an MMLU slice into a plan folder and plan for the budget (catalogue priors, no pilot,
   no edits): forecast tokens of edits, and overall (profiling + edits).
2. Real run: `refinelab.refine` on the same slice and settings (one round, the pilot on), on the
   embedded model, as a user would run it after the dry run: the profile comes from the response cache
   (free), so the run gets the budget minus what the dry run's profiling cost, and plans against the same
   tokens as the dry run did.
3. Ratios actual / forecast: the refine phase (ledger nodes pilot + refine + validate against the dry-run
   edit forecast) and overall (dry-run profiling + the real run's ledger against profiling + edit
   forecast); plus, per operation, tokens per finished edit against the prior's per-edit forecast, and the
   in-run round-1 plan's own forecast (made after the pilot) against the edits it bought.

A private response cache in the work folder keeps other runs' answers out. Validation is the answer
check with lexical dedup (no sandbox or retrieval index: keeps the eval modest on 2 cores); the planner
sees the same costs either way.

    .venv/bin/python evals/eval_forecast.py [--n 30] [--budget 40000] [--model qwen2.5-coder-0.5b]
        [--subjects a,b,c] [--pilot-per-op 5] [--work DIR]

Results JSON goes to evals/results/forecast-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from refinelab.run_layout import CHANGES

DATA = Path(os.environ.get("REFINELAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"
SUBJECTS = "high_school_biology,high_school_world_history,elementary_mathematics"
OPTIONS: dict[str, Any] = {"validators": [], "dedup": "lexical", "rounds": 1}  # RunOptions: answer check only
EDIT_NODES = ("pilot", "refine", "validate")


def _ratio(actual: float, forecast: float) -> float | None:
    return round(actual / forecast, 3) if forecast > 0 else None


def per_op(dry: dict[str, Any], run_dir: Path, ledger: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per operation: prior forecast per edit vs ledger tokens per finished edit (pilot and rounds)."""
    edits: Counter[str] = Counter()
    for line in (run_dir / CHANGES).read_text().splitlines():
        row = json.loads(line)
        if row["attempt"] == 0:
            edits[row["operation"]] += 1
    rows: dict[str, dict[str, Any]] = {}
    for op in sorted(set(edits) | set(dry["by_op"])):
        planned = dry["by_op"].get(op, {"count": 0, "tokens": 0.0})
        forecast_each = planned["tokens"] / planned["count"] if planned["count"] else None
        spent = ledger["by_operation"].get(op, {}).get("tokens", 0)
        actual_each = spent / edits[op] if edits[op] else None
        rows[op] = {"forecast_edits": planned["count"], "forecast_tokens_each": forecast_each,
                    "actual_edits": edits[op], "actual_tokens": spent, "actual_tokens_each": actual_each,
                    "ratio_each": _ratio(actual_each, forecast_each) if actual_each and forecast_each else None}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--budget", type=int, default=40_000)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--subjects", default=SUBJECTS)
    parser.add_argument("--pilot-per-op", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None, help="folder for the plan and run folders")
    args = parser.parse_args()

    from refinelab.agents.options import RunOptions
    from refinelab.api import plan, refine
    from refinelab.config import ModelSpec, Roles, load_settings
    from refinelab.io import load_dataset

    work = args.work or Path(tempfile.mkdtemp(prefix="refinelab-forecast-"))
    dataset = load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine").filter(args.subjects.split(","), args.n)
    roles = Roles(judge=ModelSpec(model=args.model), writer=ModelSpec(model=args.model, temperature=0.7,
                                                                        max_tokens=500),
                  validator=ModelSpec(model=args.model))
    settings = load_settings(overrides={"runs_dir": str(work / "runs"), "cache_path": str(work / "cache.sqlite")})
    settings = settings.model_copy(update={"roles": roles})

    started = time.monotonic()
    dry = plan(dataset, budget=args.budget, folder=work / "plan", dry_run=True, settings=settings,
               options=RunOptions(**OPTIONS))
    dry_s = time.monotonic() - started
    print(f"dry run ({dry_s:.0f} s): forecast {dry['forecast']['refine_tokens']:,.0f} edit tokens, "
          f"{dry['forecast']['overall_tokens']:,.0f} overall; plan {json.dumps(dry['by_op'])}", flush=True)

    started = time.monotonic()
    profile_tokens = int(dry["forecast"]["profile_tokens"])
    result = refine(dataset, budget=max(0, args.budget - profile_tokens), settings=settings,
                    options=RunOptions(**OPTIONS, pilot_per_op=args.pilot_per_op))
    run_s = time.monotonic() - started
    report = result.report
    ledger = report["ledger"]
    by_node = {k: v["tokens"] for k, v in ledger["by_node"].items()}
    actual_edits = sum(by_node.get(n, 0) for n in EDIT_NODES)
    in_run_plan = (report.get("plans") or [{}])[0]
    in_run_spent = sum(by_node.get(n, 0) for n in ("refine", "validate"))
    pilot = json.loads(json.dumps(ledger["by_node"].get("pilot", {})))
    summary = {
        "model": args.model, "items": len(dataset), "subjects": args.subjects, "budget": args.budget,
        "pilot_per_op": args.pilot_per_op, "work": str(work), "run_dir": str(result.run_dir),
        "seconds": {"dry_run": round(dry_s, 1), "real_run": round(run_s, 1)},
        "forecast": dry["forecast"], "dry_plan": {"by_op": dry["by_op"], "status": dry["status"],
                                                   "metrics": dry["metrics"]},
        "actual": {"overall": profile_tokens + ledger["spent"], "real_run_ledger": ledger["spent"],
                   "edits": actual_edits, "by_node": by_node, "pilot": pilot,
                   "stop_reason": report.get("stop_reason"), "outcomes": report["edits"]["outcomes"]},
        "ratio_refine": _ratio(actual_edits, dry["forecast"]["refine_tokens"]),
        "ratio_overall": _ratio(profile_tokens + ledger["spent"], dry["forecast"]["overall_tokens"]),
        "measure_tokens": by_node.get("profile", 0),  # profiling new/edited items after the round
        "in_run_plan": {"forecast_tokens": in_run_plan.get("forecast_tokens"), "spent": in_run_spent,
                        "ratio": _ratio(in_run_spent, in_run_plan.get("forecast_tokens") or 0.0),
                        "by_op": in_run_plan.get("by_op")},
        "per_op": per_op(dry, result.run_dir, ledger),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"forecast-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"actual: {profile_tokens + ledger['spent']:,} overall (profile {profile_tokens:,} in the dry run, "
          f"then {by_node}); stop: {report.get('stop_reason')}")
    print(f"ratio actual/forecast: refine phase {summary['ratio_refine']}, overall {summary['ratio_overall']}; "
          f"in-run round-1 plan {summary['in_run_plan']['ratio']}")
    for op, row in summary["per_op"].items():
        print(f"  {op}: forecast {row['forecast_edits']} x {row['forecast_tokens_each'] or 0:,.0f}, "
              f"actual {row['actual_edits']} x {row['actual_tokens_each'] or 0:,.0f} (ratio {row['ratio_each']})")
    print(f"results: {path}")


if __name__ == "__main__":
    sys.exit(main())
