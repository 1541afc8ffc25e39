"""`refine --decontaminate`: a training set that leaked part of a benchmark, refined against that benchmark.

The set: `--n` MMLU val items (other questions than MMLU test's by construction, though MMLU repeats a few)
with `--planted` MMLU test items mixed in, edited the way leaked items are (as they are, options reordered,
punctuation and case changed, one or two words of the stem changed; `eval_overlap.py`'s edits). The reference:
the whole MMLU test split (14,042 rows). One real run on the chosen model (`refine(..., decontaminate=...)`),
then its output is looked for in the reference again. Measured:

- planted items found and removed (recall), by edit;
- val items removed, each with its match, for a reader to judge (MMLU's own val/test repeats are real leaks);
- the run around it: items in and out, new items the planner bought for the freed cells, coverage JSD before
  and after, tokens, and whether the profile spent anything on the removed items (it must not);
- the refined set against the reference: original items left in it (must be 0) and new items the writer made
  that the reference holds (a 1.5B writer shown the set's items could reproduce a benchmark question).

  .venv/bin/python evals/eval_decontaminate.py --n 75 --planted 25 --budget 50000 --tag decontaminate
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from common import (
    add_common_args,
    deadline,
    deadline_seconds,
    log,
    model_label,
    num,
    pct,
    reduction,
    run_choices,
    settings_for,
    table,
    write_results,
)
from eval_overlap import change_words, punctuate, reorder

from refinelab.agents.options import RunOptions
from refinelab.api import refine
from refinelab.api.overlap import find_overlap
from refinelab.io import load_dataset, read_jsonl
from refinelab.run_layout import CHANGES, REFINED, STORE
from refinelab.schema import Dataset, QAItem

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EDITS = {"as is": lambda item, rng: item, "options reordered": reorder, "punctuation and case": punctuate,
         "one or two words": change_words}


def leaked_set(n: int, planted: int, seed: int) -> tuple[Dataset, dict[str, tuple[str, str]]]:
    """`n` MMLU val items and `planted` MMLU test items edited by turns; returns the set (shuffled) and, per
    planted item's id, (the test item it came from, the edit)."""
    rng = random.Random(seed)
    val = load_dataset(DATA / "mmlu" / "val", on_invalid="quarantine").items
    test = load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine").items
    items: list[QAItem] = rng.sample(val, n)
    truth: dict[str, tuple[str, str]] = {}
    names = list(EDITS)
    for k, source in enumerate(rng.sample(test, planted)):
        edit = names[k % len(names)]
        leaked = EDITS[edit](source, rng).model_copy(update={"id": f"leaked-{k}"})
        items.append(leaked)
        truth[leaked.id] = (source.id, edit)
    rng.shuffle(items)
    return Dataset(items, name=f"mmlu-val-{n}-leaked-{planted}"), truth


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=900, deadline_full=3600)
    parser.add_argument("--n", type=int, default=75, help="MMLU val items in the set")
    parser.add_argument("--planted", type=int, default=25, help="MMLU test items planted in it, edited")
    parser.add_argument("--budget", type=int, default=50_000, help="the run's token budget, profiling included")
    parser.add_argument("--pilot", type=int, default=RunOptions().pilot_per_op,
                        help="pilot edits per operation before the first plan (0: the catalogue's priors)")
    args = parser.parse_args()
    args.tag = args.tag or "decontaminate"
    dataset, truth = leaked_set(args.n, args.planted, args.seed)
    reference = DATA / "mmlu" / "test"
    started = time.monotonic()
    run_id = f"{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    log(f"decontaminate: {len(dataset)} items ({args.planted} planted) against {reference}, budget {args.budget}")
    with deadline(deadline_seconds(args)) as stop:
        result = refine(dataset, budget=args.budget, settings=settings_for(args), run_id=run_id,
                        options=RunOptions(pilot_per_op=args.pilot, **run_choices(args, rounds=2)),
                        decontaminate=reference)
    seconds = round(time.monotonic() - started, 1)
    report = result.report
    changes = [c for c in read_jsonl_dicts(result.run_dir / CHANGES)
               if (c.get("evidence") or {}).get("method") == "overlap"]
    removed = {c["item_id"]: c for c in changes}
    found_by_edit = {edit: [sum(1 for i, (_s, e) in truth.items() if e == edit and i in removed),
                            sum(1 for _s, e in truth.values() if e == edit)] for edit in EDITS}
    planted_right = sum(1 for i, (source, _e) in truth.items()
                        if i in removed and removed[i]["evidence"]["reference_id"] == source)
    val_removed = [c for i, c in removed.items() if i not in truth]
    profiled_removed = sum(1 for i in removed if profiled(result.run_dir, i))
    log("looking for the refined set in the reference")
    refined = read_jsonl(result.run_dir / REFINED)
    after = find_overlap(refined, reference)
    input_ids = {i.id for i in dataset.items}
    originals_left = [m for m in after.matches if m.item_id in input_ids]
    new_found = [m for m in after.matches if m.item_id not in input_ids]
    before_m, after_m = report["metrics_before"], report["metrics_after"]
    out = {
        "tag": args.tag, "model": model_label(args), "n": args.n, "planted": args.planted, "budget": args.budget,
        "pilot_per_op": args.pilot,
        "run_dir": str(result.run_dir), "seconds": seconds, "deadline_hit": stop["hit"],
        "stop_reason": report.get("stop_reason"), "spent": result.spent, "by_node": report["ledger"].get("by_node"),
        "decontamination": report.get("decontamination"), "found_by_edit": found_by_edit,
        "planted_found": sum(v[0] for v in found_by_edit.values()), "planted_matched_to_source": planted_right,
        "val_removed": [{"item_id": c["item_id"], "reference_id": c["evidence"]["reference_id"],
                         "kind": c["evidence"]["kind"], "similarity": c["evidence"]["similarity"],
                         "same_key": c["evidence"]["same_key"], "question": c["before"]["question"],
                         "reference_question": c["evidence"]["reference_question"]} for c in val_removed],
        "removed_items_profiled": profiled_removed,
        "items_by_status": report.get("items_by_status"), "new_items": report.get("new_items"),
        "input_items": report.get("input_items"), "output_items": report.get("output_items"),
        "outcomes": report["edits"]["outcomes"],
        "coverage_jsd": [before_m.get("coverage_jsd"), after_m.get("coverage_jsd")],
        "difficulty_jsd": [before_m.get("difficulty_jsd"), after_m.get("difficulty_jsd")],
        "refined_in_reference": {"original_items": len(originals_left),
                                 "original_matches": [m.item_id for m in originals_left], "new_items": len(new_found),
                                 "new_matches": [{"item_id": m.item_id, "reference_id": m.reference_id,
                                                  "kind": m.kind, "similarity": m.similarity,
                                                  "question": m.question} for m in new_found]},
    }
    write_results(args.tag, out, markdown(out))
    print(markdown(out))
    return out


def read_jsonl_dicts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def profiled(run_dir: Path, item_id: str) -> bool:
    """Whether profiling measured the item (an error or label diagnostic): a removed item must have none."""
    from refinelab.tools.store import RunStore

    store = RunStore(run_dir / STORE)
    try:
        return any(store.diagnostic(item_id, check) is not None for check in ("error", "label", "difficulty", "panel", "distractors"))
    finally:
        store.close()


def markdown(r: dict[str, Any]) -> str:
    d = r["decontamination"] or {}
    reference_items = d.get("reference_items") or sum(x.get("reference_items", 0) for x in d.get("references", []))
    lines = [f"# `refine --decontaminate`: a leaked training set against MMLU test ({r['model']})", "",
             f"{r['n']} MMLU val items with {r['planted']} MMLU test items planted, edited by turns; reference: "
             f"the MMLU test split ({reference_items:,} items). One run, budget {r['budget']:,} tokens "
             f"(profiling included), pilot {r.get('pilot_per_op', 0)} edits per operation"
             f"{' (the catalogue priors price the plan)' if not r.get('pilot_per_op') else ''}, {r['seconds']:.0f} s; stop: {r['stop_reason']}"
             + (" (the wall-clock deadline cut it)" if r["deadline_hit"] else "") + ".", "",
             "## Found and removed before profiling", "",
             table(["planted as", "found", "of"], [[k, v[0], v[1]] for k, v in r["found_by_edit"].items()]), "",
             f"Planted items found: **{r['planted_found']} of {r['planted']}**, each matched to the test item it "
             f"came from: {r['planted_matched_to_source']}. By kind: {d.get('counts')}. Val items removed: "
             f"{len(r['val_removed'])} (MMLU repeats some test questions in val; each below for a reader to judge). "
             f"Removed items that profiling measured: {r['removed_items_profiled']} (must be 0).", ""]
    if r["val_removed"]:
        lines += [table(["val item", "test item", "kind", "similarity", "same key", "question"],
                        [[v["item_id"], v["reference_id"], v["kind"], num(v["similarity"]), v["same_key"],
                          v["question"][:90].replace("|", "/")] for v in r["val_removed"]]), ""]
    cov, dif = r["coverage_jsd"], r["difficulty_jsd"]
    lines += ["## The run around it", "",
              f"Items: {r['input_items']} in, {r['output_items']} out; by status {r['items_by_status']}; "
              f"new items {r['new_items']}. Edits: {r['outcomes']}. Coverage JSD {num(cov[0])} → {num(cov[1])} "
              f"({pct(reduction(cov[0], cov[1]))} change), difficulty JSD {num(dif[0])} → {num(dif[1])}. Tokens: "
              f"{r['spent']:,}; by node {({k: v.get('tokens') for k, v in (r['by_node'] or {}).items()})}.", "",
              "## The refined set against the reference", "",
              f"Original items still in the reference: **{r['refined_in_reference']['original_items']}**; new items "
              f"the writer made that the reference holds: {r['refined_in_reference']['new_items']}."]
    for m in r["refined_in_reference"]["new_matches"]:
        lines.append(f"- {m['item_id']} ~ {m['reference_id']} ({m['kind']}, {num(m['similarity'])}): "
                     f"{m['question'][:120]}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
