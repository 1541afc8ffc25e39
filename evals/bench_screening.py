"""Screening throughput: items per minute and tokens per item for the two-order logprob panel.

Each item costs one one-token request per member per option order; the bench screens `--n` MMLU test
items with a cold response cache through `api.screening.ask_panel` (the path `refinelab screen` takes)
and prints, as its last line, one JSON object: {"items_per_min", "tokens_per_item", ...}. The load
average at start and end is printed too: on a shared machine the figure is only as quiet as the machine.

  .venv/bin/python evals/bench_screening.py --n 60          # evals/results/bench_screening.txt
  .venv/bin/python evals/bench_screening.py --n 60 --shots 5 --subjects virology,econometrics,astronomy,\
      college_chemistry,marketing,philosophy                 # five solved examples per probe (panel_shots)

With `--shots` the items are loaded into the run's store first, as `screen` does, so each subject's first
items are the examples; pick subjects with several items each (`--subjects`), or most subjects of a 60-item
spread have no other item to show.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import git_commit

from refinelab.agents.options import RunOptions
from refinelab.api.context import open_run_context
from refinelab.api.screening import ask_panel
from refinelab.config import load_settings
from refinelab.io import load_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu" / "test"


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--members", default="qwen2.5-coder-1.5b")
    parser.add_argument("--orders", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--shots", type=int, default=0, help="RunOptions.panel_shots")
    parser.add_argument("--subjects", default=None, help="comma-separated MMLU subjects (default: all)")
    args = parser.parse_args()
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    subjects = [s.strip() for s in args.subjects.split(",")] if args.subjects else None
    items = list(load_dataset(DATA, on_invalid="quarantine").filter(subjects, limit=args.n).items)
    work = Path(tempfile.mkdtemp(prefix="bench-screening-"))
    settings = load_settings(overrides={"use_cache": False, "roles": {"judge": {"concurrency": args.concurrency}}})
    ctx = open_run_context(work, settings=settings,
                           options=RunOptions(panel=members, panel_orders=args.orders, panel_shots=args.shots))
    ctx.store.load_items(items)
    from refinelab.agents.panel import member_client

    for m in members:  # start the servers before the clock
        member_client(ctx, m).chat_model()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    evidence = ask_panel(ctx, items, members)
    wall = time.monotonic() - started
    result = {"items_per_min": round(len(evidence) / wall * 60, 2), "tokens_per_item": round(ctx.ledger.spent / max(1, len(evidence)), 1),
              "items": len(evidence), "wall_s": round(wall, 1), "members": members, "orders": args.orders,
              "shots": args.shots, "subjects": subjects,
              "calls": len(evidence) * len(members) * args.orders, "load_before": round(load_before, 2),
              "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(), "commit": git_commit(),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
