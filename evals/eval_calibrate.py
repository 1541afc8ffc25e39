"""Calibrate, measured: how often a calibration is committed, and how far it really moved p(correct).

A mix of MMLU items from easy and hard subjects is refined with `calibrate` only, towards a uniform
difficulty target, so the planner asks for moves in both directions. Every attempt that passed the
validator was measured (agents/validation/measured.py): the panel's p(correct) on the original and on the
candidate, committed only when it moved the intended way. Reported per direction: planned edits, edits
committed (share), attempts measured, and the mean measured change in p(correct) over committed edits
and over every measured attempt. The panel is `--panel` (default: the judge alone; with one member
p(correct) is 0 or 1 unless the panel measures option probabilities).

    python evals/eval_calibrate.py --quick
    python evals/eval_calibrate.py --n 40 --budget 40000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    UNIFORM_TARGETS,
    add_common_args,
    by_subject,
    deadline,
    deadline_seconds,
    log,
    mmlu,
    model_label,
    num,
    pct,
    run_choices,
    settings_for,
    table,
    write_results,
)

from refinelab.agents.options import RunOptions  # noqa: E402
from refinelab.api import refine  # noqa: E402
from refinelab.metrics.targets import load_targets  # noqa: E402
from refinelab.operations import Op  # noqa: E402
from refinelab.run_layout import STORE
from refinelab.schema import Dataset  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402

EASY = ("elementary_mathematics", "high_school_geography", "marketing", "nutrition")
HARD = ("college_chemistry", "college_physics", "econometrics", "formal_logic")


def mix(n: int, seed: int, max_chars: int) -> Dataset:
    groups = by_subject(mmlu())
    rng = random.Random(seed)
    subjects = list(EASY) + list(HARD)
    picked = []
    for k in range(n):
        pool = [i for i in groups[subjects[k % len(subjects)]] if len(i.render()) <= max_chars and i not in picked]
        picked.append(rng.choice(pool))
    return Dataset(picked, name=f"mmlu-calibrate-{n}")


def summarise(edits: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    committed = {o["edit_id"] for o in outcomes if o["status"] == "committed"}
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"edits": set(), "committed": set(), "changes": [],
                                                          "committed_changes": [], "rejected_reasons": []})
    for edit in edits:
        measured = (edit["evidence"] or {}).get("measured")
        direction = measured.get("direction") if measured else None
        if direction is None:
            continue
        row = per[direction]
        row["edits"].add(edit["edit_id"])
        if measured.get("change") is not None:
            row["changes"].append(measured["change"])
            if edit["verdict"] == "pass" and edit["edit_id"] in committed:
                row["committed"].add(edit["edit_id"])
                row["committed_changes"].append(measured["change"])
        if edit["verdict"] != "pass":
            row["rejected_reasons"].append(edit["reason"][:120])
    out = {}
    for direction, row in per.items():
        out[direction] = {
            "edits_measured": len(row["edits"]), "committed": len(row["committed"]),
            "committed_share": len(row["committed"]) / len(row["edits"]) if row["edits"] else None,
            "attempts_measured": len(row["changes"]),
            "mean_change_committed": float(np.mean(row["committed_changes"])) if row["committed_changes"] else None,
            "mean_change_all": float(np.mean(row["changes"])) if row["changes"] else None,
            "rejections": row["rejected_reasons"][:5],
        }
    out["attempts"] = attempt_kinds(edits)
    out["committed_by_kind"] = committed_kinds(edits, committed)
    planned = [o for o in outcomes if o["operation"] == Op.CALIBRATE.value]
    out["all"] = {"planned": len(planned), "committed": sum(o["status"] == "committed" for o in planned),
                  "committed_share": (sum(o["status"] == "committed" for o in planned) / len(planned)) if planned else None,
                  "gave_up_reasons": sorted({o["reason"][:100] for o in planned if o["status"] != "committed"})[:6]}
    return out


#: what an attempt's reason says happened, by a phrase the refiner or the validator writes
ATTEMPT_KINDS = {"committed": "", "no draft moved the intended way": "drafts made the item",
                 "changed nothing": "changed nothing", "key text changed": "correct option was changed",
                 "solver picked another option": "independent solver", "measured the wrong way": "did not make the item",
                 "writer output unusable": "writer output unusable"}


def attempt_kinds(edits: list[dict[str, Any]]) -> dict[str, int]:
    """Every calibrate attempt by what happened to it (passes first, then the first phrase its reason has)."""
    counts: dict[str, int] = defaultdict(int)
    for edit in edits:
        if edit.get("operation", Op.CALIBRATE.value) != Op.CALIBRATE.value:
            continue
        if edit["verdict"] == "pass":
            counts["committed" if (edit["evidence"] or {}).get("measured", {}).get("change") is not None else "passed"] += 1
            continue
        reason = edit["reason"] or ""
        kind = next((k for k, phrase in ATTEMPT_KINDS.items() if phrase and phrase in reason), "other")
        counts[kind] += 1
    return dict(counts)


def committed_kinds(edits: list[dict[str, Any]], committed: set[str]) -> dict[str, int]:
    """Committed calibrations by what changed: "swap" (distractors swapped, stem and key kept) or "stem"
    (the writer's rewrite), from the candidate's `calibration_drafts` metadata."""
    counts: dict[str, int] = defaultdict(int)
    for edit in edits:
        if edit["verdict"] != "pass" or edit["edit_id"] not in committed or not isinstance(edit.get("after"), dict):
            continue
        drafts = (edit["after"].get("metadata") or {}).get("calibration_drafts") or {}
        counts[str(drafts.get("kind", "single draft"))] += 1
    return dict(counts)


def markdown(r: dict[str, Any]) -> str:
    s = r["summary"]
    rows = [[d, str(s[d]["edits_measured"]), f"{s[d]['committed']} ({pct(s[d]['committed_share'])})",
             str(s[d]["attempts_measured"]), num(s[d]["mean_change_committed"]), num(s[d]["mean_change_all"])]
            for d in ("harder", "easier") if d in s]
    a = s["all"]
    return "\n".join([
        f"# Calibrate, measured ({r['tag']})", "",
        f"{r['n']} MMLU items ({', '.join(EASY)} / {', '.join(HARD)}); targets {r.get('targets', 'uniform_mmlu.yaml')}; "
        f"model {r['model']}; panel {', '.join(r['panel'])}; "
        f"budget {r['budget']:,}, spent {r['spent']:,}; {r['seconds']:.0f} s" + (" (deadline hit)" if r["deadline_hit"] else "")
        + ".", "",
        f"Planned calibrations: {a['planned']}; committed {a['committed']} ({pct(a['committed_share'])}); "
        f"writer drafts per attempt: {r.get('calibrate_drafts', 1)}; distractor swaps "
        f"{'on' if r.get('calibrate_swaps') else 'off'}"
        + (f"; committed by kind: {', '.join(f'{k} {v}' for k, v in sorted(s['committed_by_kind'].items()))}"
           if s.get("committed_by_kind") else "") + ".", "",
        "Attempts: " + ", ".join(f"{k} {v}" for k, v in sorted(s.get("attempts", {}).items(), key=lambda kv: -kv[1]))
        + ".", "",
        difficulty_line(r), "",
        table(["direction", "edits measured", "committed (share)", "attempts measured",
               "mean Δp(correct), committed", "mean Δp(correct), all measured"], rows), "",
        "Δp(correct) < 0 is harder. An attempt is measured only after the validator passed it (key still right).",
        "", f"Run folder: {r['run_dir']}",
    ])


def difficulty_line(r: dict[str, Any]) -> str:
    """Difficulty against the target before and after: the shares per bucket and the JSD (report.json)."""
    d = r.get("difficulty")
    if not d:
        return "Difficulty before/after: not in the run's report."
    shares = " → ".join(", ".join(f"{b} {pct(v)}" for b, v in side.items()) for side in (d["before"], d["after"]))
    return (f"Difficulty JSD to the target {num(d['jsd_before'])} → {num(d['jsd_after'])} "
            f"({pct(d['jsd_reduction'])} reduction); buckets {shares}; items {d['items_before']} → {d['items_after']}.")


def difficulty_summary(report: dict[str, Any]) -> dict[str, Any] | None:
    """The run's difficulty figures from report.json (metrics_before / metrics_after)."""
    before, after = report.get("metrics_before"), report.get("metrics_after")
    if not before or not after:
        return None
    jsd_before, jsd_after = float(before["difficulty_jsd"]), float(after["difficulty_jsd"])
    return {"jsd_before": jsd_before, "jsd_after": jsd_after,
            "jsd_reduction": (jsd_before - jsd_after) / jsd_before if jsd_before > 0 else None,
            "before": before.get("difficulty", {}), "after": after.get("difficulty", {}),
            "items_before": before.get("items"), "items_after": after.get("items")}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=900)
    parser.add_argument("--n", type=int, default=None, help="items (quick 16, full 40)")
    parser.add_argument("--budget", type=int, default=None, help="tokens (quick 12000, full 40000)")
    parser.add_argument("--max-chars", type=int, default=700)
    parser.add_argument("--panel", nargs="*", default=None, help="panel members (default: the judge alone)")
    parser.add_argument("--calibrate-drafts", type=int, default=RunOptions().calibrate_drafts,
                        help="writer drafts per attempt, measured and the best validated (1 = one unmeasured draft)")
    parser.add_argument("--no-swaps", action="store_true",
                        help="calibrate by stem drafts only (RunOptions.calibrate_swaps off)")
    parser.add_argument("--targets", default=str(UNIFORM_TARGETS),
                        help="difficulty target (evals/targets/calibrate_both_ways.yaml asks every medium item to move)")
    args = parser.parse_args(argv)
    args.tag = args.tag or f"{Op.CALIBRATE.value}{'_quick' if args.quick else ''}"
    n = args.n or (16 if args.quick else 40)
    budget = args.budget or (12000 if args.quick else 40000)
    dataset = mix(n, args.seed, args.max_chars)
    settings = settings_for(args)
    run_id = f"{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Skill labels play no part in a calibrate-only run: the exemplar labeller spares the judge's label call
    # (~425 tokens an item), which had taken most of the deadline before any calibration was tried.
    options = RunOptions(operations=[Op.CALIBRATE.value], panel=args.panel or [], validators=[], dedup="lexical",
                         pilot_per_op=0, validate_suspects=False, skill_method="exemplars",
                         calibrate_drafts=args.calibrate_drafts, calibrate_swaps=not args.no_swaps,
                         **run_choices(args, rounds=1))
    log(f"calibrate: {n} items, budget {budget}")
    started = time.monotonic()
    with deadline(deadline_seconds(args)) as stop:
        run = refine(dataset, budget=budget, targets=load_targets(args.targets), settings=settings,
                     run_id=run_id, options=options)
    store = RunStore(run.run_dir / STORE)
    try:
        summary = summarise(store.edits(), store.outcomes())
    finally:
        store.close()
    result = {"tag": args.tag, "model": model_label(args), "n": n, "budget": budget, "spent": run.spent,
              "panel": args.panel or ["judge"], "seconds": round(time.monotonic() - started, 1),
              "deadline_hit": stop["hit"], "run_dir": str(run.run_dir), "summary": summary,
              "stop_reason": run.report.get("stop_reason", ""), "targets": Path(args.targets).name,
              "difficulty": difficulty_summary(run.report), "calibrate_drafts": args.calibrate_drafts,
              "calibrate_swaps": not args.no_swaps}
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
