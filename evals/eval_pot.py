"""PoT verdict accuracy: GSM8K and SVAMP word problems turned into 4-option MCQs, each checked once with
its correct key and once with a corrupted key (the key points to a distractor).

A good validator passes the correct key (TPR) and fails the corrupted one (TNR). The PoT prompt never
shows the key, so the two versions of a question share one program (the second comes from the response
cache): the figures are over 2n verdicts from n programs.

    .venv/bin/python evals/eval_pot.py [--n 40] [--quick] [--model qwen2.5-coder-1.5b] [--endpoint embedded]

Defaults to the embedded model (llama.cpp on 127.0.0.1, reused if running). Results JSON goes to
evals/results/pot-<time>.json.
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


def fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def distractors(value: float, rng: random.Random) -> list[float]:
    """Three plausible wrong answers: off-by-one, doubled/halved, ±10% — the usual slips."""
    integral = float(value).is_integer()
    pool = [value + 1, value - 1, value * 2, value + 10, value - 10, round(value * 1.5, 2),
            round(value * 0.9, 2), round(value * 1.1, 2)]
    if integral and value % 2 == 0:
        pool.append(value / 2)
    if integral:
        pool = [p for p in pool if float(p).is_integer()]
    seen = {fmt(value)}
    out: list[float] = []
    rng.shuffle(pool)
    for p in pool:
        if (value >= 0 and p < 0) or fmt(p) in seen:
            continue
        seen.add(fmt(p))
        out.append(p)
        if len(out) == 3:
            break
    return out


def load_problems(n: int, seed: int) -> list[dict[str, Any]]:
    """n problems, half GSM8K test, half SVAMP, sampled with `seed`."""
    rng = random.Random(seed)
    gsm = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines() if line.strip()]
    svamp = json.loads((DATA / "svamp" / "SVAMP.json").read_text())
    first, second = [], []
    for i in rng.sample(range(len(gsm)), n - n // 2):
        answer = float(gsm[i]["answer"].split("####")[-1].strip().replace(",", ""))
        first.append({"id": f"gsm8k:{i + 1}", "question": gsm[i]["question"], "value": answer})
    for i in rng.sample(range(len(svamp)), n // 2):
        row = svamp[i]
        text = f"{row['Body'].strip().rstrip('.')}. {row['Question'].strip()}"
        second.append({"id": f"svamp:{row['ID']}", "question": text, "value": float(row["Answer"])})
    # interleaved, so an interrupted run still covers both sets
    return [p for pair in zip(first, second, strict=False) for p in pair] + first[len(second):]


def to_items(problem: dict[str, Any], seed: int) -> tuple[Any, Any]:
    """(correct-key item, corrupted-key item) with the same options in the same order."""
    from refinelab.schema import QAItem

    rng = random.Random(f"{seed}:{problem['id']}")
    options = [problem["value"], *distractors(problem["value"], rng)]
    rng.shuffle(options)
    choices = [fmt(v) for v in options]
    key = choices.index(fmt(problem["value"]))
    wrong = rng.choice([i for i in range(len(choices)) if i != key])
    base = {"question": problem["question"], "choices": choices, "subject": "elementary_mathematics"}
    return (QAItem(id=f"{problem['id']}:ok", answer=key, **base),
            QAItem(id=f"{problem['id']}:corrupt", answer=wrong, **base))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="questions (half GSM8K, half SVAMP)")
    parser.add_argument("--quick", action="store_true", help="6 questions, for a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--endpoint", default="embedded")
    parser.add_argument("--workers", type=int, default=1, help="items in flight (the server has 2 slots)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per model call; on a shared CPU a queued call can wait minutes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.n

    from refinelab.agents.validation.pot import pot_check
    from refinelab.api.context import open_run_context
    from refinelab.config import load_settings
    from refinelab.state import CHECK_ROUND, EditTask

    settings = load_settings(overrides={"roles": {"validator": {
        "model": args.model, "endpoint": args.endpoint, "timeout_s": args.timeout}}})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ctx = open_run_context(RUNS / f"eval-pot-{stamp}", settings=settings)
    problems = load_problems(n, args.seed)

    def check(problem: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for item, key_correct in zip(to_items(problem, args.seed), (True, False), strict=True):
            started = time.monotonic()
            task = EditTask(edit_id=f"eval:{item.id}", item_id=item.id, operation="check", round=CHECK_ROUND)
            verdict = pot_check(ctx, task, item)
            ev = verdict.evidence
            rows.append({"id": item.id, "source": item.id.split(":")[0], "key_correct": key_correct,
                         "passed": verdict.passed, "outcome": ev.get("outcome"), "result": ev.get("result"),
                         "matched_option": ev.get("matched_option"), "key": item.answer_letter,
                         "choices": item.choices, "attempts": len(ev.get("attempts", [])),
                         "fallback": ev.get("fallback"), "code": ev.get("code"), "tokens": verdict.tokens,
                         "seconds": round(time.monotonic() - started, 2), "reason": verdict.reason[:300]})
        return rows

    out = args.out or RESULTS / f"pot-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []

    def write() -> dict[str, Any]:  # after every question, so an interrupted run keeps its figures
        summary = summarise(rows)
        summary.update(model=args.model, endpoint=args.endpoint, n_questions=len(rows) // 2, planned=n,
                       seed=args.seed, seconds=round(time.monotonic() - started, 1), spent_tokens=ctx.ledger.spent)
        out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
        return summary

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for done, future in enumerate(as_completed([pool.submit(check, p) for p in problems]), 1):
            ok, bad = future.result()
            rows.extend([ok, bad])
            summary = write()
            print(f"[{done}/{n}] {ok['id'].rsplit(':', 1)[0]}: computed {ok['result']!r} "
                  f"({ok['outcome']}) correct-key {'PASS' if ok['passed'] else 'fail'}, "
                  f"corrupted-key {'pass' if bad['passed'] else 'FAIL'}", flush=True)
    summary = write()
    print(json.dumps(summary, indent=2))
    print(f"results: {out}")
    return 0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, TPR (correct keys passed), TNR (corrupted keys failed), overall and per source."""

    def figures(subset: list[dict[str, Any]]) -> dict[str, Any]:
        pos = [r for r in subset if r["key_correct"]]
        neg = [r for r in subset if not r["key_correct"]]
        tp = sum(r["passed"] for r in pos)
        tn = sum(not r["passed"] for r in neg)
        return {"verdicts": len(subset), "accuracy": round((tp + tn) / max(1, len(subset)), 3),
                "tpr": round(tp / max(1, len(pos)), 3), "tnr": round(tn / max(1, len(neg)), 3)}

    out = figures(rows)
    out["by_source"] = {s: figures([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})}
    out["outcomes"] = dict(Counter(r["outcome"] for r in rows if r["key_correct"]))
    out["computed_correctly"] = round(sum(r["outcome"] == "match_key" for r in rows if r["key_correct"])
                                      / max(1, sum(r["key_correct"] for r in rows)), 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
