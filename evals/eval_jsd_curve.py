"""Coverage and difficulty JSD before/after refinement on a deliberately skewed MMLU mix, over budgets.

The mix takes `--heavy-share` (70%) of its items from two subjects (default: two mathematics subjects,
so one domain and one skill dominate) and the rest one per other subject. Each budget is a real
`refinelab.refine` run towards targets/uniform_mmlu.yaml (4 domains x 5 skills, difficulty in thirds)
with the coverage/difficulty operations (remove, expand, generate, calibrate). Profiling labels are
cached model responses, so every budget after the first pays only for its edits.

Reported per budget: cell-level coverage JSD (domain x skill, what the planner optimises), domain-level
JSD (what the skew manipulates), difficulty JSD, each before/after and as a relative reduction; tokens
spent; edits committed. The paper reports >90% reduction.

    python evals/eval_jsd_curve.py --quick                 # ~20 items, 3 budgets, bounded wall time
    python evals/eval_jsd_curve.py --n 120 --budgets 5000 20000 60000 120000
    python evals/eval_jsd_curve.py --endpoint http://host:8000/v1 --model my-model
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    HEAVY,
    HEAVY_SHARE,
    PAPER,
    RESULTS,
    UNIFORM_TARGETS,
    add_common_args,
    deadline,
    deadline_seconds,
    domain_jsd,
    expand_landings,
    last_attempts,
    log,
    measured_buckets,
    model_label,
    num,
    pct,
    reduction,
    run_choices,
    settings_for,
    skewed_mix,
    table,
    write_results,
)

from refinelab.agents.options import RunOptions  # noqa: E402
from refinelab.api import refine  # noqa: E402
from refinelab.config import PLANNER_MODES  # noqa: E402
from refinelab.metrics.divergence import jensen_shannon  # noqa: E402
from refinelab.metrics.targets import load_targets  # noqa: E402
from refinelab.operations import OPERATION_NAMES, Op  # noqa: E402
from refinelab.run_layout import CHANGES, REFINED

# A deliberate subset of the registry: the operations that move coverage and difficulty (no fix, no
# distractor rewrites), so the curve measures the JSD terms alone.
OPERATIONS = [op.value for op in (Op.REMOVE, Op.EXPAND, Op.GENERATE, Op.CALIBRATE)]


def run_budget(dataset: Any, budget: int, args: argparse.Namespace, rounds: int, pilot: int,
               seconds: float | None, profiling_tokens: int) -> dict[str, Any]:
    """One real refinement run with `budget` tokens for edits; the figures from its report.json.

    The run replays the profiling answers from the response cache, and a replayed answer counts against a
    run's budget at what it cost (so an identical re-run buys the same plan: tools/ledger.py). The run is
    therefore given `budget + profiling_tokens`, which leaves exactly `budget` for the edits."""
    targets = load_targets(args.targets)
    domains = {d: sum(row.values()) for d, row in (targets.coverage or {}).items()}
    settings = settings_for(args)
    run_id = f"{args.tag}-{args.mode}-b{budget}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    options = RunOptions(operations=args.operations, validators=[], dedup="lexical", pilot_per_op=pilot,
                         allow_shrink=args.allow_shrink, min_size=args.min_size, skill_method=args.skill_method,
                         measure_new_item_cells=not args.unmeasured_new_items, expand_batch=args.expand_batch,
                         expand_spares=args.expand_spares, expand_aims_difficulty=args.expand_aims,
                         expand_examples=args.expand_examples,
                         **run_choices(args, rounds=rounds, planner_mode=args.mode))
    started = time.monotonic()
    with deadline(seconds) as stop:
        result = refine(dataset, budget=budget + profiling_tokens, targets=targets, settings=settings, run_id=run_id, options=options)
    report = result.report
    before, after = report["metrics_before"], report["metrics_after"]
    row = {
        "budget": budget, "run_dir": str(result.run_dir), "spent": result.spent, "seconds": round(time.monotonic() - started, 1),
        "deadline_hit": stop["hit"], "stop_reason": report.get("stop_reason", ""),
        "items_before": before["items"], "items_after": after["items"],
        "items_by_status": report.get("items_by_status", {}), "new_items": report.get("new_items", 0),
        "outcomes": report.get("edits", {}).get("outcomes", {}),
        "expected_errors_before": before["expected_errors"], "expected_errors_after": after["expected_errors"],
        "plans": report.get("plans", []), "replayed": report.get("ledger", {}).get("replayed"),
        "by_node": report.get("ledger", {}).get("by_node", {}), "by_operation": report.get("ledger", {}).get("by_operation", {}),
        "replayed_by_node": report.get("ledger", {}).get("replayed_by_node", {}), "profiling_tokens": profiling_tokens,
    }
    for name, b, a in (("coverage_jsd", before["coverage_jsd"], after["coverage_jsd"]),
                       ("domain_jsd", domain_jsd(before["coverage"], domains), domain_jsd(after["coverage"], domains)),
                       ("difficulty_jsd", before["difficulty_jsd"], after["difficulty_jsd"])):
        row[f"{name}_before"], row[f"{name}_after"], row[f"{name}_reduction"] = b, a, reduction(b, a)
    committed = {k.split(":")[0]: v for k, v in row["outcomes"].items() if k.endswith(":committed")}
    row["committed_by_op"] = committed
    row["removal_share"] = (committed.get(Op.REMOVE.value, 0) / sum(committed.values())) if committed else None
    statuses = row["items_by_status"]
    originals = sum(v for k, v in statuses.items() if k in ("kept", "edited", "removed"))
    row["kept_share"] = (statuses.get("kept", 0) + statuses.get("edited", 0)) / originals if originals else None
    row["coverage_before"], row["coverage_after"] = before["coverage"], after["coverage"]
    target = {cell.key: w for cell, w in targets.coverage_cells().items()}
    floor = args.min_size if args.min_size is not None else int(0.9 * before["items"] + 0.999)
    removable = before["items"] if args.allow_shrink and args.min_size is None else max(0, before["items"] - floor)
    added = row["new_items"]
    row["best_reachable"] = {  # the lowest cell JSD any choice of removals and new items of these counts reaches
        "with_new_items_committed": best_reachable(before["coverage"], target, before["items"], removable, added),
        "with_2x_new_items": best_reachable(before["coverage"], target, before["items"], removable, 2 * added),
        "new_items": added, "removable": removable,
        "new_items_for_90pct": new_items_needed(before["coverage"], target, before["items"], removable)}
    row["difficulty_before"], row["difficulty_after"] = before["difficulty"], after["difficulty"]
    row["new_item_outcomes"] = new_item_outcomes(result.run_dir)
    row["new_item_buckets"] = new_item_buckets(result.run_dir, targets)
    return row


def new_item_buckets(run_dir: Path, targets: Any) -> dict[str, int]:
    """The refined set's new items (expand, generate) by the difficulty bucket the panel measured for them:
    whether new items pull the set's difficulty away from its target."""
    return dict(Counter(bucket for created_by, bucket in measured_buckets(run_dir, targets).values()
                        if created_by in (Op.EXPAND.value, Op.GENERATE.value)))


def new_item_outcomes(run_dir: Path) -> dict[str, Any]:
    """Where the run's committed expands landed against the cell they were written for (the refined set's
    label, `expand_landings`), and why each new item given up was refused (its last attempt's reason, as
    `refusal_kind`): what limits how far a budget moves coverage."""
    landed: Counter[str] = Counter()
    elsewhere: Counter[str] = Counter()  # "written for -> measured in", for the expands that moved
    refused: Counter[str] = Counter()
    drafts: Counter[str] = Counter()  # attempts (each a writer draft) per operation
    for line in (Path(run_dir) / CHANGES).read_text(encoding="utf-8").splitlines():
        drafts[json.loads(line).get("operation", "")] += 1
    for change, cell in expand_landings(run_dir):
        if cell is None:
            continue
        landed["in its cell" if cell == change.get("target") else "in another cell"] += 1
        if cell != change.get("target"):
            elsewhere[f"{change.get('target')} -> {cell}"] += 1
    for change in last_attempts(run_dir, {Op.EXPAND.value, Op.GENERATE.value}).values():
        if change.get("outcome") != "committed":
            refused[refusal_kind(str(change.get("reason") or "no reason"))] += 1
    return {"landed": dict(landed), "landed_elsewhere": dict(elsewhere.most_common()),
            "refused": dict(refused.most_common()), "drafts": dict(drafts)}


def best_reachable(coverage: dict[str, float], target: dict[str, float], n: int, removable: int, added: int,
                   ) -> float:
    """The lowest cell coverage JSD a set of `n` items with shares `coverage` can reach by removing at most
    `removable` items and adding `added` new ones, each placed in whichever cell lowers the JSD most (an
    oracle that always writes into the cell it wants and may leave removals unused): what the budget's
    new items could have done at best, against which the run's own result is read."""
    counts = {cell: share * n for cell, share in coverage.items()}
    for cell in target:
        counts.setdefault(cell, 0.0)

    def jsd(c: dict[str, float]) -> float:
        return jensen_shannon({k: v for k, v in c.items() if v > 0} or {"-": 1.0}, target)

    best = jsd(counts)
    for _ in range(removable):
        trials = [(jsd({**counts, k: counts[k] - 1}), k) for k in counts if counts[k] >= 1]
        value, cell = min(trials) if trials else (best, None)
        if cell is None or value >= best:
            break
        counts[cell] -= 1
        best = value
    for _ in range(added):
        value, cell = min((jsd({**counts, k: counts[k] + 1}), k) for k in target)
        counts[cell] += 1
        best = min(best, value)
    return round(best, 4)


def new_items_needed(coverage: dict[str, float], target: dict[str, float], n: int, removable: int,
                     reduction_goal: float = 0.9, cap: int = 2000) -> int | None:
    """The fewest new items with which the oracle of `best_reachable` cuts the cell JSD by `reduction_goal`
    (None past `cap`): the size of the task the budget faces, whatever the method."""
    start = best_reachable(coverage, target, n, 0, 0)
    goal = (1 - reduction_goal) * start
    low, high = 0, 1
    while best_reachable(coverage, target, n, removable, high) > goal:
        if high >= cap:
            return None
        low, high = high, min(cap, high * 2)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if best_reachable(coverage, target, n, removable, mid) <= goal else (mid, high)
    return high


def profile_once(dataset: Any, args: argparse.Namespace, seconds: float | None) -> dict[str, Any]:
    """Profile the mix once (a dry run: labels, no edits) so every budget point replays the labels from the
    response cache for free and the budgets buy edits only. Returns the profiling spend."""
    settings = settings_for(args)
    run_id = f"{args.tag}-profile-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    started = time.monotonic()
    with deadline(seconds) as stop:
        result = refine(dataset, budget=10**9, targets=load_targets(args.targets), settings=settings, run_id=run_id,
                        options=RunOptions(operations=args.operations, validators=[], dedup="lexical", dry_run=True,
                                           skill_method=args.skill_method,
                                           **run_choices(args, rounds=1, planner_mode=args.mode)))
    replayed = int(result.report.get("ledger", {}).get("replayed") or 0)  # a re-run replays what an earlier paid
    return {"run_dir": str(result.run_dir), "spent": result.spent, "replayed": replayed,
            "tokens": result.spent + replayed, "deadline_hit": stop["hit"],
            "seconds": round(time.monotonic() - started, 1), "stop_reason": result.report.get("stop_reason", "")}


def markdown(result: dict[str, Any]) -> str:
    rows = [[f"{r['budget']:,}", f"{r['spent']:,}", f"{r['items_before']}→{r['items_after']}",
             f"{num(r['coverage_jsd_before'])}→{num(r['coverage_jsd_after'])} ({pct(r['coverage_jsd_reduction'])})",
             f"{num(r['domain_jsd_before'])}→{num(r['domain_jsd_after'])} ({pct(r['domain_jsd_reduction'])})",
             f"{num(r['difficulty_jsd_before'])}→{num(r['difficulty_jsd_after'])} ({pct(r['difficulty_jsd_reduction'])})",
             ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())) or "—",
             f"{pct(r.get('removal_share'))} / {pct(r.get('kept_share'))}",
             _reachable(r), _outcomes(r),
             f"{r['seconds']:.0f}" + (" (deadline)" if r["deadline_hit"] else "")]
            for r in result["curve"]]
    return "\n".join([
        f"# Coverage and difficulty JSD vs budget ({result['tag']})", "",
        f"Dataset: {result['n']} MMLU items, {pct(result['heavy_share'], 0)} from {', '.join(result['heavy'])}; "
        f"targets: {result['targets']}; model: {result['model']}; planner: {result['mode']}; "
        f"operations: {', '.join(result['operations'])}; rounds: {result['rounds']}; pilot per op: {result['pilot']}; "
        f"shrinking {'allowed' if result.get('allow_shrink') else 'not allowed'}, size floor "
        f"{result.get('min_size') or '90% of the input'}; expand drafts per writer call: {result.get('expand_batch', 1)}"
        f"{' + ' + str(result['expand_spares']) + ' spares for retries' if result.get('expand_spares') else ''}"
        f"; expand aims at difficulty: {'yes' if result.get('expand_aims_difficulty') else 'no'}"
        f"; expand examples: {result.get('expand_examples', 'subject')}.",
        f"Profiling (labels, paid once, then replayed from the response cache): {result['profiling']['tokens']:,} "
        f"tokens, {result['profiling']['seconds']:.0f} s" + (" (deadline hit: some items unlabelled)"
                                                             if result["profiling"]["deadline_hit"] else "") + ".",
        f"Paper: {PAPER['jsd_reduction']}.", "",
        table(["budget", "spent", "items", "coverage JSD (cells)", "domain JSD", "difficulty JSD", "edits",
               "removals / input kept", "best reachable with these new items (2x)",
               "new items: committed expands landed; last refusal reasons", "s"], rows),
        "", "JSD in base 2 (0 = on target, 1 = disjoint). Cell coverage is over 20 domain x skill cells, so a "
        "set of a few dozen items cannot reach 0 even when perfectly spread; the domain column shows the skew "
        "the mix was built with. Removals cost no model call and, unless shrinking is allowed, are bought only "
        "for defects; 'removals' is their share of committed edits, 'input kept' the share of input items still "
        "in the set. A new item written for a cell (expand) is kept only when the run's labeller puts it there or "
        "in another cell still below its target share; where it landed is the refined set's label. "
        "'Best reachable' is an oracle's cell JSD with the same number of new items (and twice as many) and "
        "the removals the size floor allows, each new item in the cell that lowers the JSD most: it says how "
        "far those items could have gone, as a reduction from the start.", "", *_costs(result),
        f"Total: {result['elapsed_s']} s.",
    ])


def _costs(result: dict[str, Any]) -> list[str]:
    """Per budget, what a committed new item cost and what the writer spent per expand draft. Tokens are
    paid or replayed from the response cache (a re-run replays what an earlier one paid, and the budget
    counts both); the profile's are left out. The refine node's tokens also hold any calibrate drafts."""
    lines = []
    for r in result["curve"]:
        replayed = r.get("replayed_by_node") or {}
        node = {name: (r.get("by_node", {}).get(name, {}).get("tokens", 0) + replayed.get(name, 0))
                for name in ("refine", "validate")}
        edits = r["spent"] + (r.get("replayed") or 0) - r.get("profiling_tokens", result["profiling"]["tokens"])
        drafts = r.get("new_item_outcomes", {}).get("drafts", {}).get(Op.EXPAND.value, 0)
        per_item = f"{edits / r['new_items']:,.0f}" if r.get("new_items") else "—"
        per_draft = f"{node['refine'] / drafts:,.0f}" if drafts else "—"
        buckets = r.get("new_item_buckets") or {}
        measured = ", ".join(f"{name} {buckets[name]}" for name in sorted(buckets)) or "—"
        lines.append(f"Budget {r['budget']:,}: {edits:,} tokens on edits (paid or replayed), {per_item} per new item "
                     f"kept; {drafts} expand drafts, refine node {node['refine']:,} tokens ({per_draft} a draft, "
                     f"{r.get('by_node', {}).get('refine', {}).get('calls', 0)} paid calls), validate node "
                     f"{node['validate']:,}; new items by measured difficulty: {measured}.")
    return [*lines, ""] if lines else []


def refusal_kind(reason: str) -> str:
    """A refusal reason without its particulars (item ids, figures, parentheses), at most two clauses:
    "structural checks failed: too close to existing item econometrics-2 (embedding similarity 1.00)" →
    "structural checks failed: too close to existing item"."""
    reason = reason.removeprefix("kept the original: ").split(" (")[0]
    reason = re.sub(r"\S*\d\S*", "#", reason)
    return ":".join(reason.split(":")[:2]).strip()[:90]


def _outcomes(r: dict[str, Any]) -> str:
    outcomes = r.get("new_item_outcomes")
    if not outcomes:
        return "—"
    landed = ", ".join(f"{v} {k}" for k, v in outcomes["landed"].items()) or "none committed"
    refused = "; ".join(f"{k} ×{v}" for k, v in outcomes["refused"].items()) or "none refused"
    return f"{landed}; refused: {refused}"


def _reachable(r: dict[str, Any]) -> str:
    best, before = r.get("best_reachable"), r["coverage_jsd_before"]
    if not best:
        return "—"
    return (f"{num(best['with_new_items_committed'])} ({pct(reduction(before, best['with_new_items_committed']))}); "
            f"{num(best['with_2x_new_items'])} ({pct(reduction(before, best['with_2x_new_items']))})")


def rescore(tag: str) -> dict[str, Any]:
    """Read where the new items of an earlier run (`evals/results/TAG.json`) landed again from its stored
    run folders, with no model call, and rewrite its results: how runs scored before `new_item_outcomes`
    read the measured cell were corrected. The JSD figures come from the runs' reports and do not change."""
    result = json.loads((RESULTS / f"{tag}.json").read_text(encoding="utf-8"))
    for row in result["curve"]:
        if not (Path(row["run_dir"]) / REFINED).is_file():
            raise SystemExit(f"{tag}: the run folder {row['run_dir']} is gone; nothing rescored")
        row["new_item_outcomes"] = new_item_outcomes(Path(row["run_dir"]))
    result.setdefault("run_made_by", {k: result.get(k) for k in ("command", "commit", "finished")})
    for key in ("command", "commit", "finished"):
        result.pop(key, None)
    text = markdown(result)
    made = result["run_made_by"]
    text += (f"\nThe runs: `{made['command']}` (commit {made['commit']}, {made['finished']}); where their new "
             "items landed was read again from the stored run folders by the command below, with no model call.\n")
    write_results(tag, result, text)
    print(text)
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=720)
    parser.add_argument("--n", type=int, default=None, help="items in the mix (quick 20, full 100)")
    parser.add_argument("--heavy", nargs=2, default=list(HEAVY), help="the two over-represented subjects")
    parser.add_argument("--heavy-share", type=float, default=HEAVY_SHARE)
    parser.add_argument("--budgets", type=int, nargs="*", default=None,
                        help="token budgets for edits, profiling paid apart (quick: 1000 3000 6000; full: 5000 20000 50000 100000)")
    parser.add_argument("--targets", default=str(UNIFORM_TARGETS))
    parser.add_argument("--operations", nargs="*", default=OPERATIONS, choices=OPERATION_NAMES)
    parser.add_argument("--mode", default="ilp", choices=PLANNER_MODES)
    parser.add_argument("--rounds", type=int, default=None, help="refinement rounds (quick 1, full 2)")
    parser.add_argument("--pilot-per-op", type=int, default=None, help="pilot edits per operation (quick 0, full 2)")
    parser.add_argument("--allow-shrink", action="store_true", help="let the planner remove items to rebalance")
    parser.add_argument("--min-size", type=int, default=None, help="size floor (default: 90%% of the input)")
    parser.add_argument("--unmeasured-new-items", action="store_true",
                        help="commit new items wherever they land (before measure_new_item_cells)")
    parser.add_argument("--skill-method", default="model", choices=("model", "probs", "exemplars"),
                        help="how items are labelled (RunOptions.skill_method)")
    parser.add_argument("--expand-batch", type=int, default=RunOptions().expand_batch,
                        help="new items of one cell the writer drafts per call (RunOptions.expand_batch; "
                        "1 = one per call)")
    parser.add_argument("--expand-aims", action=argparse.BooleanOptionalAction,
                        default=RunOptions().expand_aims_difficulty,
                        help="the plan deals expand drafts difficulty aims (RunOptions.expand_aims_difficulty)")
    parser.add_argument("--expand-spares", type=int, default=0,
                        help="extra drafts per batch, for retries (RunOptions.expand_spares)")
    parser.add_argument("--expand-examples", default=RunOptions().expand_examples, choices=("subject", "skill"),
                        help="which of the set's items the expand writer is shown (RunOptions.expand_examples)")
    parser.add_argument("--rescore", metavar="TAG", help="read where an earlier run's new items landed again "
                        "from its stored run folders (no model call) and rewrite evals/results/TAG.*")
    args = parser.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore)
    args.tag = args.tag or ("jsd_curve_quick" if args.quick else "jsd_curve")
    n = args.n or (20 if args.quick else 100)
    budgets = args.budgets or ([1000, 3000, 6000] if args.quick else [5000, 20000, 50000, 100000])
    rounds = args.rounds or (1 if args.quick else 2)
    pilot = args.pilot_per_op if args.pilot_per_op is not None else (0 if args.quick else 2)
    dataset = skewed_mix(n, args.heavy, args.heavy_share, args.seed)
    total = deadline_seconds(args)
    started = time.monotonic()
    log(f"jsd curve: profiling {n} items once")
    profiling = profile_once(dataset, args, None if total is None else total / 2)
    log(f"  profiling spent {profiling['spent']} tokens in {profiling['seconds']} s")
    curve = []
    for k, budget in enumerate(budgets):
        left = None if total is None else max(60.0, (total - (time.monotonic() - started)) / (len(budgets) - k))
        log(f"jsd curve: budget {budget} ({k + 1}/{len(budgets)}), deadline {left and round(left)} s")
        row = run_budget(dataset, budget, args, rounds, pilot, left, profiling["tokens"])
        log(f"  coverage JSD {num(row['coverage_jsd_before'])} -> {num(row['coverage_jsd_after'])}, "
            f"difficulty {num(row['difficulty_jsd_before'])} -> {num(row['difficulty_jsd_after'])}, spent {row['spent']}")
        curve.append(row)
    best = max(curve, key=lambda r: r["budget"])
    result = {
        "tag": args.tag, "model": model_label(args), "n": n, "heavy": list(args.heavy), "heavy_share": args.heavy_share,
        "targets": str(Path(args.targets).name), "mode": args.mode, "operations": args.operations, "rounds": rounds,
        "pilot": pilot, "budgets": budgets, "profiling": profiling, "curve": curve, "elapsed_s": round(time.monotonic() - started, 1),
        "allow_shrink": args.allow_shrink, "min_size": args.min_size, "skill_method": args.skill_method,
        "expand_batch": args.expand_batch, "expand_spares": args.expand_spares,
        "expand_aims_difficulty": args.expand_aims, "expand_examples": args.expand_examples,
        "headline": {k: best[k] for k in ("budget", "coverage_jsd_reduction", "domain_jsd_reduction",
                                          "difficulty_jsd_reduction", "removal_share", "kept_share")},
    }
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
