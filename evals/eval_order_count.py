"""How many option orders, and does removing the model's letter prior help? Re-scored from stored answers.

`eval_screening.py --orders N` stores, per dev row, the member's aligned distribution in each of N
presentation orders (`per_order`). This script reads that store (no model call) and scores, on the same
rows, p(key) pooled over the first k orders for every k asked, each with and without dividing every order's
distribution by the model's mean distribution over *positions* on this set (contextual calibration /
PriDe: a letter prior estimated from the data itself, no labels), then renormalising. Scores: AUROC of
1 − p(key) against MMLU-Redux's human labels, how often the key is the favourite on ok rows, and the
shipped combiner's features with that p(key), out of fold grouped by subject (as `eval_screening.py`).

  .venv/bin/python evals/eval_screening.py --sets dev --ok 206 --rag-member "" --orders 4 \
      --work-dir runs/evals/screening_orders4 --tag screening_dev_orders4
  .venv/bin/python evals/eval_order_count.py --store runs/evals/screening_orders4/store.sqlite --orders 4
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import command_line, git_commit, log, table, write_results
from eval_screening import ANCHOR, Row, dev_rows, out_of_fold, tpr_at_fpr
from redux import DEFAULT_ROOT

from refinelab.metrics.option_probs import align, mean_distribution, presentation_orders
from refinelab.metrics.screening_model import SHIPPED_FEATURES, auroc, item_features

_FLOOR = 1e-6


def stored_evidence(store: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return {item_id: json.loads(text) for item_id, text in
                db.execute("SELECT item_id, evidence FROM diagnostics WHERE check_name = 'panel'")}


def positional(per_order: Sequence[Sequence[float]], orders: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Each order's distribution over the *positions* it was shown in (stored ones are aligned to options)."""
    return [np.asarray([dist[order[pos]] for pos in range(len(order))], dtype=float)
            for dist, order in zip(per_order, orders, strict=False)]


def letter_prior(rows: Sequence[Row], evidence: dict[str, Any], member: str, orders: list[list[int]]) -> np.ndarray:
    """The mean normalised distribution over positions, per order, across the rows (no labels read)."""
    sums = np.zeros((len(orders), len(orders[0])))
    for r in rows:
        for k, dist in enumerate(positional(evidence[r.id]["probs"][member]["per_order"], orders)):
            sums[k] += dist / max(dist.sum(), _FLOOR)
    return sums / len(rows)


def pooled(row: Row, evidence: dict[str, Any], member: str, orders: list[list[int]], k: int,
           prior: np.ndarray | None) -> np.ndarray:
    """p over the options from the first `k` orders, each divided by `prior` (when given) and renormalised."""
    aligned = []
    for j, dist in enumerate(positional(evidence[row.id]["probs"][member]["per_order"], orders)[:k]):
        dist = dist + _FLOOR
        if prior is not None:
            dist = dist / prior[j]
        aligned.append(align((dist / dist.sum()).tolist(), orders[j]))
    return np.asarray(mean_distribution(aligned))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="an eval_screening.py run store (dev set)")
    parser.add_argument("--orders", type=int, required=True, help="the --orders that run asked")
    parser.add_argument("--member", default="qwen2.5-coder-1.5b")
    parser.add_argument("--tag", default="order_count_dev")
    args = parser.parse_args(argv)
    started = time.monotonic()
    evidence = stored_evidence(Path(args.store))
    rows = [r for r in dev_rows(Path(DEFAULT_ROOT)) if len(r.item.choices) == 4 and args.member in
            (evidence.get(r.id, {}).get("probs") or {})
            and len(evidence[r.id]["probs"][args.member].get("per_order") or []) == args.orders]
    if not rows:
        sys.exit(f"{args.store}: no dev row with {args.orders} stored orders of {args.member}")
    orders = presentation_orders(4, args.orders)
    prior = letter_prior(rows, evidence, args.member, orders)
    gold = [r.label != "ok" for r in rows]
    log(f"{len(rows)} rows ({sum(gold)} errors), {args.orders} orders; letter prior per order {prior.round(3).tolist()}")
    variants = []
    for k in sorted({2, args.orders}):
        for debiased in (False, True):
            dists = [pooled(r, evidence, args.member, orders, k, prior if debiased else None) for r in rows]
            p_key = [float(d[r.item.answer]) for d, r in zip(dists, rows, strict=True)]
            features = []
            for r, p in zip(rows, p_key, strict=True):
                features.append(item_features(r.item, evidence[r.id]) | {"pooled_p_key": p})
            combined = out_of_fold(rows, features, list(SHIPPED_FEATURES))
            variants.append({
                "orders": k, "letter_prior_removed": debiased,
                "p_key_auroc": auroc([-p for p in p_key], gold),
                "key_favourite_on_ok": float(np.mean([int(np.argmax(d)) == r.item.answer
                                                      for d, r, g in zip(dists, rows, gold, strict=True) if not g])),
                "combiner_auroc": auroc(combined, gold),
                "combiner_tpr_at_fpr_0.11": tpr_at_fpr(combined, gold, ANCHOR["fpr"])["tpr"],
            })
            log(f"  {variants[-1]}")
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "rows": len(rows),
              "errors": sum(gold), "member": args.member, "letter_prior": prior.round(4).tolist(),
              "variants": variants, "elapsed_s": time.monotonic() - started}
    md = [f"# Option orders and the letter prior ({args.tag})\n",
          f"{len(rows)} MMLU-Redux dev rows ({sum(gold)} errors), member {args.member}, re-scored from "
          f"`{args.store}` (no model call). Letter prior (mean distribution over positions A–D, per order): "
          + "; ".join(f"order {k + 1} " + " ".join(f"{v:.3f}" for v in row) for k, row in enumerate(prior)) + ".\n",
          table(["orders pooled", "letter prior removed", "p(key) AUROC", "key favourite on ok rows",
                 "combiner AUROC (out of fold)", "TPR at FPR 0.11"],
                [[v["orders"], "yes" if v["letter_prior_removed"] else "no", f"{v['p_key_auroc']:.3f}",
                  f"{v['key_favourite_on_ok']:.3f}", f"{v['combiner_auroc']:.3f}",
                  f"{v['combiner_tpr_at_fpr_0.11']:.2f}"] for v in variants])]
    write_results(args.tag, result, "\n".join(md))
    return result


if __name__ == "__main__":
    main()
