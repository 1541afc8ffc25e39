"""Does asking "is this option correct?" per option add evidence to screening? (MMLU-Redux dev)

The letter probe (panel_probe) asks a model to pick one option; a 1.5B model's pick flips with the option
order on 70% of dev items, so most of what it measures is letter bias. The verification probe
(panel_verify) shows the item and one proposed answer as text and reads p(Yes) from the first token: no
letter to be biased towards, and each option judged on its own, which is what "no correct answer" and
"several correct answers" errors need.

This eval collects both on the same dev rows as eval_screening.py (every erroneous row, `--ok` ok rows,
same seed and sample), derives verification features, and scores them alone and added to the shipped
combiner's features, out of fold with folds grouped by subject (no subject scored by a model fitted on it).
The prompt is `evals/prompts/panel_verify.yaml`, read through the prompt-override folder (`prompts_dir`),
so the product's pack is untouched.

Outcome with the embedded qwen2.5-coder-1.5b (results/verify_probe_dev.md): no gain. Verification alone
separates errors at AUROC 0.54; added to the shipped features the combiner reads 0.646 against 0.650
without it. Its top option is the key on 38% of the ok rows (the letter probe: 39%), and it too favours
the first option. So the probe is not in the product.

  .venv/bin/python evals/eval_verify_probe.py --ok 206 --tag verify_probe_dev
"""

from __future__ import annotations

import argparse
import contextvars
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import command_line, git_commit, log, table, write_results
from eval_screening import ANCHOR, collect, dev_rows, out_of_fold, per_type_rates, sample, tpr_at_fpr
from redux import DEFAULT_ROOT

from refinelab.agents.options import RunOptions
from refinelab.agents.panel import member_client
from refinelab.api.context import open_run_context
from refinelab.config import load_settings
from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.metrics.screening_model import SHIPPED_FEATURES, auroc, item_features
from refinelab.tools.ledger import CallTag

PROMPTS = Path(__file__).resolve().parent / "prompts"  # panel_verify.yaml: this eval's prompt, not the product's
VERIFY_FEATURES = ("verify_p_key", "verify_share_key", "verify_max_other", "verify_key_minus_other",
                   "verify_n_yes")


def yes_probability(top_logprobs: Sequence[tuple[str, float]]) -> float | None:
    """p(Yes) / (p(Yes) + p(No)) over the first token's alternatives; None when neither was among them.
    (Options are shown as the dataset has them, not fenced: MMLU-Redux dev, not untrusted input.)"""
    yes = sum(math.exp(lp) for tok, lp in top_logprobs if tok.strip().strip(".:*").lower() == "yes")
    no = sum(math.exp(lp) for tok, lp in top_logprobs if tok.strip().strip(".:*").lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


def verify_item(ctx: Any, member: str, item: Any) -> list[float | None]:
    client = member_client(ctx, member)
    pack = ctx.pack(item)
    out: list[float | None] = []
    for i, option in enumerate(item.choices):
        messages = pack.messages("panel_verify", item=item, proposed=option)
        try:
            result = client.first_token_logprobs(messages, CallTag(node="profile", operation="verify",
                                                                   item_id=f"{item.id}#{i}"))
        except LLMCallFailed:
            out.append(None)
            continue
        out.append(yes_probability(result.top_logprobs or []))
    return out


def verify_features(p_yes: Sequence[float | None], key: int) -> dict[str, float]:
    p = [0.5 if v is None else v for v in p_yes]
    others = [v for i, v in enumerate(p) if i != key]
    return {"verify_p_key": p[key], "verify_share_key": p[key] / max(1e-6, sum(p)),
            "verify_max_other": max(others, default=0.0), "verify_key_minus_other": p[key] - max(others, default=0.0),
            "verify_n_yes": float(sum(v > 0.5 for v in p))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ok", type=int, default=206)
    parser.add_argument("--member", default="qwen2.5-coder-1.5b")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="first N sampled rows only (0 = all)")
    parser.add_argument("--work-dir", default="runs/evals/screening")
    parser.add_argument("--tag", default="verify_probe_dev")
    args = parser.parse_args(argv)
    started = time.monotonic()
    settings = load_settings(overrides={"cache_path": str(Path(args.work_dir) / "cache.sqlite")})
    ctx = open_run_context(Path(args.work_dir), settings=settings, budget=None, prompts_dir=str(PROMPTS),
                           options=RunOptions(panel=[args.member], panel_orders=2))
    rows = sample(dev_rows(Path(DEFAULT_ROOT)), args.ok, args.seed)
    if args.limit:
        rows = rows[: args.limit]
    log(f"dev: {len(rows)} rows ({sum(r.label != 'ok' for r in rows)} errors)")
    evidence = collect(ctx, rows, [args.member], args.workers, None)
    verified: dict[str, list[float | None]] = {}

    def one(row: Any) -> None:
        try:
            verified[row.id] = verify_item(ctx, args.member, row.item)
        except BudgetExhausted:
            return

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, r) for r in rows]
        for n, f in enumerate(futures, 1):
            f.result()
            if n % 25 == 0:
                log(f"  verified {n}/{len(rows)}, {time.monotonic() - started:.0f} s")
    rows = [r for r in rows if r.id in evidence and r.id in verified]
    gold = [r.label != "ok" for r in rows]
    feats = []
    for r in rows:
        f = item_features(r.item, evidence[r.id])
        f.update(verify_features(verified[r.id], r.item.answer))
        feats.append(f)
    sets = {"shipped (letter probe + text)": list(SHIPPED_FEATURES),
            "verify alone": ["verify_p_key", "verify_max_other"],
            "shipped + verify_p_key": [*SHIPPED_FEATURES, "verify_p_key"],
            "shipped + verify key, max other": [*SHIPPED_FEATURES, "verify_p_key", "verify_max_other"],
            "shipped + verify share": [*SHIPPED_FEATURES, "verify_share_key"],
            "shipped + all verify": [*SHIPPED_FEATURES, *VERIFY_FEATURES]}
    combos: dict[str, Any] = {}
    for name, names in sets.items():
        scores = out_of_fold(rows, feats, names)
        point = tpr_at_fpr(scores, gold, ANCHOR["fpr"])
        combos[name] = {"features": names, "auroc": auroc(scores, gold), "tpr": point["tpr"], "fpr": point["fpr"],
                        "per_type": per_type_rates(rows, scores, gold, point["threshold"])}
        log(f"{name}: AUROC {combos[name]['auroc']:.3f}, TPR {point['tpr']:.2f} at FPR {point['fpr']:.2f}")
    singles = {f: auroc([-x[f] for x in feats], gold) for f in ("pooled_p_key", *VERIFY_FEATURES)}
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "rows": len(rows),
              "errors": sum(gold), "member": args.member, "combiners": combos, "single_signals_auroc": singles,
              "tokens_spent": ctx.ledger.spent, "elapsed_s": time.monotonic() - started,
              "per_item": {r.id: {"label": r.label, "p_yes": verified[r.id], "pooled": evidence[r.id].get("pooled")}
                           for r in rows}}
    lines = [f"# Verification probe on MMLU-Redux dev\n\n`{result['command']}` (commit {result['commit']}), "
             f"{result['elapsed_s']:.0f} s, {result['tokens_spent']:,} tokens; {len(rows)} rows, {sum(gold)} errors; "
             "combiners out of fold, folds grouped by subject.\n",
             table(["features", "AUROC", "TPR @ FPR 0.11"],
                   [[k, f"{v['auroc']:.3f}", f"{v['tpr']:.2f}"] for k, v in combos.items()]),
             "\nSingle signals (AUROC, lower value = error): " + ", ".join(
                 f"{k} {v:.3f}" for k, v in singles.items() if v is not None) + "\n",
             "\nPer error type, best combiner by AUROC:\n"]
    best = max(combos, key=lambda k: combos[k]["auroc"] or 0)
    lines.append(table(["type", "n", "AUROC", "TPR"], [[t, v["n"], f"{v['auroc']:.3f}", f"{v['tpr_at_fpr_0.11']:.2f}"]
                                                       for t, v in combos[best]["per_type"].items()]))
    write_results(args.tag, result, "\n".join(lines) + "\n")
    print({k: round(v["auroc"], 3) for k, v in combos.items()}, file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
