"""Distractor diversity before and after `rewrite_distractors`, with validity kept.

Diversity is metrics/distractors.py's: the mean pairwise cosine distance among an item's distractors,
embedded with MiniLM (tools/embeddings.py), averaged over items (`mean_diversity`, the paper's
"diversity doubled" metric). The set is the `--n` items with the weakest distractor score in a pool of
MMLU items (the items a user would want rewritten; a random set mostly holds items the planner leaves
alone because their distractors are already fine). It is refined with `rewrite_distractors` only.

The rewrite asks the writer for distractors only (3x over-generated), drops paraphrases of the key and
chooses the most diverse, plausible set (agents/distractor_rewrite.py); an edit is committed only when the validator
passes it (an independent answer must match the key) and the measured diversity rose
(agents/validation/measured.py); we also check that the key's text and the stem are unchanged.
Functional distractors: the share picked by the panel at least 5% of the time (option probabilities when
the panel measures them, else votes), measured by a profile-only run before and after; read with every item
re-measured, with the unedited items as first measured (the edits alone: the same text does not read
identically twice, and an item at the 5% line can cross it with no edit), and on the rewritten items.
`--rescore TAG` reads a stored run's figures again without a model call. Reported: mean
diversity of the set before/after (ratio), the same on the rewritten items only, validator pass rate
(committed / attempted edits), key kept.

    python evals/eval_distractors.py --quick
    python evals/eval_distractors.py --n 40 --pool 600 --budget 80000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    PAPER,
    RESULTS,
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
from refinelab.io import read_jsonl  # noqa: E402
from refinelab.metrics.distractors import (  # noqa: E402
    PickRates,
    functional_share,
    panel_pick_rates,
    score_distractors,
)
from refinelab.metrics.targets import Targets  # noqa: E402
from refinelab.operations import Op  # noqa: E402
from refinelab.run_layout import REFINED, STORE
from refinelab.schema import Dataset, QAItem, normalise_text  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402

SUBJECTS = ("high_school_biology", "high_school_geography", "astronomy", "marketing", "nutrition",
            "high_school_psychology", "sociology", "world_religions")


def measure_pick_rates(items: Sequence[QAItem], args: argparse.Namespace, tag: str) -> dict[str, PickRates]:
    """Per item, the panel's pick rate per option and the number of responses behind it: a profile-only
    dry run with the panel (`--panel`, the judge alone by default)."""
    settings = settings_for(args)
    run_id = f"distractors-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    options = RunOptions(dry_run=True, operations=[Op.REWRITE_DISTRACTORS.value], panel=args.panel or [],
                         validate_suspects=False, validators=[], dedup="lexical", **run_choices(args, rounds=1))
    run = refine(Dataset(list(items), name=tag), budget=10**9, targets=Targets(), settings=settings, run_id=run_id,
                 options=options)
    return read_pick_rates(run.run_dir, items)


def read_pick_rates(run_dir: Path, items: Sequence[QAItem]) -> dict[str, PickRates]:
    """The pick rates a profile-only run stored for `items`: option probabilities (logprobs) when the
    panel measured them, else its votes."""
    store = RunStore(run_dir / STORE)
    try:
        panel = {d.item_id: d for d in store.diagnostics("panel")}
    finally:
        store.close()
    out: dict[str, PickRates] = {}
    for item in items:
        diag = panel.get(item.id)
        measured = panel_pick_rates(diag.evidence, len(item.choices)) if diag is not None else None
        if measured is not None:
            out[item.id] = measured
    return out


def mean_functional(items: Sequence[QAItem], rates: dict[str, PickRates]) -> float | None:
    values = [functional_share(rates[i.id].rates, i.answer) for i in items if i.id in rates]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def functional_figures(items: Sequence[QAItem], refined: Sequence[QAItem], edited: set[str],
                       rates_before: dict[str, PickRates], rates_after: dict[str, PickRates]) -> dict[str, Any]:
    """Functional distractors before and after, read three ways. Every item re-measured is the plain
    figure; but the judge's probabilities for an unchanged text are not identical from run to run, and an
    item sitting at the 5% line can flip between the two measurements with no edit. So the figure for the
    edits alone carries each unedited item's first measurement over, and the rewritten items are also
    reported on their own; the unedited items whose share moved are listed."""
    carried = {i.id: rates for i in refined
               if (rates := (rates_after if i.id in edited else rates_before).get(i.id)) is not None}
    by_id = {i.id: i for i in items}
    moved = [i.id for i in refined if i.id not in edited and i.id in rates_before and i.id in rates_after
             and functional_share(rates_before[i.id].rates, by_id[i.id].answer)
             != functional_share(rates_after[i.id].rates, i.answer)]
    return {
        "functional_before": mean_functional(items, rates_before),
        "functional_after": mean_functional(refined, rates_after),
        "functional_after_edits_only": mean_functional(refined, carried),
        "functional_rewritten_before": mean_functional([i for i in items if i.id in edited], rates_before),
        "functional_rewritten_after": mean_functional([i for i in refined if i.id in edited], rates_after),
        "functional_moved_unedited": moved,
    }


def embedder() -> Any:
    from refinelab.tools.embeddings import get_embedder

    model = get_embedder()
    return lambda texts: np.asarray(model.embed(list(texts)))


def diversity_by_item(items: Sequence[QAItem], embed: Any) -> dict[str, float]:
    return {d.item_id: float(d.evidence["diversity"]) for d in score_distractors(items, embed=embed)
            if "diversity" in d.evidence}


def weakest(pool: Sequence[QAItem], n: int, embed: Any, max_chars: int) -> list[QAItem]:
    """The `n` pool items with the least diverse distractors among those the planner would consider for a
    rewrite (distractor score <= 0.7, ApplicabilityPolicy's threshold)."""
    short = [i for i in pool if len(i.render()) <= max_chars]
    scored = [d for d in score_distractors(short, embed=embed) if d.score <= 0.7 and "diversity" in d.evidence]
    scored.sort(key=lambda d: (d.evidence["diversity"], d.item_id))
    wanted = {d.item_id for d in scored[:n]}
    return [i for i in short if i.id in wanted]


def markdown(result: dict[str, Any]) -> str:
    s = result["scores"]
    rows = [
        ["mean distractor diversity, whole set", f"{num(s['set_before'])} → {num(s['set_after'])}",
         f"x{num(s['set_ratio'], 2)}", PAPER["diversity"]],
        ["mean distractor diversity, rewritten items", f"{num(s['edited_before'])} → {num(s['edited_after'])}",
         f"x{num(s['edited_ratio'], 2)}", ""],
        ["validator pass rate (committed / attempted edits)", f"{s['committed']}/{s['attempted']}",
         pct(s["pass_rate"]), ""],
        ["committed rewrites with the key text unchanged", f"{s['key_kept']}/{s['committed']}", pct(s["key_kept_rate"]), ""],
        ["committed rewrites with the option count unchanged", f"{s['count_kept']}/{s['committed']}",
         pct(s["count_kept_rate"]), ""],
        ["committed rewrites with the stem unchanged", f"{s['stem_kept']}/{s['committed']}", pct(s["stem_kept_rate"]), ""],
        ["functional distractors (panel pick rate >= 5%), whole set, every item re-measured",
         f"{pct(s.get('functional_before'))} → {pct(s.get('functional_after'))}",
         f"panel {', '.join(s.get('panel', []))}, {s.get('panel_responses_per_item', 0)} response(s)/item", ""],
    ]
    if "functional_after_edits_only" in s:
        moved = s["functional_moved_unedited"]
        rows += [
            ["functional distractors, whole set, unedited items as first measured (the edits alone)",
             f"{pct(s.get('functional_before'))} → {pct(s.get('functional_after_edits_only'))}",
             f"unedited items whose share moved between the two measurements: {', '.join(moved) or 'none'}", ""],
            ["functional distractors, rewritten items",
             f"{pct(s.get('functional_rewritten_before'))} → {pct(s.get('functional_rewritten_after'))}", "", ""],
        ]
    examples = []
    for ex in s["examples"][:2]:
        examples += [f"- `{ex['id']}` diversity {num(ex['before'])} → {num(ex['after'])}: "
                     f"{ex['choices_before']} → {ex['choices_after']}"]
    return "\n".join([
        f"# Distractor diversity before/after rewrite_distractors ({result['tag']})", "",
        f"{result['n']} MMLU items with the least diverse distractors (score <= 0.7) from a pool of {result['pool']} "
        f"({', '.join(result['subjects'])}); model: {result['model']}; budget {result['budget']:,}, spent "
        f"{result['spent']:,}; stop: {result['stop_reason'] or '—'}" + (" (wall-clock deadline)" if result["deadline_hit"] else "")
        + f"; {result['elapsed_s']} s.", "",
        table(["figure", "before → after", "change", "paper"], rows), "",
        "Diversity = mean pairwise cosine distance among an item's distractors (MiniLM embeddings).", "",
        "Examples:", "", *(examples or ["- none committed"]), "", f"Run folder: {result['run_dir']}",
        *([f"\nThe run: `{made['command']}` (commit {made['commit']}, {made['finished']}); its functional figures "
           "were read again from the stored panel runs by the command below, with no model call."]
          if (made := result.get("run_made_by")) else []),
    ])


def rescore(tag: str) -> dict[str, Any]:
    """Read the functional figures of an earlier run (`evals/results/TAG.json`) again from its refine run and
    the two profile-only runs it stored, with no model call, and rewrite its results: how the figures of
    runs made before `functional_figures` read three ways were added."""
    result = json.loads((RESULTS / f"{tag}.json").read_text(encoding="utf-8"))
    run_dir = Path(result["run_dir"])

    def panel_run(which: str) -> Path:
        found = sorted(run_dir.parent.glob(f"distractors-{tag}-panel-{which}-*"))
        if not found:
            raise SystemExit(f"no stored panel-{which} run of {tag} under {run_dir.parent}")
        return found[-1]

    per_item = result["scores"]["per_item"]
    pool = {i.id: i for i in mmlu()}
    items = [pool[row["id"]] for row in per_item]
    refined = list(read_jsonl(run_dir / REFINED))
    edited = {row["id"] for row in per_item if row["rewritten"]}
    result["scores"].update(functional_figures(items, refined, edited, read_pick_rates(panel_run("before"), items),
                                               read_pick_rates(panel_run("after"), refined)))
    result.setdefault("run_made_by", {k: result.get(k) for k in ("command", "commit", "finished")})
    for key in ("command", "commit", "finished"):
        result.pop(key, None)
    write_results(tag, result, markdown(result))
    print(markdown(result))
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=600)
    parser.add_argument("--n", type=int, default=None, help="items (quick 6, full 40)")
    parser.add_argument("--pool", type=int, default=None, help="pool items per subject to pick from (quick 30, full 80)")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument("--max-chars", type=int, default=None, help="longest rendered item (quick 400, full 2000)")
    parser.add_argument("--budget", type=int, default=None, help="token budget (quick 9000, full 80000)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--panel", nargs="*", default=None,
                        help="panel measuring pick rates (functional distractors); default: the judge alone")
    parser.add_argument("--no-functional", action="store_true", help="skip the pick-rate measurement")
    parser.add_argument("--rescore", metavar="TAG", help="read an earlier run's functional figures again from its "
                        "stored runs (no model call) and rewrite evals/results/TAG.*")
    args = parser.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore)
    args.tag = args.tag or ("distractors_quick" if args.quick else "distractors")
    n = args.n or (6 if args.quick else 40)
    per_subject = args.pool or (30 if args.quick else 80)
    budget = args.budget or (9000 if args.quick else 80000)
    max_chars = args.max_chars or (400 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 2)
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    started = time.monotonic()
    groups = by_subject(mmlu())
    pool = [i for s in subjects for i in groups[s][:per_subject]]
    embed = embedder()
    items = weakest(pool, n, embed, max_chars)
    before = diversity_by_item(items, embed)
    log(f"distractors: {len(items)} items from a pool of {len(pool)}, mean diversity {np.mean(list(before.values())):.3f}")
    settings = settings_for(args)
    run_id = f"distractors-{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    options = RunOptions(operations=[Op.REWRITE_DISTRACTORS.value], distractors=True, validators=[], dedup="lexical",
                         pilot_per_op=0, **run_choices(args, rounds=rounds))
    with deadline(deadline_seconds(args)) as stop:
        run = refine(Dataset(items, name="mmlu-weak-distractors"), budget=budget, targets=Targets(), settings=settings,
                     run_id=run_id, options=options)
    refined = list(read_jsonl(run.refined_path))
    after = diversity_by_item(refined, embed)
    store = RunStore(run.run_dir / STORE)
    try:
        outcomes = [o for o in store.outcomes() if o["operation"] == Op.REWRITE_DISTRACTORS]
    finally:
        store.close()
    original = {i.id: i for i in items}
    committed = [o for o in outcomes if o["status"] == "committed"]
    edited = {o["item_id"] for o in committed}
    functional: dict[str, Any] = {"functional_before": None, "functional_after": None}
    responses = 0
    if not args.no_functional:
        with deadline(deadline_seconds(args)):
            rates_before = measure_pick_rates(items, args, f"{args.tag}-panel-before")
            rates_after = measure_pick_rates(refined, args, f"{args.tag}-panel-after")
        functional = functional_figures(items, refined, edited, rates_before, rates_after)
        responses = max((n for _, n in rates_before.values()), default=0)
    final = {i.id: i for i in refined}
    key_kept = sum(normalise_text(final[i].answer_text) == normalise_text(original[i].answer_text) for i in edited if i in final)
    count_kept = sum(len(final[i].choices) == len(original[i].choices) for i in edited if i in final)
    stem_kept = sum(normalise_text(final[i].question) == normalise_text(original[i].question) for i in edited if i in final)
    set_before = mean_diversity_of(before)
    set_after = mean_diversity_of(after)
    edited_before = mean_diversity_of({k: v for k, v in before.items() if k in edited})
    edited_after = mean_diversity_of({k: v for k, v in after.items() if k in edited})
    scores = {
        "set_before": set_before, "set_after": set_after, "set_ratio": ratio(set_before, set_after),
        "edited_before": edited_before, "edited_after": edited_after, "edited_ratio": ratio(edited_before, edited_after),
        "attempted": len(outcomes), "committed": len(committed),
        "pass_rate": len(committed) / len(outcomes) if outcomes else None,
        "key_kept": key_kept, "key_kept_rate": key_kept / len(edited) if edited else None,
        "count_kept": count_kept, "count_kept_rate": count_kept / len(edited) if edited else None,
        "stem_kept": stem_kept, "stem_kept_rate": stem_kept / len(edited) if edited else None,
        **functional,
        "panel_responses_per_item": responses, "panel": args.panel or ["judge"],
        "per_item": [{"id": i.id, "before": before.get(i.id), "after": after.get(i.id), "rewritten": i.id in edited}
                     for i in items],
        "examples": [{"id": i, "before": before.get(i), "after": after.get(i),
                      "choices_before": original[i].choices, "choices_after": final[i].choices}
                     for i in sorted(edited) if i in final],
    }
    result = {
        "tag": args.tag, "model": model_label(args), "n": len(items), "pool": len(pool), "subjects": subjects,
        "budget": budget, "spent": run.spent, "stop_reason": run.report.get("stop_reason", ""),
        "deadline_hit": stop["hit"], "run_dir": str(run.run_dir), "elapsed_s": round(time.monotonic() - started, 1),
        "scores": scores, "headline": {k: scores[k] for k in ("set_ratio", "edited_ratio", "pass_rate", "key_kept_rate")},
    }
    write_results(args.tag, result, markdown(result))
    print(markdown(result))
    return result


def mean_diversity_of(values: dict[str, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def ratio(before: float | None, after: float | None) -> float | None:
    return after / before if before and after is not None else None


if __name__ == "__main__":
    main()
