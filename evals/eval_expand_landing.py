"""Where expands land, by the skill they were written for, and what aiming by it would buy (no model call).

An expand is written for one domain x skill cell; the run's labeller then measures the new item, which is
kept when it lands in that cell or in another cell still below its target share (agents/validation/
measured.py, `place_new_item`). The planner prices an expand into a cell by that cell's committed/finished
record, and adds a committed expand to the cell it was written for. This script reads the stored run
folders of JSD-curve results (`evals/results/TAG.json`, their `runs/evals/...` folders) and reports:

- the landing table: per skill written for, expands finished, refused, and kept by the skill measured
  (the domain never moved: it comes from the subject map);
- a simulation on the first result's starting coverage: the same number of expands aimed greedily at
  the emptiest cell as if each landed where it was aimed (what the planner assumes), against aimed at
  whichever cell lowers the expected cell JSD most under the measured table. The gap is what a planner
  aiming by the landing table could gain.

    .venv/bin/python evals/eval_expand_landing.py --tags jsd_curve_final_50k,jsd_curve_100k,...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, UNIFORM_TARGETS, expand_landings, log, reduction, table, write_results  # noqa: E402

from refinelab.metrics.divergence import jensen_shannon  # noqa: E402
from refinelab.metrics.targets import load_targets  # noqa: E402
from refinelab.run_layout import REFINED

REFUSED = "(refused)"


def cut_by_budget(change: dict[str, Any]) -> bool:
    """An expand the budget cut short measured nothing: left out of the table and of the count, as the
    planner leaves it out of a cell's record (`planner_agent.new_item_outcomes`)."""
    return change.get("outcome") != "committed" and "budget exhausted" in str(change.get("reason") or "")


def landing_table(run_dirs: list[Path]) -> dict[str, Counter[str]]:
    """skill written for -> Counter of the skill measured for each kept expand, and REFUSED for the rest."""
    landed: dict[str, Counter[str]] = defaultdict(Counter)
    for run_dir in run_dirs:
        for change, cell in expand_landings(run_dir):
            if cut_by_budget(change):
                continue
            aimed = str(change.get("target") or "|").split("|", 1)[1]
            landed[aimed][REFUSED if cell is None else cell.split("|", 1)[-1]] += 1
    return landed


def simulate(start: dict[str, float], target: dict[str, float], shares: dict[str, dict[str, float]],
             expands: int, by_table: bool) -> float:
    """Expected cell JSD after `expands` expands, each adding its aimed skill's measured landing shares to
    its domain's cells. Aimed at the cell furthest below its target count, as if it landed there
    (`by_table` False), or at the cell whose expected landing lowers the JSD most (`by_table` True)."""
    counts = dict(start)
    domains = sorted({cell.split("|")[0] for cell in target})

    def jsd(c: dict[str, float]) -> float:
        return jensen_shannon({k: v for k, v in c.items() if v > 0}, target)

    def landed(c: dict[str, float], cell: str) -> dict[str, float]:
        domain, skill = cell.split("|")
        out = dict(c)
        for measured, share in shares.get(skill, {}).items():
            out[f"{domain}|{measured}"] = out.get(f"{domain}|{measured}", 0.0) + share
        return out

    for _ in range(expands):
        total = sum(counts.values())
        if by_table:
            aims = [f"{d}|{s}" for d in domains for s in shares]
            counts = min((landed(counts, aim) for aim in aims), key=jsd)
        else:
            aim = min(target, key=lambda cell: counts.get(cell, 0.0) - target[cell] * total)
            counts = landed(counts, aim)
    return jsd(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", required=True, help="comma-separated JSD-curve result tags; the first gives "
                        "the simulation's start and number of expands")
    parser.add_argument("--tag", default="expand_landing")
    args = parser.parse_args()
    tags = [t for t in args.tags.split(",") if t]
    results = [json.loads((RESULTS / f"{tag}.json").read_text(encoding="utf-8")) for tag in tags]
    run_dirs = [Path(row["run_dir"]) for result in results for row in result["curve"]]
    missing = [str(d) for d in run_dirs if not (d / REFINED).is_file()]
    if missing:
        raise SystemExit(f"run folders gone: {', '.join(missing)}")
    table_counts = landing_table(run_dirs)
    shares = {aimed: {skill: n / sum(row.values()) for skill, n in row.items() if skill != REFUSED}
              for aimed, row in table_counts.items()}
    first = results[0]["curve"][0]
    if results[0].get("targets") != UNIFORM_TARGETS.name:
        raise SystemExit(f"{tags[0]} was run towards {results[0].get('targets')}; this script reads "
                         f"{UNIFORM_TARGETS.name} only")
    targets = load_targets(UNIFORM_TARGETS)
    target = {cell.key: w for cell, w in targets.coverage_cells().items()}
    start = {cell: first["coverage_before"].get(cell, 0.0) * first["items_before"] for cell in target}
    before = jensen_shannon({k: v for k, v in start.items() if v > 0}, target)
    finished = sum(not cut_by_budget(change) for change, _ in expand_landings(Path(first["run_dir"])))
    simulated = []
    for expands in (finished, 2 * finished):
        naive = simulate(start, target, shares, expands, by_table=False)
        aware = simulate(start, target, shares, expands, by_table=True)
        simulated.append({"expands": expands, "as_planned": naive, "by_table": aware})
        log(f"{expands} expands: as planned {naive:.4f}, aimed by the table {aware:.4f}")
    skills = sorted({s for row in table_counts.values() for s in row if s != REFUSED})
    rows = [[aimed, sum(row.values()), row.get(REFUSED, 0), *(row.get(s, 0) for s in skills),
             f"{row.get(aimed, 0) / max(1, sum(row.values()) - row.get(REFUSED, 0)):.0%}"]
            for aimed, row in sorted(table_counts.items())]
    result: dict[str, Any] = {"tags": tags, "run_dirs": [str(d) for d in run_dirs],
                              "table": {k: dict(v) for k, v in table_counts.items()}, "simulated": simulated,
                              "start_jsd": before, "actual_after": first["coverage_jsd_after"]}
    lines = [f"# Where expands land, by the skill they were written for ({args.tag})", "",
             f"Stored runs of {', '.join(f'`{t}`' for t in tags)} ({len(run_dirs)} runs; the labeller is the "
             "runs' own). Each expand's last attempt; refused includes landing in a covered cell.", "",
             table(["written for", "finished", "refused", *(f"kept as {s}" for s in skills),
                    "kept in the skill written for"], rows), "",
             f"Simulated on `{tags[0]}`'s start (cell JSD {before:.3f}; the run reached "
             f"{first['coverage_jsd_after']:.3f}), expected counts under the table above:", "",
             table(["expands", "aimed as the planner assumes (lands where aimed)", "aimed by the table"],
                   [[s["expands"], f"{s['as_planned']:.3f} ({reduction(before, s['as_planned']):.1%})",
                     f"{s['by_table']:.3f} ({reduction(before, s['by_table']):.1%})"] for s in simulated])]
    write_results(args.tag, result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
