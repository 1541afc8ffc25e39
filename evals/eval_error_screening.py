"""Error-screening precision, recall and F1 on MMLU-Redux (human labels) and its injected-error sets.

Screening stages are cumulative, cheapest first, as in the profiler:
  deterministic   the structural checks (metrics/error_checks.py), free;
  panel           + the model panel's answers (disagreement with the key), one call per item per model;
  validator       + agents/validation/verdicts.py `check_original` on suspects (skipped when it is not installed).

Two evaluation sets:
  dev         MMLU-Redux dev subjects; gold = the annotators' label ("expert" rows are left out: they
              are neither an error type nor certified correct);
  corruption  the five injected-error sets (every row is an error), mixed with the same number of dev
              rows labelled "ok" as negatives, so precision means something.
Binary detection (p_error ≥ threshold) gives precision / recall / F1 overall; per error type we report
recall of the gold items of that type (detected at all) and typed precision / recall / F1 (the predicted
type must match). Rows that are not valid items (duplicate options, no key) get deterministic checks
only: no model can answer them.

    python evals/eval_error_screening.py --quick                       # small stratified sample
    python evals/eval_error_screening.py --n 300 --panel qwen2.5-coder-1.5b,qwen2.5-coder-0.5b
    python evals/eval_error_screening.py --stages deterministic --n 0  # all rows, free

Results go to evals/results/error_screening.json and .md (name them with --tag).
"""

from __future__ import annotations

import argparse
import contextvars
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from redux import ReduxItem, read_corruption_tests, read_redux_dev

from refinelab.agents.options import RunOptions
from refinelab.agents.panel import answer_panel
from refinelab.agents.screening import error_model, load_check_original
from refinelab.api.context import open_run_context
from refinelab.config import load_settings
from refinelab.errors import BudgetExhausted
from refinelab.metrics.error_checks import (
    ERROR_TYPES,
    check_row,
    combine_error_evidence,
    validator_diagnostic,
)

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("deterministic", "panel", "validator")


def stratified(items: Sequence[ReduxItem], n: int, seed: int) -> list[ReduxItem]:
    """Up to `n` items with every label represented as evenly as the data allows (n ≤ 0: all)."""
    if n <= 0 or n >= len(items):
        return list(items)
    groups: dict[str, list[ReduxItem]] = defaultdict(list)
    for item in items:
        groups[item.error_type].append(item)
    rng = random.Random(seed)
    for group in groups.values():
        rng.shuffle(group)
    picked: list[ReduxItem] = []
    queues = [groups[k] for k in sorted(groups)]
    position = 0
    while len(picked) < n:
        for queue in queues:
            if position < len(queue) and len(picked) < n:
                picked.append(queue[position])
        position += 1
    return picked


def evaluation_sets(n: int, seed: int) -> dict[str, list[ReduxItem]]:
    dev = [i for i in read_redux_dev() if i.error_type != "expert"]
    corruption = read_corruption_tests()
    dev_sample = stratified(dev, n, seed)
    corrupt_sample = stratified(corruption, n // 2 if n > 0 else 0, seed)
    used = {i.id for i in dev_sample}
    ok_pool = [i for i in dev if i.error_type == "ok" and i.id not in used] or [i for i in dev if i.error_type == "ok"]
    random.Random(seed + 1).shuffle(ok_pool)
    negatives = ok_pool[:len(corrupt_sample)]
    return {"dev": dev_sample, "corruption": corrupt_sample + negatives}


def prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn}


def auroc(scores: Sequence[float], gold: Sequence[bool]) -> float | None:
    """Probability an erroneous item gets a higher p_error than a clean one (ties count half)."""
    pos = [s for s, g in zip(scores, gold, strict=True) if g]
    neg = [s for s, g in zip(scores, gold, strict=True) if not g]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def score(items: Sequence[ReduxItem], predictions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Binary P/R/F1, per-type detection recall and typed P/R/F1."""
    tp = fp = fn = tn = 0
    for item in items:
        flagged = predictions[item.id]["flag"]
        tp += flagged and item.is_error
        fp += flagged and not item.is_error
        fn += (not flagged) and item.is_error
        tn += (not flagged) and not item.is_error
    overall = prf(tp, fp, fn) | {"tn": tn, "n": len(items), "errors": sum(i.is_error for i in items),
                                 "auroc": auroc([predictions[i.id]["p_error"] for i in items], [i.is_error for i in items])}
    per_type: dict[str, Any] = {}
    for error_type in ERROR_TYPES:
        gold = [i for i in items if i.error_type == error_type]
        predicted = [i for i in items if predictions[i.id]["error_type"] == error_type]
        typed_tp = sum(1 for i in gold if predictions[i.id]["error_type"] == error_type)
        per_type[error_type] = {
            "gold": len(gold), "detected": sum(predictions[i.id]["flag"] for i in gold),
            "detection_recall": round(sum(predictions[i.id]["flag"] for i in gold) / len(gold), 4) if gold else None,
            **{f"typed_{k}": v for k, v in prf(typed_tp, len(predicted) - typed_tp, len(gold) - typed_tp).items()
               if k in ("precision", "recall", "f1")},
        }
    return {"overall": overall, "per_type": per_type}


def ask_panel(ctx: Any, items: Sequence[ReduxItem], members: list[str], workers: int,
              deadline_s: float | None = None) -> dict[str, list[int | None]]:
    """Each member's answer per valid item, stored in the eval's run store (a re-run is free).

    Past `deadline_s` only stored answers are used: on a slow shared machine the eval then scores the
    items the panel did answer (the report says how many)."""
    valid = [(i, q) for i in items if (q := i.to_qaitem()) is not None]
    ctx.store.load_items([q for _, q in valid])
    deadline = time.monotonic() + deadline_s if deadline_s is not None else None

    def one(pair: tuple[ReduxItem, Any]) -> tuple[str, list[int | None]] | None:
        item, qa = pair
        stored = ctx.store.diagnostic(qa.id, "panel")
        complete = stored is not None and all(m in stored.evidence["answers"] for m in members)
        if not complete and deadline is not None and time.monotonic() > deadline:
            return None
        try:
            diag = answer_panel(ctx, qa, members) or ctx.store.diagnostic(qa.id, "panel")
        except BudgetExhausted:
            return None
        if diag is None:
            return None
        ctx.store.put_diagnostics([diag])
        return item.id, [diag.evidence["answers"].get(m) for m in members]

    done: dict[str, list[int | None]] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, pair) for pair in valid]
        for count, future in enumerate(futures, 1):
            result = future.result()
            if result is not None:
                done[result[0]] = result[1]
            if count % 10 == 0 or count == len(futures):
                print(f"  panel {count}/{len(futures)} items, {time.monotonic() - started:.0f} s", file=sys.stderr)
    return done


def predict(ctx: Any, items: Sequence[ReduxItem], stages: set[str], panel: dict[str, list[int | None]],
            verdicts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    model = error_model(ctx)
    out = {}
    for item in items:
        row = item.to_row()
        answers = panel.get(item.id) if "panel" in stages else None
        verdict = verdicts.get(item.id) if "validator" in stages else None
        assessment = combine_error_evidence(item.id, check_row(row, expected_choices=4), panel_answers=answers,
                                            key=item.answer, validator=verdict, model=model)
        out[item.id] = {"flag": assessment.flag, "p_error": assessment.p_error, "error_type": assessment.error_type}
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Error screening ({result['tag']})", "",
             f"panel: {', '.join(result['panel']) or '—'}; validator: {result['validator'] or 'not installed'}; "
             f"n per set: {result['sizes']}" + (" (partial panel: only answered rows scored)" if result["panel_partial"] else "")
             + f"; {result['elapsed_s']} s", "",
             "| set | stages | n | errors | precision | recall | F1 | AUROC |", "|---|---|---|---|---|---|---|---|"]
    for set_name, by_stage in result["results"].items():
        for stage, metrics in by_stage.items():
            o = metrics["overall"]
            lines.append(f"| {set_name} | {stage} | {o['n']} | {o['errors']} | {o['precision']:.3f} | "
                         f"{o['recall']:.3f} | {o['f1']:.3f} | {o['auroc']} |")
    lines += ["", "Per error type (detection recall / typed P / typed R / typed F1):", "",
              "| set | stages | type | gold | detect R | typed P | typed R | typed F1 |",
              "|---|---|---|---|---|---|---|---|"]
    for set_name, by_stage in result["results"].items():
        for stage, metrics in by_stage.items():
            for error_type, m in metrics["per_type"].items():
                if not m["gold"]:
                    continue
                lines.append(f"| {set_name} | {stage} | {error_type} | {m['gold']} | {m['detection_recall']:.3f} | "
                             f"{m['typed_precision']:.3f} | {m['typed_recall']:.3f} | {m['typed_f1']:.3f} |")
    lines += ["", "Ledger by component: " + json.dumps(result["ledger"].get("by_operation", {}))]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small stratified sample (n=40 per set)")
    parser.add_argument("--n", type=int, default=None, help="items per set (0 = all); --quick sets 40")
    parser.add_argument("--stages", default=",".join(STAGES), help="cumulative stages to evaluate")
    parser.add_argument("--panel", default="qwen2.5-coder-1.5b", help="comma-separated panel members")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget", type=int, default=None, help="token cap for the whole eval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--panel-deadline", type=float, default=None,
                        help="seconds of panel calls; after that only stored answers count (subset scored)")
    parser.add_argument("--work-dir", default=None, help="run folder for the eval's store and ledger")
    parser.add_argument("--tag", default="error_screening")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (40 if args.quick else 0)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := set(wanted) - set(STAGES):
        parser.error(f"unknown stages {sorted(unknown)}; use {STAGES}")
    members = [m.strip() for m in args.panel.split(",") if m.strip()] if "panel" in wanted else []
    started = time.monotonic()
    sets = evaluation_sets(n, args.seed)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="eval-screening-"))
    settings = load_settings()
    ctx = open_run_context(work, settings=settings, budget=args.budget, options=RunOptions(panel=members))
    everything = {i.id: i for items in sets.values() for i in items}.values()
    panel = ask_panel(ctx, list(everything), members, args.workers, args.panel_deadline) if members else {}
    answerable = [i for i in everything if i.to_qaitem() is not None]
    partial = bool(members) and len(panel) < len(answerable)
    if partial:  # score every stage on the same subset: rows the panel answered, plus invalid rows
        sets = {name: [i for i in items if i.id in panel or i.to_qaitem() is None] for name, items in sets.items()}
    verdicts: dict[str, Any] = {}
    check = load_check_original(ctx) if "validator" in wanted else None
    if check is not None:  # the validator looks only at what the earlier stages flag
        flagged = predict(ctx, list(everything), {"deterministic", "panel"} & set(wanted), panel, {})
        for item in everything:
            qa = item.to_qaitem()
            if qa is not None and flagged[item.id]["flag"]:
                try:
                    verdicts[item.id] = validator_diagnostic(qa.id, check(ctx, qa))
                except BudgetExhausted:
                    break
    results: dict[str, dict[str, Any]] = {}
    for set_name, items in sets.items():
        results[set_name] = {}
        for k in range(1, len(STAGES) + 1):
            stages = set(STAGES[:k])
            if not stages <= set(wanted) or ("validator" in stages and check is None):
                continue
            label = "+".join(STAGES[:k])
            results[set_name][label] = score(items, predict(ctx, items, stages, panel, verdicts))
    result = {
        "tag": args.tag, "panel": members, "validator": "check_original" if check is not None else None,
        "sizes": {k: len(v) for k, v in sets.items()}, "n_arg": n, "seed": args.seed,
        "panel_answered": len(panel), "panel_partial": partial, "elapsed_s": round(time.monotonic() - started, 1),
        "ledger": ctx.ledger.summary(), "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{args.tag}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
