"""Wrong-key correction on injected errors: correction rate and residual error rate after refinement.

MMLU-Redux-style injection: take items the MMLU-Redux annotators certified as correct ("ok" rows of
the dev subjects), and for `--inject-share` of them move the key to another option chosen at random
(the "wrong groundtruth" corruption). The whole set is refined with the `fix` operation only (so the
planner cannot simply delete suspects), with a model panel in profiling: the panel's disagreement
with the key is the screening evidence, the validator checks suspects above the threshold and every
fix (an independent answer must match the new key).

Figures:
- correction rate: injected items whose final key is the true answer again / injected items;
- residual error rate: items in the refined set whose key is wrong (injected and left, or a clean item
  broken by a fix) / items in the refined set (before refinement it is the injection rate);
- detection: injected items that screening made eligible for a fix (p_error >= 0.05) and that it
  flagged (p_error >= 0.5), and the same for clean items (false alarms);
- fixes committed on clean items and whether they kept the key.

    python evals/eval_correction.py --quick               # 10 items, 5 injected, bounded wall time
    python evals/eval_correction.py --n 60 --budget 150000 --panel qwen2.5-coder-1.5b,qwen2.5-coder-0.5b

With a retrieval-conditioned member (`--panel qwen2.5-coder-1.5b,rag:qwen2.5-coder-1.5b`) the fix rule has a
second source: the member reads the top passages of the built-in Wikipedia corpus (which holds the
paragraphs retrieved for MMLU-Redux's retriever-evaluation subjects; pick `--subjects` among those, e.g.
global_facts,public_relations,virology,machine_learning).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    EMBEDDED,
    PAPER,
    RESULTS,
    add_common_args,
    deadline,
    deadline_seconds,
    log,
    model_label,
    pct,
    run_choices,
    settings_for,
    table,
    write_results,
)
from redux import read_redux_dev  # noqa: E402

from refinelab.agents.options import RunOptions  # noqa: E402
from refinelab.api import refine  # noqa: E402
from refinelab.metrics.targets import Targets  # noqa: E402
from refinelab.operations import OPERATION_NAMES, Op  # noqa: E402
from refinelab.run_layout import REPORT_JSON, STORE
from refinelab.schema import Dataset, QAItem, normalise_text  # noqa: E402
from refinelab.state import SUCCEEDED  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402

SUBJECTS = ("high_school_computer_science", "astronomy", "medical_genetics", "public_relations")
FIX_THRESHOLD = 0.05  # ApplicabilityPolicy: fix applies from this p_error


def clean_items(n: int, subjects: Sequence[str], seed: int, max_chars: int) -> list[QAItem]:
    """`n` MMLU-Redux "ok" items, spread over `subjects`, short ones (cheaper on a slow local model)."""
    rng = random.Random(seed)
    pool: dict[str, list[QAItem]] = {s: [] for s in subjects}
    for row in read_redux_dev(subjects=subjects):
        item = row.to_qaitem() if row.error_type == "ok" else None
        if item is not None and len(item.render()) <= max_chars:
            pool[row.subject].append(item.model_copy(update={"metadata": {}}))
    for items in pool.values():
        rng.shuffle(items)
    picked: list[QAItem] = []
    position = 0
    while len(picked) < n and any(position < len(v) for v in pool.values()):
        for subject in subjects:
            if position < len(pool[subject]) and len(picked) < n:
                picked.append(pool[subject][position])
        position += 1
    return picked


def inject(items: list[QAItem], share: float, seed: int) -> tuple[list[QAItem], dict[str, str], set[str]]:
    """Flip the key of `share` of the items; returns the items, each id's true answer text, injected ids."""
    rng = random.Random(seed + 17)
    truth = {i.id: i.answer_text for i in items}
    chosen = set(rng.sample([i.id for i in items], round(len(items) * share)))
    out = []
    for item in items:
        if item.id in chosen:
            wrong = rng.choice([k for k in range(len(item.choices)) if k != item.answer])
            item = item.model_copy(update={"answer": wrong})
        out.append(item)
    return out, truth, chosen


_LABEL = re.compile(r"^\(?[A-Ja-j][.):]\s+")


def key_ok(item: QAItem, truth_text: str) -> bool:
    """The key's text is the true answer, ignoring an "A. " label a writer copied into the option (a
    formatting slip of small models that agents/refiner.py keeps; the key is what is scored here)."""
    return normalise_text(_LABEL.sub("", item.answer_text.strip())) == normalise_text(truth_text)


def score_run(run_dir: Path, items: list[QAItem], truth: dict[str, str], injected: set[str]) -> dict[str, Any]:
    store = RunStore(run_dir / STORE)
    try:
        statuses = store.statuses()
        current = {i.id: i for i in store.items(("kept", "edited", "new"))}
        errors = {d.item_id: d for d in store.diagnostics("error")}
        outcomes = store.outcomes()
        # a fix the evidence bar refused is kept as it was and flagged for a person (fix_evidence.py)
        review = {e["item_id"] for e in store.edits() if (e.get("evidence") or {}).get("needs_review")}
    finally:
        store.close()
    rows = []
    for item in items:
        error = errors.get(item.id)
        p_error = float(error.evidence.get("p_error", 0.0)) if error else None
        final = current.get(item.id)
        fix = [o for o in outcomes if o["item_id"] == item.id and o["operation"] == Op.FIX]
        rows.append({
            "id": item.id, "subject": item.subject, "injected": item.id in injected, "status": statuses.get(item.id),
            "p_error": p_error, "error_type": error.evidence.get("error_type") if error else None,
            "eligible": p_error is not None and p_error >= FIX_THRESHOLD, "flagged": bool(error and error.flag),
            "fix_outcome": fix[-1]["status"] if fix else None, "review": item.id in review,
            "key_before": item.answer_letter, "true_answer": truth[item.id],
            "key_after": final.answer_letter if final else None,
            "correct_after": None if final is None else key_ok(final, truth[item.id]),
        })
    inj = [r for r in rows if r["injected"]]
    clean = [r for r in rows if not r["injected"]]
    kept = [r for r in rows if r["correct_after"] is not None]
    wrong_after = [r for r in kept if not r["correct_after"]]

    def share(part: list[Any], whole: list[Any]) -> float | None:
        return len(part) / len(whole) if whole else None

    # a fix that passed with the item unchanged is "confirmed" (its key stood on the evidence): it is a fix
    # the run committed to, right or wrong, so it counts here as every other passed fix does
    committed = [r for r in rows if r["fix_outcome"] in SUCCEEDED]
    handled = [r for r in inj if r["correct_after"] is not False or r["review"] or r["flagged"]]
    accepted = [r for r in kept if not (r["review"] or r["flagged"])]
    return {
        "rows": rows,
        # the four figures: committed fixes that are right; residual error in the output (and in
        # what is left once the flagged items go to review); injected items handled; clean items broken
        "fixes_right": share([r for r in committed if r["correct_after"]], committed),
        "fixes_committed": len(committed),
        "injected_handled": share(handled, inj),
        "handled_by": {
            "fixed": sum(r["correct_after"] is True for r in inj),
            "removed": sum(r["correct_after"] is None for r in inj),
            "flagged_for_review": sum(r["correct_after"] is False and r["review"] for r in inj),
            "flagged_by_screening": sum(r["correct_after"] is False and r["flagged"] and not r["review"] for r in inj),
        },
        # not counted as handled: the item is kept as it was, but the refused fix and the validator's reason
        # are in report.json's `gave_up` and changes.jsonl, where a person reviewing the run sees them
        "injected_fix_refused": sum(r["correct_after"] is False and not (r["review"] or r["flagged"])
                                    and r["fix_outcome"] == "gave_up" for r in inj),
        "clean_broken_rate": share([r for r in clean if r["correct_after"] is False], clean),
        "residual_error_accepted": share([r for r in accepted if not r["correct_after"]], accepted),
        "accepted_items": len(accepted),
        "injected": len(inj), "clean": len(clean),
        "correction_rate": share([r for r in inj if r["correct_after"]], inj),
        "removed_injected": sum(r["correct_after"] is None for r in inj),
        "error_rate_before": share(inj, rows),
        "residual_error_rate": share(wrong_after, kept),
        "residual_errors": len(wrong_after),
        "detection": {
            "injected_eligible": share([r for r in inj if r["eligible"]], inj),
            "injected_flagged": share([r for r in inj if r["flagged"]], inj),
            "clean_eligible": share([r for r in clean if r["eligible"]], clean),
            "clean_flagged": share([r for r in clean if r["flagged"]], clean),
        },
        "fixes": {
            "attempted_injected": sum(r["fix_outcome"] is not None for r in inj),
            "committed_injected": sum(r["fix_outcome"] in SUCCEEDED for r in inj),
            "attempted_clean": sum(r["fix_outcome"] is not None for r in clean),
            "committed_clean": sum(r["fix_outcome"] in SUCCEEDED for r in clean),
            "clean_broken": sum(r["correct_after"] is False for r in clean),
        },
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["scores"]
    d, f = s["detection"], s["fixes"]
    hb = s["handled_by"]
    goals = table(["figure (issue 14)", "measured", "goal"], [
        ["committed fixes that are right", f"{pct(s['fixes_right'])} of {s['fixes_committed']}", ">= 95%"],
        ["residual error in the output", pct(s["residual_error_rate"]), "< 4%"],
        ["residual error once flagged items go to review",
         f"{pct(s['residual_error_accepted'])} of {s['accepted_items']} items", "—"],
        ["injected items handled (fixed, removed or flagged)",
         f"{pct(s['injected_handled'])} (fixed {hb['fixed']}, removed {hb['removed']}, flagged for review "
         f"{hb['flagged_for_review']}, flagged by screening {hb['flagged_by_screening']}); besides, "
         f"{s['injected_fix_refused']} kept with a fix the validator refused (in report.json's gave_up)", ">= 90%"],
        ["clean items broken", pct(s["clean_broken_rate"]), "<= 1%"],
    ])
    headline = table(["figure", "measured", "paper"], [
        ["correction rate (injected wrong keys restored)", f"{pct(s['correction_rate'])} ({s['injected']} injected)",
         PAPER["correction"]],
        ["residual error rate (wrong keys in the refined set)",
         f"{pct(s['residual_error_rate'])} ({s['residual_errors']} items; before: {pct(s['error_rate_before'])})",
         PAPER["residual"]],
    ])
    detail = table(["", "injected", "clean"], [
        ["eligible for fix (p_error >= 0.05)", pct(d["injected_eligible"]), pct(d["clean_eligible"])],
        ["flagged (p_error >= 0.5)", pct(d["injected_flagged"]), pct(d["clean_flagged"])],
        ["fix attempted", f["attempted_injected"], f["attempted_clean"]],
        ["fix committed", f["committed_injected"], f["committed_clean"]],
        ["key wrong after refinement", sum(1 for r in s["rows"] if r["injected"] and r["correct_after"] is False),
         f["clean_broken"]],
    ])
    return "\n".join([
        f"# Wrong-key correction on injected errors ({result['tag']})", "",
        f"{result['n']} MMLU-Redux 'ok' items ({', '.join(result['subjects'])}), keys flipped on "
        f"{pct(result['inject_share'], 0)}; model: {result['model']}; panel: {', '.join(result['panel']) or '—'}; "
        f"operations: {', '.join(result['operations'])}; validators: "
        f"{', '.join(result.get('validators') or []) or 'answer check only'}; budget {result['budget']:,}, spent {result['spent']:,}; "
        f"stop: {result['stop_reason'] or '—'}" + (" (wall-clock deadline)" if result["deadline_hit"] else "")
        + f"; {result['elapsed_s']} s.", "", goals, "", headline, "", "Screening and fixes:", "", detail, "",
        f"Run folder: {result['run_dir']}" + (f", made by `{result['run_command']}` and re-scored"
                                              if result.get("run_command") else ""),
    ])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=900)
    parser.add_argument("--n", type=int, default=None, help="items (quick 10, full 60)")
    parser.add_argument("--inject-share", type=float, default=0.5)
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument("--max-chars", type=int, default=None, help="longest rendered item (quick 450, full 2000)")
    parser.add_argument("--budget", type=int, default=None, help="token budget (quick 15000, full 150000)")
    parser.add_argument("--panel", default=None, help="panel members (default: the eval's model); 'none': no panel "
                                                      "configured, as a default `refinelab refine` (the judge answers)")
    parser.add_argument("--operations", nargs="*", default=[Op.FIX.value], choices=OPERATION_NAMES)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (quick 1, full 2)")
    parser.add_argument("--validators", nargs="*", default=[], choices=("pot", "rag", "pot_or_rag"),
                        help="model-based validators (default none: the answer check only, so with one model "
                             "no key move reaches the two-source bar)")
    parser.add_argument("--rescore", type=Path, default=None,
                        help="score this finished run folder (made with the same item arguments) instead of running")
    args = parser.parse_args(argv)
    args.tag = args.tag or ("correction_quick" if args.quick else "correction")
    n = args.n or (10 if args.quick else 60)
    budget = args.budget or (15000 if args.quick else 150000)
    max_chars = args.max_chars or (450 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 2)
    member = args.model if args.endpoint == EMBEDDED else f"{args.model}@{args.endpoint}"
    panel = [] if args.panel == "none" else [m.strip() for m in (args.panel or member).split(",") if m.strip()]
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    items, truth, injected = inject(clean_items(n, subjects, args.seed, max_chars), args.inject_share, args.seed)
    started = time.monotonic()
    settings = settings_for(args)
    run_id = f"correction-{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    # labels play no part in a fix-only run: the token-free exemplar labeller keeps the profile to screening
    options = RunOptions(operations=args.operations, panel=panel, validators=args.validators, dedup="lexical",
                         pilot_per_op=0, skill_method="exemplars", **run_choices(args, rounds=rounds))
    log(f"correction: {len(items)} items, {len(injected)} injected, panel {panel}, budget {budget}")
    stop, rescored_from = {"hit": False}, None
    if args.rescore is None:
        with deadline(deadline_seconds(args)) as stop:
            run = refine(Dataset(items, name="redux-ok-injected"), budget=budget, targets=Targets(),
                         settings=settings, run_id=run_id, options=options)
        run_dir, spent, report = run.run_dir, run.spent, run.report
    else:  # a finished run folder: its ledger and report, scored again
        run_dir = args.rescore.resolve()
        report = json.loads((run_dir / REPORT_JSON).read_text())
        spent = int(report["ledger"]["spent"])
        earlier = RESULTS / f"{args.tag}.json"  # the run's own result file keeps how it ran
        first = json.loads(earlier.read_text()) if earlier.exists() else {}
        if first.get("run_dir") == str(run_dir):
            stop["hit"], started = first["deadline_hit"], time.monotonic() - first["elapsed_s"]
            rescored_from = first.get("run_command") or first["command"]
            log(f"rescoring the run made by: {rescored_from}")
    scores = score_run(run_dir, items, truth, injected)
    (run_dir / "injection.json").write_text(json.dumps({"truth": truth, "injected": sorted(injected)}, indent=2))
    result = {
        "tag": args.tag, "model": model_label(args), "panel": panel, "n": len(items), "subjects": subjects,
        "inject_share": args.inject_share, "operations": args.operations, "validators": args.validators,
        "budget": budget, "spent": spent, "stop_reason": report.get("stop_reason", ""), "deadline_hit": stop["hit"],
        "run_dir": str(run_dir), "elapsed_s": round(time.monotonic() - started, 1), "scores": scores,
        **({"run_command": rescored_from} if rescored_from else {}),
        "headline": {k: scores[k] for k in ("correction_rate", "residual_error_rate", "error_rate_before")},
    }
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
