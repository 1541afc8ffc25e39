"""Does `screen --calibrate` predict its own precision and recall? Checked against MMLU-Redux's human labels.

Calibration sees no labels: it plants errors into a sample of (unlabelled) dev items, fits the combiner,
chooses the threshold and predicts precision and recall at the assumed prevalence (default 0.1). The
prediction is then compared with what the human labels show when the fitted model screens the labelled
dev rows the panel has answered (`evals/eval_screening.py --sets dev` stores those answers; this script
asks only for the planted copies). The calibration sample is drawn from a pool at dev's own prevalence
(every answered ok row and as many erroneous ones as 10.3% gives), as a user's data would be; the check
runs on every answered row, precision read at dev's prevalence.

Each `--seeds` value draws another sample and plants anew (new panel calls for its planted copies). The
overall recall weights the error types by MMLU-Redux's mix (`refinelab/data/error_mix.json`, written by
`--write-error-mix` from dev's labels: for this check that prior is in-sample, so every row is also shown
with the types weighted equally, the prior-free reading).

  .venv/bin/python evals/eval_calibration.py --sample 120 --seeds 0,1     # evals/results/calibration_dev.*
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import command_line, git_commit, log, table, write_results
from eval_screening import Row, dev_rows
from redux import DEFAULT_ROOT

from refinelab.agents.options import RunOptions
from refinelab.api.context import open_run_context
from refinelab.api.screening import calibrate
from refinelab.config import load_settings
from refinelab.metrics.error_checks import ERROR_TYPES
from refinelab.metrics.screen_calibration import EQUAL_MIX, ERROR_MIX_FILE, choose_threshold
from refinelab.metrics.screening_model import (
    ScreeningModel,
    item_features,
    operating_point,
    precision_at_prevalence,
)

GOAL = 0.1  # the bar: predicted within ±0.1 of what the labels show


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=120, help="dev items the calibration plants errors into")
    parser.add_argument("--members", default="qwen2.5-coder-1.5b")
    parser.add_argument("--prevalence", type=float, default=0.1)
    parser.add_argument("--target-precision", type=float, default=0.5)
    parser.add_argument("--seeds", default="0", help="calibration samples, comma-separated seeds")
    parser.add_argument("--work-dir", default="runs/evals/screening")
    parser.add_argument("--write-error-mix", action="store_true",
                        help=f"write refinelab/data/{ERROR_MIX_FILE} from dev's human labels first")
    parser.add_argument("--tag", default="calibration_dev")
    args = parser.parse_args(argv)
    started = time.monotonic()
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    rows = dev_rows(Path(DEFAULT_ROOT))
    if args.write_error_mix:
        write_error_mix(rows)
    settings = load_settings(overrides={"cache_path": str(Path(args.work_dir) / "cache.sqlite")})
    ctx = open_run_context(Path(args.work_dir), settings=settings, options=RunOptions(panel=members))
    answered = [(r, d.evidence) for r in rows if (d := ctx.store.diagnostic(r.id, "panel")) is not None
                and all(m in d.evidence.get("answers", {}) for m in members)]
    log(f"{len(answered)} labelled dev rows answered by {members}")
    dev_prevalence = sum(r.label != "ok" for r in rows) / len(rows)
    features = [item_features(r.item, ev, members) for r, ev in answered]
    spent_before = ctx.ledger.spent
    runs = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        pool = natural_pool(rows, answered, seed)
        log(f"seed {seed}: pool of {len(pool)} answered rows at dev's prevalence "
            f"({sum(1 for r in pool if r.label != 'ok')} erroneous), sample {args.sample}")
        record = calibrate(ctx, [r.item for r in pool], members, sample=args.sample, seed=seed,
                           target_precision=args.target_precision, prevalence=args.prevalence)
        model = ScreeningModel.from_json(record["model"])
        scores = model.p_error(features)
        shipped_mix = {"mix": record["error_mix"]["source"], "target_reached": record["target_reached"],
                       "predicted": record["estimates"]["overall"], "predicted_per_type": record["estimates"]["per_type"],
                       "threshold": model.threshold}
        equal = choose_threshold(record["scores"]["planted"], record["scores"]["clean"], EQUAL_MIX,
                                 args.prevalence, args.target_precision)
        equal_mix = {"mix": EQUAL_MIX.source, "target_reached": equal["target_reached"],
                     "predicted": {k: equal[k] for k in ("precision", "recall", "fpr")},
                     "predicted_per_type": equal["per_type"], "threshold": equal["threshold"]}
        readings = []
        for reading in (shipped_mix, equal_mix):
            reading["actual"], reading["actual_per_type"] = labelled_outcome(answered, scores, reading["threshold"],
                                                                             dev_prevalence)
            reading["gaps"] = {k: round(reading["predicted"][k] - reading["actual"][k], 3)
                               for k in ("precision", "recall")}
            reading["within_goal"] = all(abs(v) <= GOAL for v in reading["gaps"].values())
            readings.append(reading)
        runs.append({"seed": seed, "sample": record["sample"], "readings": readings})
        log(f"seed {seed}: predicted P {shipped_mix['predicted']['precision']:.2f} "
            f"R {shipped_mix['predicted']['recall']:.2f}; actual P {shipped_mix['actual']['precision']:.2f} "
            f"R {shipped_mix['actual']['recall']:.2f}")
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "members": members,
              "prevalence_assumed": args.prevalence, "dev_prevalence": dev_prevalence,
              "target_precision": args.target_precision, "answered_rows": len(answered), "runs": runs,
              "tokens_spent": ctx.ledger.spent - spent_before, "elapsed_s": time.monotonic() - started}
    write_results(args.tag, result, markdown(result))
    return result


def labelled_outcome(answered: Sequence[tuple[Row, Any]], scores: Sequence[float], threshold: float,
                     dev_prevalence: float) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What the human labels show for `score >= threshold` on the answered rows: recall over the errors,
    FPR over the ok rows, precision at dev's own prevalence (the answered rows keep every error but only a
    sample of the ok ones)."""
    flagged = [s >= threshold for s in scores]
    gold = [r.label != "ok" for r, _ in answered]
    point = operating_point(scores, gold, threshold)
    recall, fpr = point["recall"], point["fpr"]
    overall = {"precision": round(precision_at_prevalence(recall, fpr, dev_prevalence), 3), "recall": round(recall, 3),
               "fpr": round(fpr, 3), "flagged": sum(flagged), "rows": len(gold)}
    per_type = {}
    for etype in ERROR_TYPES:
        idx = [k for k, (r, _) in enumerate(answered) if r.label == etype]
        if idx:
            per_type[etype] = {"n": len(idx), "recall": round(sum(flagged[k] for k in idx) / len(idx), 3)}
    return overall, per_type


def natural_pool(rows: Sequence[Row], answered: Sequence[tuple[Row, Any]], seed: int) -> list[Row]:
    """The answered rows a user's dataset would hold: every answered ok row and as many erroneous ones as
    dev's own prevalence gives (the answered rows keep every error, half of them: a calibration sample drawn
    from those would see five times the real share of errors)."""
    prevalence = sum(r.label != "ok" for r in rows) / len(rows)
    oks = [r for r, _ in answered if r.label == "ok"]
    errors = [r for r, _ in answered if r.label != "ok"]
    rng = random.Random(seed)
    wanted = round(len(oks) * prevalence / (1 - prevalence))
    pool = oks + rng.sample(errors, min(wanted, len(errors)))
    rng.shuffle(pool)
    return pool


def write_error_mix(rows: Sequence[Row]) -> None:
    counts = Counter(r.label for r in rows if r.label != "ok")
    total = sum(counts.values())
    data = {"weights": {t: round(counts[t] / total, 4) for t in ERROR_TYPES if counts[t]},
            "source": f"MMLU-Redux dev, 20 subjects, human labels: {total} erroneous rows of {len(rows)} "
                      "(evals/eval_calibration.py --write-error-mix)"}
    path = Path(__file__).resolve().parents[1] / "refinelab" / "data" / ERROR_MIX_FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {path}: {data['weights']}")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Calibration check on MMLU-Redux dev\n\n`{result['command']}` (commit {result['commit']}), "
             f"{result['elapsed_s']:.0f} s, {result['tokens_spent']:,} tokens for the planted copies.\n",
             f"The labelled check: {result['answered_rows']} answered dev rows (every error, a sample of the ok "
             f"rows), precision read at dev's prevalence {result['dev_prevalence']:.3f} (assumed by --calibrate: "
             f"{result['prevalence_assumed']}); target precision {result['target_precision']}. Goal: predicted "
             f"within ±{GOAL} of the labels.\n"]
    rows = []
    for run in result["runs"]:
        for reading in run["readings"]:
            p, a = reading["predicted"], reading["actual"]
            rows.append([run["seed"], reading["mix"].split(":")[0], "yes" if reading["target_reached"] else "no (best F1)",
                         f"{reading['threshold']:.3f}", f"{p['precision']:.2f} / {a['precision']:.2f}",
                         f"{p['recall']:.2f} / {a['recall']:.2f}", f"{p['fpr']:.2f} / {a['fpr']:.2f}", a["flagged"],
                         "yes" if reading["within_goal"] else "no"])
    lines.append(table(["seed", "error mix", "target reached", "threshold", "precision pred / actual",
                        "recall pred / actual", "FPR pred / actual", "flagged", "within ±0.1"], rows))
    first = result["runs"][0]["readings"][0]
    lines.append(f"\nPer error type, seed {result['runs'][0]['seed']}, MMLU-Redux mix (recall predicted from the "
                 "planted copies / shown by the labels):\n")
    lines.append(table(["type", "planted n", "labelled n", "recall pred / actual"],
                       [[t, first["predicted_per_type"].get(t, {}).get("n", "-"), v["n"],
                         f"{first['predicted_per_type'].get(t, {}).get('recall', float('nan')):.2f} / {v['recall']:.2f}"]
                        for t, v in first["actual_per_type"].items()]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
