"""How low cell JSD can go when some cells stay empty (no model call, no run).

The JSD eval measures coverage over the target's domain x skill cells. A new item counts where the
labeller puts it, and the writer's drafts for some skills seldom land there (reasoning: 13% on the stored
runs, `expand_landing.md`). This prints, for the target file, the best cell JSD reachable when every
cell of one skill (or of one domain) stays empty and every other cell is exactly on target, and how
large a share each such cell needs for a given reduction from a starting JSD.

    .venv/bin/python evals/jsd_floor.py --start 0.463 --tag jsd_floor
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import UNIFORM_TARGETS, table, write_results  # noqa: E402

from refinelab.metrics.divergence import jensen_shannon  # noqa: E402
from refinelab.metrics.targets import load_targets  # noqa: E402


def with_share(target: dict[str, float], cells: set[str], share: float) -> dict[str, float]:
    """`target` with each of `cells` at `share` and the rest scaled to fill what is left."""
    rest = 1.0 - share * len(cells)
    others = sum(p for c, p in target.items() if c not in cells)
    return {c: (share if c in cells else p * rest / others) for c, p in target.items()}


def needed_share(target: dict[str, float], cells: set[str], goal: float) -> float | None:
    """The smallest share each of `cells` needs for cell JSD <= `goal` (bisection), None when even the
    target's own share does not reach it."""
    low, high = 0.0, max(target[c] for c in cells)
    if jensen_shannon(with_share(target, cells, high), target) > goal:
        return None
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if jensen_shannon(with_share(target, cells, middle), target) > goal else (low, middle)
    return high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=str(UNIFORM_TARGETS))
    parser.add_argument("--start", type=float, default=0.463, help="the cell JSD before (the JSD eval's mix)")
    parser.add_argument("--reduction", type=float, default=0.9, help="the goal, as a share of --start")
    parser.add_argument("--tag", default="jsd_floor")
    args = parser.parse_args()
    targets = load_targets(args.targets)
    coverage = targets.coverage or {}
    target = {f"{d}|{s}": p for d, row in coverage.items() for s, p in row.items()}
    goal = args.start * (1 - args.reduction)
    groups = {f"skill {s}": {c for c in target if c.split("|")[1] == s} for s in dict.fromkeys(
        c.split("|")[1] for c in target)}
    groups |= {f"domain {d}": {c for c in target if c.split("|")[0] == d} for d in coverage}
    rows, result = [], {"targets": Path(args.targets).name, "start": args.start, "goal": goal, "groups": {}}
    for name, cells in groups.items():
        floor = jensen_shannon(with_share(target, cells, 0.0), target)
        share = needed_share(target, cells, goal)
        result["groups"][name] = {"cells": len(cells), "floor": round(floor, 4), "needed_share": share}
        rows.append([name, len(cells), f"{floor:.3f}", f"{1 - floor / args.start:.1%}",
                     f"{share:.2%}" if share is not None else "-"])
    lines = [f"# Cell JSD with cells left empty ({args.tag})", "",
             f"Targets `{result['targets']}` ({len(target)} cells). Each row: every cell of the group empty and "
             f"every other cell exactly on target. From a start of {args.start} the goal of "
             f"−{args.reduction:.0%} is cell JSD {goal:.4f}; the last column is the share each cell of the "
             "group then needs (the others on target).", "",
             table(["left empty", "cells", "best cell JSD", "best reduction", f"share each needs for −{args.reduction:.0%}"],
                   rows)]
    write_results(args.tag, result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
