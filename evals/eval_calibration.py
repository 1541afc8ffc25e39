"""Does `screen --calibrate` predict its own precision and recall? Checked against MMLU-Redux's human labels.

Calibration sees no labels: it plants errors into a sample of (unlabelled) dev items, fits the combiner
and predicts precision and recall at the assumed prevalence (default 0.1). The prediction is then
compared with what the human labels show when the fitted model screens the labelled dev rows the panel
has answered (`evals/eval_screening.py --sets dev` stores those answers; this script asks only for the
planted copies). Sampled rows are drawn from all dev rows, erroneous ones included, as a user's data
would be.

  .venv/bin/python evals/eval_calibration.py --sample 40     # evals/results/calibration_dev.*
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import command_line, git_commit, log, table, write_results
from eval_screening import dev_rows
from redux import DEFAULT_ROOT

from refinelab.agents.options import RunOptions
from refinelab.api.context import open_run_context
from refinelab.api.screening import calibrate
from refinelab.config import load_settings
from refinelab.metrics.error_checks import ERROR_TYPES
from refinelab.metrics.screening_model import ScreeningModel, item_features, precision_at_prevalence


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=40, help="dev items the calibration plants errors into")
    parser.add_argument("--members", default="qwen2.5-coder-1.5b")
    parser.add_argument("--prevalence", type=float, default=0.1)
    parser.add_argument("--target-precision", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="runs/evals/screening")
    parser.add_argument("--tag", default="calibration_dev")
    args = parser.parse_args(argv)
    started = time.monotonic()
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    settings = load_settings(overrides={"cache_path": str(Path(args.work_dir) / "cache.sqlite")})
    ctx = open_run_context(Path(args.work_dir), settings=settings, options=RunOptions(panel=members))
    rows = dev_rows(Path(DEFAULT_ROOT))
    answered = [(r, d.evidence) for r in rows if (d := ctx.store.diagnostic(r.id, "panel")) is not None
                and all(m in d.evidence.get("answers", {}) for m in members)]
    log(f"{len(answered)} labelled dev rows answered by {members}")
    spent_before = ctx.ledger.spent
    pool = [r.item for r, _ in answered]
    random.Random(args.seed).shuffle(pool)
    record = calibrate(ctx, pool, members, sample=args.sample, seed=args.seed,
                       target_precision=args.target_precision, prevalence=args.prevalence)
    model = ScreeningModel.from_json(record["model"])
    features = [item_features(r.item, ev, members) for r, ev in answered]
    p = model.p_error(features)
    flagged = [x >= model.threshold for x in p]
    gold = [r.label != "ok" for r, _ in answered]
    tp = sum(f and g for f, g in zip(flagged, gold, strict=True))
    fp = sum(f and not g for f, g in zip(flagged, gold, strict=True))
    tpr, fpr = tp / max(1, sum(gold)), fp / max(1, len(gold) - sum(gold))
    # the answered rows keep every error but a sample of the ok ones: precision is read at dev's own
    # prevalence (all its rows), which is what a user screening the whole set would see
    dev_prevalence = sum(r.label != "ok" for r in rows) / len(rows)
    actual = {"precision": precision_at_prevalence(tpr, fpr, dev_prevalence), "recall": tpr, "fpr": fpr,
              "precision_in_sample": tp / max(1, tp + fp), "prevalence": dev_prevalence,
              "flagged": sum(flagged), "rows": len(gold)}
    per_type = {}
    for etype in ERROR_TYPES:
        idx = [k for k, (r, _) in enumerate(answered) if r.label == etype]
        if idx:
            per_type[etype] = {"n": len(idx), "actual_recall": sum(flagged[k] for k in idx) / len(idx),
                               "predicted_recall": record["estimates"]["per_type"].get(etype, {}).get("recall")}
    predicted = record["estimates"]["overall"]
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "members": members,
              "predicted": predicted, "actual": actual, "per_type": per_type, "threshold": model.threshold,
              "sample": record["sample"], "prevalence_assumed": args.prevalence,
              "gaps": {"precision": predicted["precision"] - actual["precision"],
                       "recall": predicted["recall"] - actual["recall"]},
              "tokens_spent": ctx.ledger.spent - spent_before, "elapsed_s": time.monotonic() - started}
    md = [f"# Calibration check on MMLU-Redux dev\n\n`{result['command']}` (commit {result['commit']}), "
          f"{result['elapsed_s']:.0f} s, {result['tokens_spent']:,} tokens for the planted copies.\n",
          table(["", "precision", "recall"],
                [["predicted by --calibrate", f"{predicted['precision']:.2f}", f"{predicted['recall']:.2f}"],
                 ["human labels", f"{actual['precision']:.2f}", f"{actual['recall']:.2f}"]]),
          f"\n{actual['rows']} labelled rows answered (every error, a sample of the ok rows); precision read at "
          f"dev's own prevalence {actual['prevalence']:.3f} (assumed by --calibrate: {args.prevalence}); "
          f"threshold {model.threshold:.3f}; {actual['flagged']} flagged; FPR {actual['fpr']:.3f}.\n",
          table(["type", "n", "predicted recall", "actual recall"],
                [[t, v["n"], "-" if v["predicted_recall"] is None else f"{v['predicted_recall']:.2f}",
                  f"{v['actual_recall']:.2f}"] for t, v in per_type.items()])]
    write_results(args.tag, result, "\n".join(md))
    log(f"predicted P {predicted['precision']:.2f} R {predicted['recall']:.2f}; "
        f"actual P {actual['precision']:.2f} R {actual['recall']:.2f}")
    return result


if __name__ == "__main__":
    main()
