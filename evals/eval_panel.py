"""Model-panel evaluation before and after refinement: accuracy gaps and ranking consistency.

A benchmark is used to rank models. Here the local models (smollm2-135m, qwen2.5-coder-0.5b,
qwen2.5-coder-1.5b, each `ModelSpec(endpoint="embedded", model=...)` through a budgeted, cached
`ChatClient`, as agents/panel.py asks them) answer every item of the original set and of the refined
set of one refinement run, scored against each set's own keys. We report:

- accuracy per model on each set, and the gaps between models (spread, mean pairwise |gap|);
- ranking consistency: the Kendall tau between the model ranking on a bootstrap resample of the items
  and the ranking on the whole set, averaged over resamples, and the share of resamples that reproduce
  the whole-set ranking exactly; plus, per pair of models, how often the better one stays ahead.

The paper's claim is that the refined set separates models more clearly and ranks them more
consistently. Default input: the run folder of the latest wrong-key correction eval (its original set
carries injected wrong keys, which blur every model's score), or `--run DIR` for any finished run.

    python evals/eval_panel.py --quick
    python evals/eval_panel.py --run runs/evals/correction-... --bootstrap 2000
"""

from __future__ import annotations

import argparse
import contextvars
import itertools
import json
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    EMBEDDED,
    RESULTS,
    add_common_args,
    deadline,
    deadline_seconds,
    log,
    num,
    pct,
    run_choices,
    settings_for,
    table,
    write_results,
)
from scipy.stats import kendalltau  # noqa: E402

from refinelab.agents.options import RunOptions  # noqa: E402
from refinelab.agents.panel import ask_member  # noqa: E402
from refinelab.api.context import open_run_context  # noqa: E402
from refinelab.errors import BudgetExhausted  # noqa: E402
from refinelab.io import read_jsonl  # noqa: E402
from refinelab.run_layout import REFINED, STORE
from refinelab.schema import QAItem  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402

#: The embedded members this eval asks when no --members are named: the three shipped local models, so
#: their agreement with each other can be compared. The product's panels differ (agents/difficulty.py:
#: the judge alone; api/screening.py: the 1.5B the shipped screen was fitted on).
DEFAULT_PANEL = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


def latest_run(tags: Sequence[str]) -> Path | None:
    """The run folder named by the newest of evals/results/<tag>.json."""
    found = [(p.stat().st_mtime, p) for t in tags if (p := RESULTS / f"{t}.json").exists()]
    for _, path in sorted(found, reverse=True):
        run_dir = Path(json.loads(path.read_text()).get("run_dir", ""))
        if (run_dir / REFINED).exists():
            return run_dir
    return None


def load_sets(run_dir: Path) -> tuple[list[QAItem], list[QAItem]]:
    store = RunStore(run_dir / STORE)
    try:
        original = [QAItem.model_validate_json(row) for row in store.original_items()]
    finally:
        store.close()
    return original, list(read_jsonl(run_dir / REFINED))


def answer_all(ctx: Any, members: list[str], items: list[QAItem], workers: int) -> dict[str, dict[str, int | None]]:
    """members → item id → chosen option (None: no usable answer or out of time). Identical items on both
    sets give identical prompts, so they are asked once (the response cache)."""
    answers: dict[str, dict[str, int | None]] = {m: {} for m in members}

    def one(member: str, item: QAItem) -> tuple[str, str, int | None]:
        try:
            return member, item.id + "|" + item.model_dump_json(), ask_member(ctx, member, item).choice
        except BudgetExhausted:
            return member, item.id + "|" + item.model_dump_json(), None

    jobs = [(m, i) for m in members for i in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, m, i) for m, i in jobs]
        for count, future in enumerate(futures, 1):
            member, key, choice = future.result()
            answers[member][key] = choice
            if count % 10 == 0 or count == len(futures):
                log(f"  panel answers {count}/{len(futures)}")
    return answers


def key_of(item: QAItem) -> str:
    return item.id + "|" + item.model_dump_json()


def correctness(members: list[str], items: list[QAItem], answers: dict[str, dict[str, int | None]]) -> np.ndarray:
    """members x items matrix of 0/1 (no answer counts as wrong)."""
    return np.array([[float(answers[m].get(key_of(i)) == i.answer) for i in items] for m in members])


def rank_stats(matrix: np.ndarray, members: list[str], resamples: int, seed: int) -> dict[str, Any]:
    """Accuracies, gaps and bootstrap ranking consistency for one set."""
    acc = matrix.mean(axis=1)
    n = matrix.shape[1]
    rng = np.random.default_rng(seed)
    taus, exact = [], 0
    ahead = {f"{a} vs {b}": 0 for a, b in itertools.combinations(members, 2)}
    full_order = np.argsort(-acc, kind="stable")
    for _ in range(resamples):
        sample = matrix[:, rng.integers(0, n, n)].mean(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-tied accuracies: tau is undefined (NaN), left out
            tau = kendalltau(acc, sample).statistic
        if not np.isnan(tau):
            taus.append(float(tau))
        exact += bool(np.array_equal(np.argsort(-sample, kind="stable"), full_order))
        for (i, a), (j, b) in itertools.combinations(enumerate(members), 2):
            better, worse = (i, j) if acc[i] >= acc[j] else (j, i)
            ahead[f"{a} vs {b}"] += sample[better] > sample[worse]
    gaps = [abs(acc[i] - acc[j]) for i, j in itertools.combinations(range(len(members)), 2)]
    return {
        "accuracy": {m: float(a) for m, a in zip(members, acc, strict=True)},
        "ranking": [members[k] for k in full_order],
        "spread": float(acc.max() - acc.min()), "mean_abs_gap": float(np.mean(gaps)) if gaps else 0.0,
        "kendall_tau_mean": float(np.mean(taus)) if taus else None,
        "kendall_tau_sd": float(np.std(taus)) if taus else None, "tau_defined": len(taus),
        "same_ranking_share": exact / resamples,
        "pair_stays_ahead": {k: v / resamples for k, v in ahead.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    o, r = result["original"], result["refined"]
    members = result["members"]
    rows = [[m, pct(o["accuracy"][m]), pct(r["accuracy"][m])] for m in members]
    rows += [["spread (best − worst)", pct(o["spread"]), pct(r["spread"])],
             ["mean pairwise |gap|", pct(o["mean_abs_gap"]), pct(r["mean_abs_gap"])],
             ["ranking", " > ".join(o["ranking"]), " > ".join(r["ranking"])],
             [f"Kendall tau vs whole set ({result['bootstrap']} bootstrap resamples)",
              f"{num(o['kendall_tau_mean'])} ± {num(o['kendall_tau_sd'])}",
              f"{num(r['kendall_tau_mean'])} ± {num(r['kendall_tau_sd'])}"],
             ["resamples with the whole-set ranking", pct(o["same_ranking_share"]), pct(r["same_ranking_share"])]]
    rows += [[f"{pair}: resamples where the whole-set leader stays strictly ahead", pct(o["pair_stays_ahead"][pair]), pct(r["pair_stays_ahead"][pair])]
             for pair in o["pair_stays_ahead"]]
    return "\n".join([
        f"# Model panel on the original vs the refined set ({result['tag']})", "",
        f"Run: {result['run_dir']} ({result['n_original']} original items, {result['n_refined']} refined, "
        f"{result['changed']} changed); models answer with a letter (agents/panel.py, temperature 0); "
        f"{result['calls']} calls, {result['tokens']:,} tokens; unanswered: {result['unanswered']}"
        + (" (wall-clock deadline)" if result["deadline_hit"] else "") + f"; {result['elapsed_s']} s.", "",
        table(["", "original", "refined"], rows), "",
        "Accuracy is against each set's own keys. Paper: the refined set separates models more clearly and "
        "ranks them more consistently. With a few dozen items the bootstrap intervals are wide; read the "
        "direction, not the decimals.",
    ])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=600)
    parser.add_argument("--run", default=None, help="a finished run folder (default: the latest correction eval's)")
    parser.add_argument("--members", default=None,
                        help="comma-separated panel (default: the three embedded models; with --endpoint, MODEL@URL "
                             "names or just the --model)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    args.tag = args.tag or ("panel_quick" if args.quick else "panel")
    run_dir = Path(args.run) if args.run else latest_run(
        ["correction_quick", "correction"] if args.quick else ["correction", "correction_quick"])
    if run_dir is None:
        parser.error("no finished run: pass --run DIR or run evals/eval_correction.py first")
    if args.members:
        members = [m.strip() for m in args.members.split(",") if m.strip()]
    elif args.endpoint == EMBEDDED:
        members = list(DEFAULT_PANEL)
    else:
        members = [f"{args.model}@{args.endpoint}"]
    original, refined = load_sets(run_dir)
    started = time.monotonic()
    distinct = {key_of(i): i for i in [*original, *refined]}
    changed = len(set(map(key_of, refined)) - set(map(key_of, original)))
    log(f"panel: {len(members)} models x {len(distinct)} distinct items ({len(original)} original, {len(refined)} refined)")
    work = Path(tempfile.mkdtemp(prefix="eval-panel-", dir=Path(args.runs_dir).mkdir(parents=True, exist_ok=True) or args.runs_dir))
    ctx = open_run_context(work, settings=settings_for(args), options=RunOptions(panel=members, **run_choices(args)))
    # the same items, in the same order, for both sets: distinct() keeps insertion order
    with deadline(deadline_seconds(args)) as stop:
        answers = answer_all(ctx, members, list(distinct.values()), args.workers)
    unanswered = {m: sum(v is None for v in a.values()) for m, a in answers.items()}
    random.seed(args.seed)
    stats = {name: rank_stats(correctness(members, items, answers), members, args.bootstrap, args.seed)
             for name, items in (("original", original), ("refined", refined))}
    ledger = ctx.ledger.summary()
    result = {
        "tag": args.tag, "run_dir": str(run_dir), "members": members, "n_original": len(original),
        "n_refined": len(refined), "changed": changed, "bootstrap": args.bootstrap, "calls": ledger["calls"],
        "tokens": ledger["spent"], "unanswered": unanswered, "deadline_hit": stop["hit"],
        "elapsed_s": round(time.monotonic() - started, 1), **stats,
        "answers": {m: {k.split("|", 1)[0] + ("" if k in map(key_of, original) else " (refined)"): v
                        for k, v in a.items()} for m, a in answers.items()},
        "headline": {f"{name}_{k}": stats[name][k] for name in ("original", "refined")
                     for k in ("spread", "kendall_tau_mean", "same_ranking_share")},
    }
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
