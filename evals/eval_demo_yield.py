"""What a demo-sized run buys: committed edits by operation, removals and budget used, per MMLU slice.

`make demo` refines 30 MMLU items under 40,000 tokens; what a user sees is how many edits it commits and
of which kind. This eval runs that same command (`refinelab refine ... --rag-corpus wikipedia:mmlu_redux
--distractors`) on one or more slices and reads each run's report.json. Run it from two checkouts with one
response cache to compare two versions of the planner on the same items: the second run replays the
first's profile (replayed calls count against its budget like paid ones, so both plan from the same
budget), and `--label` names each version in the results.

  .venv/bin/python evals/eval_demo_yield.py --tag demo_yield_new --label new
  PYTHONPATH=/path/to/old/checkout .venv/bin/python evals/eval_demo_yield.py --tag demo_yield_old --label old
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import log, table, write_results

import refinelab
from refinelab.operations import Op
from refinelab.run_layout import REPORT_JSON

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REFINELAB_DATA", ROOT.parent / "shared" / "data"))
DEMO_SLICE = "astronomy,virology,college_chemistry,high_school_world_history,econometrics"


def package_commit() -> str:
    """The commit of the refinelab package this run imported (another checkout's under PYTHONPATH)."""
    where = Path(refinelab.__file__).resolve().parent
    done = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "?"


def run_slice(subjects: str, args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    """One `refinelab refine` of the slice, as `make demo` runs it; the report's figures."""
    command = [sys.executable, "-m", "refinelab", "refine", str(DATA / "mmlu" / "test"), "--subjects", subjects,
               "--limit", str(args.limit), "--budget", str(args.budget), "--run-id", run_id,
               "--runs-dir", args.runs_dir, "--rag-corpus", "wikipedia:mmlu_redux", "--distractors"]
    env = {**os.environ, "REFINELAB_CACHE_PATH": args.cache_path}
    started = time.monotonic()
    # from the imported package's checkout: `-m` puts the working folder first on the path
    checkout = Path(refinelab.__file__).resolve().parents[1]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"refine failed on {subjects} (exit {done.returncode}): {done.stderr[-2000:]}")
    report = json.loads((Path(args.runs_dir) / run_id / REPORT_JSON).read_text())
    outcomes = Counter(report["edits"]["outcomes"])
    committed = {k.split(":")[0]: v for k, v in outcomes.items() if k.endswith(":committed")}
    ledger = report["ledger"]
    return {
        "subjects": subjects, "run_id": run_id, "elapsed_s": round(time.monotonic() - started, 1),
        "committed": committed, "committed_total": sum(committed.values()),
        "gave_up": {k.split(":")[0]: v for k, v in outcomes.items() if k.endswith(":gave_up")},
        "removals": committed.get(Op.REMOVE.value, 0), "items_by_status": report["items_by_status"],
        "new_items": report["new_items"], "output_items": report["output_items"],
        "budget_used": (ledger["spent"] + ledger.get("replayed", 0)) / ledger["cap"],
        "spent_live": ledger["spent"], "replayed": ledger.get("replayed", 0),
        "plans": [{"round": p.get("round"), "by_op": {op: v["count"] for op, v in p["by_op"].items()}}
                  for p in report["plans"]],
        "before": {k: report["metrics_before"][k] for k in ("coverage_jsd", "difficulty_jsd", "expected_errors")},
        "after": {k: report["metrics_after"][k] for k in ("coverage_jsd", "difficulty_jsd", "expected_errors")},
    }


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for r in result["slices"]:
        rows.append([r["subjects"], ", ".join(f"{op} {n}" for op, n in sorted(r["committed"].items())) or "none",
                     ", ".join(f"{op} {n}" for op, n in sorted(r["gave_up"].items())) or "none", r["removals"],
                     f"{r['budget_used']:.1%}", f"{r['spent_live']:,} live + {r['replayed']:,} replayed",
                     "; ".join(f"r{p['round']}: " + ", ".join(f"{op} {n}" for op, n in p["by_op"].items())
                               for p in r["plans"]),
                     f"{r['before']['expected_errors']:.2f} → {r['after']['expected_errors']:.2f}", r["elapsed_s"]])
    return "\n".join([
        f"# Demo-sized runs: what the budget bought ({result['tag']}, version {result['label']}, refinelab "
        f"{result['package_commit']})\n",
        f"{result['limit']} MMLU test items per slice, {result['budget']:,}-token budget, embedded model, "
        "`--rag-corpus wikipedia:mmlu_redux --distractors` (the `make demo` command).\n",
        table(["slice", "committed", "gave up", "removals", "budget used", "tokens", "planned (by round)",
               "expected errors", "s"], rows),
    ])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", default=DEMO_SLICE, help="';'-separated slices, each comma-separated subjects")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--budget", type=int, default=40_000)
    parser.add_argument("--runs-dir", default="runs/evals/yield")
    parser.add_argument("--cache-path", default="runs/evals/yield/cache.sqlite")
    parser.add_argument("--label", default="", help="names the code version in the results")
    parser.add_argument("--tag", default="demo_yield")
    args = parser.parse_args(argv)
    args.runs_dir = str(Path(args.runs_dir).resolve())  # the refine subprocess runs in the package's checkout
    args.cache_path = str(Path(args.cache_path).resolve())
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    slices = [s.strip() for s in args.slices.split(";") if s.strip()]
    result: dict[str, Any] = {"tag": args.tag, "label": args.label, "package_commit": package_commit(),
                              "limit": args.limit, "budget": args.budget, "slices": []}
    for n, subjects in enumerate(slices):
        log(f"slice {n + 1}/{len(slices)}: {subjects}")
        row = run_slice(subjects, args, f"{args.tag}-{n}-{time.strftime('%H%M%S')}")
        log(f"  committed {row['committed']} gave up {row['gave_up']} budget used {row['budget_used']:.1%}")
        result["slices"].append(row)
    write_results(args.tag, result, markdown(result))
    return result


if __name__ == "__main__":
    main()
