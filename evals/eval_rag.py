"""RAG verdict accuracy on the MMLU-Redux dev items that have retrieved Wikipedia contexts
(mmlu_redux/retriever_evaluation: 10 subjects × 100 items with human error labels).

Items labelled `ok` should pass (TPR); items labelled `wrong_groundtruth` (the published key is wrong)
should fail (TNR). The sample is balanced (n/2 each), seeded. Passages come from the built-in
corpus index (which includes the paragraphs BM25 retrieved for these questions) unless `--corpus`
names a user corpus.

    .venv/bin/python evals/eval_rag.py [--n 40] [--quick] [--model qwen2.5-coder-1.5b] [--corpus PATH]

Results JSON goes to evals/results/rag-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path(__file__).resolve().parents[1] / "runs"  # store, ledger, trace of the eval run (git-ignored)
FOLDER = DATA / "mmlu_redux" / "retriever_evaluation"


def load_items(n: int, seed: int) -> list[Any]:
    """n/2 `ok` and n/2 `wrong_groundtruth` QAItems, sampled across the subjects with `seed`."""
    from redux import read_redux_file

    ok, wrong = [], []
    for path in sorted(FOLDER.glob("*_enwiki-paragraphs.csv")):
        subject = path.name.split("gpt-4-turbo_", 1)[1].removesuffix("_enwiki-paragraphs.csv")
        for row in read_redux_file(path, subject=subject):
            item = row.to_qaitem()
            if item is None:
                continue
            item = item.model_copy(update={"id": f"redux-rag:{subject}:{row.row:03d}"})
            if row.error_type == "ok":
                ok.append(item)
            elif row.error_type == "wrong_groundtruth":
                wrong.append(item)
    rng = random.Random(seed)
    n_wrong = min(len(wrong), n // 2)
    oks, wrongs = rng.sample(ok, n - n_wrong), rng.sample(wrong, n_wrong)
    # interleaved, so an interrupted run is still balanced
    return [i for pair in zip(oks, wrongs, strict=False) for i in pair] + oks[len(wrongs):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="items (half ok, half wrong ground truth)")
    parser.add_argument("--quick", action="store_true", help="6 items, for a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--endpoint", default="embedded")
    parser.add_argument("--corpus", default=None, help="user corpus (JSONL or folder); default: built-in")
    parser.add_argument("--k", type=int, default=None, help="passages per item")
    parser.add_argument("--workers", type=int, default=1, help="items in flight (the server has 2 slots)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per model call; on a shared CPU a queued call can wait minutes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.n

    from refinelab.agents.options import RunOptions
    from refinelab.agents.retrieval import get_retriever
    from refinelab.agents.validation.rag import rag_check
    from refinelab.api.context import open_run_context
    from refinelab.config import load_settings
    from refinelab.state import CHECK_ROUND, EditTask

    settings = load_settings(overrides={"roles": {"validator": {
        "model": args.model, "endpoint": args.endpoint, "timeout_s": args.timeout}}})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    options = RunOptions(rag_corpus=args.corpus, **({"rag_k": args.k} if args.k else {}))
    ctx = open_run_context(RUNS / f"eval-rag-{stamp}", settings=settings, options=options)
    items = load_items(n, args.seed)
    t0 = time.monotonic()
    retriever = get_retriever(ctx)  # built or loaded once, before the clock for verdicts starts
    load_s = time.monotonic() - t0

    def check(item: Any) -> dict[str, Any]:
        started = time.monotonic()
        task = EditTask(edit_id=f"eval:{item.id}", item_id=item.id, operation="check", round=CHECK_ROUND)
        verdict = rag_check(ctx, task, item)
        ev = verdict.evidence
        _, subject, row = item.id.split(":")
        own = f"mmlu_redux:{subject}-{int(row) - 1}:"  # corpus ids use the 0-based data row
        return {"id": item.id, "subject": subject, "key_correct": item.metadata["redux_error_type"] == "ok",
                "passed": verdict.passed, "rag_verdict": ev.get("rag_verdict"), "fallback": ev.get("fallback"),
                "supported_option": ev.get("supported_option"), "key": item.answer_letter,
                "passage_ids": ev.get("passage_ids"), "top_score": (ev.get("passages") or [{}])[0].get("score"),
                "own_context_retrieved": any(p.startswith(own) for p in ev.get("passage_ids") or []),
                "tokens": verdict.tokens, "seconds": round(time.monotonic() - started, 2),
                "reason": verdict.reason[:300]}

    out = args.out or RESULTS / f"rag-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []

    def write() -> dict[str, Any]:  # after every item, so an interrupted run keeps its figures
        summary = summarise(rows)
        summary.update(model=args.model, endpoint=args.endpoint, corpus=args.corpus or "built-in",
                       n_items=len(rows), planned=n, seed=args.seed, passages=len(retriever),
                       index_load_s=round(load_s, 1), seconds=round(time.monotonic() - started, 1),
                       spent_tokens=ctx.ledger.spent)
        out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
        return summary

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for done, future in enumerate(as_completed([pool.submit(check, item) for item in items]), 1):
            row = future.result()
            rows.append(row)
            write()
            label = "ok" if row["key_correct"] else "WG"
            print(f"[{done}/{n}] {row['id']} ({label}): rag {row['rag_verdict']}"
                  f"{' → answer check' if row['fallback'] else ''} → {'pass' if row['passed'] else 'fail'}",
                  flush=True)
    summary = write()
    print(json.dumps(summary, indent=2))
    print(f"results: {out}")
    return 0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, TPR (ok items passed), TNR (wrong-key items failed), and how verdicts were reached."""
    pos = [r for r in rows if r["key_correct"]]
    neg = [r for r in rows if not r["key_correct"]]
    tp = sum(r["passed"] for r in pos)
    tn = sum(not r["passed"] for r in neg)
    decided = [r for r in rows if r["rag_verdict"] in ("supported", "contradicted")]
    decided_right = sum(r["passed"] == r["key_correct"] for r in decided)
    return {
        "items": len(rows), "accuracy": round((tp + tn) / max(1, len(rows)), 3),
        "tpr": round(tp / max(1, len(pos)), 3), "tnr": round(tn / max(1, len(neg)), 3),
        "rag_verdicts": dict(Counter(r["rag_verdict"] for r in rows)),
        "rag_decided_share": round(len(decided) / max(1, len(rows)), 3),
        "rag_decided_accuracy": round(decided_right / max(1, len(decided)), 3),
        "fallback_accuracy": round(sum(r["passed"] == r["key_correct"] for r in rows if r["fallback"])
                                   / max(1, sum(bool(r["fallback"]) for r in rows)), 3),
        "own_context_retrieved": round(sum(r["own_context_retrieved"] for r in rows) / max(1, len(rows)), 3),
    }


if __name__ == "__main__":
    sys.exit(main())
