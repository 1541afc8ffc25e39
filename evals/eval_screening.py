"""Error screening from option probabilities, against GPT-4-Turbo's operating point on MMLU-Redux.

Two labelled sets, both read as published from ../shared/data/mmlu_redux:
- dev: the 20 dev subjects' human labels (rows labelled "expert" left out);
- retriever: the 1,000 retriever-evaluation rows, each with the Wikipedia paragraphs GPT-4-Turbo was
  given and its released zero-shot verdict (the anchor: TPR 0.34 at FPR 0.11 on all 1,000 rows).

Every erroneous row is kept and `--ok` ok rows per set are sampled (TPR, FPR and AUROC are rates within
each class, so sampling the ok rows does not bias them; precision is re-weighted to the anchor's 15%
prevalence). The panel answers each item as a probability per option from one-token logprobs in two
option orders (refinelab.agents.panel.probe_member); on the retriever set a `rag:` member reads the same
paragraphs GPT-4 read. Features (metrics/screening_model.item_features) go through a logistic combiner
scored out of fold with folds grouped by subject (no subject is scored by a model fitted on it).

Collected answers live in the eval's run store, so a re-run (or a run with a later deadline) only asks
what is missing; `--deadline` stops asking and scores what was answered (the result says how many).

  .venv/bin/python evals/eval_screening.py --sets dev,retriever --ok 206 --rag-member "" --write-shipped-model
"""

from __future__ import annotations

import argparse
import contextvars
import csv
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import command_line, git_commit, log, table, write_results
from redux import DEFAULT_ROOT, normalise_label, parse_choices, read_redux_dev

from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.panel import answer_panel
from refinelab.api.context import open_run_context
from refinelab.api.screening import shipped_model
from refinelab.config import load_settings
from refinelab.errors import BudgetExhausted
from refinelab.metrics.option_probs import mean_distribution
from refinelab.metrics.screening_model import (
    SHIPPED_FEATURES,
    ScreeningModel,
    auroc,
    fit_screening_model,
    item_features,
    operating_point,
    precision_at_prevalence,
)
from refinelab.schema import QAItem

ANCHOR = {"tpr": 0.34, "fpr": 0.11, "precision": 0.35, "recall": 0.34, "f1": 0.35, "prevalence": 0.15}
CONTEXT_CHARS = 1800  # of GPT-4's paragraphs shown to the rag member (a 1.5B model's context stays small)


@dataclass
class Row:
    id: str
    subject: str
    item: QAItem
    label: str  # "ok" or an error type
    gpt4_flag: bool | None = None
    context: str = ""


def retriever_rows(root: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted((root / "retriever_evaluation").glob("*.csv")):
        subject = path.name.split("gpt-4-turbo_")[1].split("_enwiki")[0]
        with path.open(encoding="utf-8", newline="") as handle:
            for n, rec in enumerate(csv.DictReader(handle), 1):
                try:
                    choices = parse_choices(rec["choices"])
                    item = QAItem(id=f"ret:{subject}:{n}", question=rec["question"], choices=choices,
                                  answer=int(rec["answer"]), subject=subject)
                except (ValueError, KeyError):
                    continue
                rows.append(Row(item.id, subject, item, normalise_label(rec["error_type"]),
                                gpt4_flag=rec["predicted_error_type"].strip() != "ok", context=rec["context"]))
    return rows


def dev_rows(root: Path) -> list[Row]:
    rows = []
    for r in read_redux_dev(root / "dev"):
        item = r.to_qaitem()
        if r.error_type == "expert" or item is None:
            continue
        rows.append(Row(r.id, r.subject, item, r.error_type))
    return rows


def sample(rows: Sequence[Row], ok: int, seed: int) -> list[Row]:
    errors = [r for r in rows if r.label != "ok"]
    oks = [r for r in rows if r.label == "ok"]
    rng = random.Random(seed)
    rng.shuffle(oks)
    chosen = errors + (oks if ok <= 0 else oks[:ok])
    rng.shuffle(chosen)  # errors and ok rows interleaved: a run stopped by its deadline stays balanced
    return chosen


def collect(ctx: Any, rows: Sequence[Row], members: list[str], workers: int, stop_at: float | None) -> dict[str, Any]:
    """Panel evidence per row (from the store when already asked); rows left when the deadline passed are
    skipped. The caller has loaded the rows' set into the store."""
    rows = sorted(rows, key=lambda r: r.subject)  # a subject's rows together: a shared prompt prefix stays cached
    started = time.monotonic()

    def one(row: Row) -> tuple[str, Any] | None:
        stored = ctx.store.diagnostic(row.id, "panel")
        if stored is not None and all(m in stored.evidence.get("answers", {}) for m in members):
            return row.id, stored.evidence
        if stop_at is not None and time.monotonic() > stop_at:
            return None
        try:
            diag = answer_panel(ctx, row.item, members)
        except BudgetExhausted:
            return None
        if diag is None:
            return None
        ctx.store.put_diagnostics([diag])
        return row.id, diag.evidence

    out: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, r) for r in rows]
        for count, future in enumerate(futures, 1):
            got = future.result()
            if got is not None:
                out[got[0]] = got[1]
            if count % 25 == 0 or count == len(futures):
                log(f"  {count}/{len(futures)} rows, {len(out)} answered, {time.monotonic() - started:.0f} s")
    return out


def only_members(evidence: dict[str, Any], members: list[str]) -> dict[str, Any]:
    """The stored panel evidence as if only `members` had answered (pooled re-averaged over them)."""
    probs = {m: p for m, p in (evidence.get("probs") or {}).items() if m in members}
    if not probs:
        raise SystemExit(f"--score-members {members}: none of them answered in the store")
    pooled = mean_distribution([p["p"] for p in probs.values()])
    return {**evidence, "probs": probs, "pooled": pooled,
            "answers": {m: a for m, a in (evidence.get("answers") or {}).items() if m in members}}


def out_of_fold(rows: Sequence[Row], features: list[dict[str, float]], names: list[str]) -> list[float]:
    """p_error for each row from a combiner fitted on the other subjects (grouped folds)."""
    subjects = sorted({r.subject for r in rows})
    folds = [subjects[i::5] for i in range(min(5, len(subjects)))]
    scores = [0.0] * len(rows)
    for held in folds:
        train = [i for i, r in enumerate(rows) if r.subject not in held]
        test = [i for i, r in enumerate(rows) if r.subject in held]
        model = fit_screening_model([features[i] for i in train], [rows[i].label for i in train], features=names)
        for i, p in zip(test, model.p_error([features[i] for i in test]), strict=True):
            scores[i] = p
    return scores


def tpr_at_fpr(scores: Sequence[float], gold: Sequence[bool], fpr: float) -> dict[str, float]:
    ok_scores = sorted((s for s, g in zip(scores, gold, strict=True) if not g), reverse=True)
    allowed = int(fpr * len(ok_scores))
    threshold = ok_scores[allowed] + 1e-12 if allowed < len(ok_scores) else 0.0
    return operating_point(scores, gold, threshold)


def per_type_rates(rows: Sequence[Row], scores: Sequence[float], gold: Sequence[bool], threshold: float,
                   ) -> dict[str, dict[str, Any]]:
    """Per error type against the ok rows: how many, AUROC, and TPR at `threshold` (the FPR 0.11 point)."""
    out: dict[str, dict[str, Any]] = {}
    for etype in sorted({r.label for r in rows} - {"ok"}):
        idx = [i for i, r in enumerate(rows) if r.label in (etype, "ok")]
        sub_scores, sub_gold = [scores[i] for i in idx], [gold[i] for i in idx]
        hits = sum(1 for i in idx if gold[i] and scores[i] >= threshold)
        out[etype] = {"n": sum(sub_gold), "auroc": auroc(sub_scores, sub_gold),
                      "tpr_at_fpr_0.11": hits / max(1, sum(sub_gold))}
    return out


def score_set(name: str, rows: Sequence[Row], evidence: dict[str, Any], members: list[str],
              dev_model: ScreeningModel | None = None, dev_model_note: str = "") -> dict[str, Any]:
    rows = [r for r in rows if r.id in evidence]
    features = [item_features(r.item, evidence[r.id], members) for r in rows]
    names = list(SHIPPED_FEATURES) + ([f"p_key[{m}]" for m in members] if len(members) > 1 else [])
    gold = [r.label != "ok" for r in rows]
    combined = out_of_fold(rows, features, names)
    point = tpr_at_fpr(combined, gold, ANCHOR["fpr"])
    result: dict[str, Any] = {
        "rows": len(rows), "errors": sum(gold), "ok": len(gold) - sum(gold), "members": members,
        "auroc": auroc(combined, gold), "at_fpr_0.11": point,
        "precision_at_15pct_prevalence": precision_at_prevalence(point["tpr"], point["fpr"], ANCHOR["prevalence"]),
        "features": names,
        "single_signals": {f: auroc([-x[f] for x in features], gold)
                           for f in ("pooled_p_key", "pooled_margin", "cl_self_confidence", "min_member_p_key",
                                     "stem_cites_context", "stem_is_question", "key_length_ratio")}
        | {f"p_key[{m}]": auroc([-x[f"p_key[{m}]"] for x in features], gold) for m in members},
    }
    result["per_type"] = per_type_rates(rows, combined, gold, point["threshold"])
    flips = [sum(1 for p in evidence[r.id].get("probs", {}).values() if p.get("flip")) /
             max(1, len(evidence[r.id].get("probs", {}))) for r in rows]
    result["order_flip_rate"] = sum(flips) / len(flips)
    if any(r.gpt4_flag is not None for r in rows):
        g4 = [bool(r.gpt4_flag) for r in rows]
        tp = sum(1 for f, g in zip(g4, gold, strict=True) if f and g)
        fp = sum(1 for f, g in zip(g4, gold, strict=True) if f and not g)
        g4_tpr, g4_fpr = tp / max(1, sum(gold)), fp / max(1, len(gold) - sum(gold))
        ours = tpr_at_fpr(combined, gold, g4_fpr)
        result["gpt4_same_rows"] = {"tpr": g4_tpr, "fpr": g4_fpr,
                                    "precision_at_15pct": precision_at_prevalence(g4_tpr, g4_fpr, 0.15)}
        result["ours_at_gpt4_fpr"] = ours
    if dev_model is not None:  # the combiner fitted on dev's human labels only, applied to these rows unchanged
        held = dev_model.p_error(features)
        result["dev_fitted"] = {"auroc": auroc(held, gold), "at_fpr_0.11": tpr_at_fpr(held, gold, ANCHOR["fpr"]),
                                "note": dev_model_note}
        if "gpt4_same_rows" in result:
            result["dev_fitted"]["at_gpt4_fpr"] = tpr_at_fpr(held, gold, result["gpt4_same_rows"]["fpr"])
    log(f"{name}: {len(rows)} rows, AUROC {result['auroc']:.3f}, TPR {point['tpr']:.2f} at FPR {point['fpr']:.2f}")
    return result


def fit_dev_model(rows: Sequence[Row], evidence: dict[str, Any]) -> ScreeningModel:
    """The member-independent combiner fitted on every answered dev row (human labels); threshold at FPR
    0.11 out of fold (grouped by subject), so its operating point is the one this eval measured."""
    rows = [r for r in rows if r.id in evidence]
    features = [item_features(r.item, evidence[r.id]) for r in rows]
    names = list(SHIPPED_FEATURES)
    oof = out_of_fold(rows, features, names)
    gold = [r.label != "ok" for r in rows]
    model = fit_screening_model(features, [r.label for r in rows], features=names)
    model.threshold = min(0.999, max(1e-6, tpr_at_fpr(oof, gold, ANCHOR["fpr"])["threshold"]))
    model.fitted_on = {"rows": len(rows), "errors": sum(gold), "source": "MMLU-Redux dev (evals/eval_screening.py)",
                       "commit": git_commit(), "auroc_out_of_fold": auroc(oof, gold)}
    return model


def held_out_model(dev: tuple[list[Row], dict[str, Any], list[str]] | None, rows: Sequence[Row],
                   shipped: ScreeningModel | None) -> tuple[ScreeningModel | None, str]:
    """(the dev-fitted combiner to score `rows` with, what it saw). Every retriever-evaluation row's question
    is also a dev row (the 10 retriever subjects are dev subjects), so a combiner fitted on all of dev has
    seen these rows' labels: it is refitted here on the dev rows whose question is not among `rows`. The
    shipped combiner was fitted on all of dev, so with it the result says the rows were not held out."""
    if dev is not None:
        asked = {r.item.question.strip() for r in rows}
        dev_rows_, evidence = dev[0], dev[1]
        kept = [r for r in dev_rows_ if r.item.question.strip() not in asked]
        return fit_dev_model(kept, evidence), (f"{sum(r.id in evidence for r in kept)} dev rows, none of them "
                                                f"these rows' questions")
    if shipped is not None:
        return shipped, ("the shipped combiner, fitted on dev rows that include these rows' questions: "
                         "not held out")
    return None, ""


def write_shipped_model(model: ScreeningModel) -> None:
    path = Path(__file__).resolve().parents[1] / "refinelab" / "data" / "screening_model.json"
    model.save(path)
    log(f"wrote {path} ({model.fitted_on['rows']} rows, out-of-fold AUROC {model.fitted_on['auroc_out_of_fold']})")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Error screening from option probabilities\n\n`{result['command']}` (commit {result['commit']}), "
             f"{result['elapsed_s']:.0f} s, {result['tokens_spent']:,} tokens spent.\n"]
    rows = []
    for name, res in result["sets"].items():
        p = res["at_fpr_0.11"]
        rows.append([name, res["rows"], res["errors"], f"{res['auroc']:.3f}", f"{p['tpr']:.2f}", f"{p['fpr']:.2f}",
                     f"{res['precision_at_15pct_prevalence']:.2f}", f"{res['order_flip_rate']:.2f}"])
    lines.append(table(["set", "rows", "errors", "AUROC", "TPR", "FPR", "P @15%", "order flips"], rows))
    for name, res in result["sets"].items():
        if "gpt4_same_rows" in res:
            g, o = res["gpt4_same_rows"], res["ours_at_gpt4_fpr"]
            lines.append(f"\n{name}, same rows: GPT-4-Turbo + Wikipedia TPR {g['tpr']:.2f} at FPR {g['fpr']:.2f}; "
                         f"ours (fitted out of fold on this set) TPR {o['tpr']:.2f} at FPR {o['fpr']:.2f}.\n")
        if "dev_fitted" in res:
            d = res["dev_fitted"]
            extra = (f"; at GPT-4-Turbo's FPR {d['at_gpt4_fpr']['fpr']:.2f}: TPR {d['at_gpt4_fpr']['tpr']:.2f}"
                     if "at_gpt4_fpr" in d else "")
            lines.append(f"\n{name}, combiner fitted on dev's human labels ({d.get('note', '')}): "
                         f"AUROC {d['auroc']:.3f}, TPR {d['at_fpr_0.11']['tpr']:.2f} at FPR "
                         f"{d['at_fpr_0.11']['fpr']:.2f}{extra}.\n")
        lines.append(f"\n{name} per error type (TPR at the FPR 0.11 threshold, AUROC vs ok):\n")
        lines.append(table(["type", "n", "AUROC", "TPR"], [[t, v["n"], f"{v['auroc']:.3f}" if v["auroc"] else "-",
                                                            f"{v['tpr_at_fpr_0.11']:.2f}"]
                                                           for t, v in res["per_type"].items()]))
        lines.append(f"\n{name} single signals (AUROC): " + ", ".join(
            f"{k} {v:.3f}" for k, v in res["single_signals"].items() if v is not None) + "\n")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ok", type=int, default=300, help="ok rows sampled from dev (0 = all)")
    parser.add_argument("--ok-retriever", type=int, default=0, help="ok rows sampled from the retriever set (0 = all)")
    parser.add_argument("--members", default="qwen2.5-coder-1.5b", help="plain panel members, comma-separated")
    parser.add_argument("--rag-member", default="rag:qwen2.5-coder-1.5b", help="'' = none (retriever set only)")
    parser.add_argument("--sets", default="retriever,dev")
    parser.add_argument("--orders", type=int, default=2)
    parser.add_argument("--shots", type=int, default=0,
                        help="RunOptions.panel_shots: solved examples before each probe, the first of the item's "
                             "subject in the set's file order (use a fresh --work-dir: stored answers are reused)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=0.0, help="seconds of asking per set; 0 = none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="runs/evals/screening")
    parser.add_argument("--cache-path", default=None, help="response cache (default: WORK_DIR/cache.sqlite)")
    parser.add_argument("--budget", type=int, default=None,
                        help="token cap; 1 = score only what the response cache already holds")
    parser.add_argument("--score-members", default=None,
                        help="score as if only these stored members (comma-separated) had answered: the pooled "
                             "distribution is re-averaged over them (e.g. a panel without its rag: member, on the "
                             "same rows, from the same store)")
    parser.add_argument("--tag", default="screening")
    parser.add_argument("--write-shipped-model", action="store_true",
                        help="fit the member-independent combiner on every answered row and write it to "
                             "refinelab/data/screening_model.json (what `refinelab screen` uses uncalibrated)")
    parser.add_argument("--shipped-model", action="store_true",
                        help="without the dev set: score the other sets with the shipped combiner "
                             "(refinelab/data/screening_model.json, fitted on dev's human labels only)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    root = Path(DEFAULT_ROOT)
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    contexts: dict[str, str] = {}
    hooks = RunHooks(passages=lambda item: contexts.get(item.id, "")[:CONTEXT_CHARS])
    cache = args.cache_path or str(Path(args.work_dir) / "cache.sqlite")
    settings = load_settings(overrides={"cache_path": cache})
    ctx = open_run_context(Path(args.work_dir), settings=settings, budget=args.budget, hooks=hooks,
                           options=RunOptions(panel=members, panel_orders=args.orders, panel_shots=args.shots))
    sets = {"retriever": lambda: retriever_rows(root), "dev": lambda: dev_rows(root)}
    results: dict[str, Any] = {}
    collected: dict[str, tuple[list[Row], dict[str, Any], list[str]]] = {}
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in sorted(names, key=lambda n: n != "dev"):  # dev first: its combiner then scores the other set
        every_row = sets[name]()
        ctx.store.load_items([r.item for r in every_row])  # the set as a user has it: file order, every row
        rows = sample(every_row, args.ok if name == "dev" else args.ok_retriever, args.seed)
        set_members = members + ([args.rag_member] if name == "retriever" and args.rag_member else [])
        contexts.update({r.id: r.context for r in rows if r.context})
        log(f"{name}: {len(rows)} rows ({sum(r.label != 'ok' for r in rows)} errors), members {set_members}")
        stop_at = time.monotonic() + args.deadline if args.deadline > 0 else None
        collected[name] = (rows, collect(ctx, rows, set_members, args.workers, stop_at), set_members)
    if args.score_members:
        kept = [m.strip() for m in args.score_members.split(",") if m.strip()]
        collected = {name: (rows, {i: only_members(e, kept) for i, e in evidence.items()}, kept)
                     for name, (rows, evidence, _) in collected.items()}
    dev_model = fit_dev_model(*collected["dev"][:2]) if "dev" in collected else None
    shipped = shipped_model() if dev_model is None and args.shipped_model else None
    if shipped is not None:
        log(f"scoring with the shipped combiner (fitted on {shipped.fitted_on.get('rows')} dev rows)")
    for name, (rows, evidence, set_members) in collected.items():
        if len({r.label != "ok" for r in rows if r.id in evidence}) == 2:
            held, note = (None, "") if name == "dev" else held_out_model(collected.get("dev"), rows, shipped)
            results[name] = score_set(name, rows, evidence, set_members, held, note)
    if args.write_shipped_model and dev_model is not None:
        write_shipped_model(dev_model)
    spent = ctx.ledger.spent
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "sets": results,
              "anchor": ANCHOR, "orders": args.orders, "shots": args.shots, "tokens_spent": spent,
              "elapsed_s": time.monotonic() - started}
    per_set = defaultdict(dict)
    for name, res in results.items():
        per_set[name] = {"auroc": res["auroc"], "tpr": res["at_fpr_0.11"]["tpr"]}
    write_results(args.tag, result, markdown(result))
    print(dict(per_set), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
