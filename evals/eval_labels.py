# ruff: noqa: B023  (each lambda is called at once, inside its loop iteration)
"""Label quality: do the profiler's skill labels separate sources whose content implies the skill?

A mixed set from `../shared/data`, `--per-source` items from each source, grouped by what the source
implies: GSM8K, SVAMP and AQuA → quantitative; ARC, SciQ and OpenBookQA → science knowledge;
CommonsenseQA → commonsense; TruthfulQA → misconceptions; MMLU law and history subjects → law/history
recall. Each item is labelled once by the profiler (agents/labels.py) through a real dry run (no edits):
with the eval's default `--skill-method exemplars` the skill comes from the nearest skill examples in
MiniLM space, and the judge is still asked for its 1-5 rating and constrained skill (taxonomy or
"unsure"), so one run measures both labellers on the same items: the exemplar labels and the model's
(the product default; each with the computable-signal rule applied).

Reported: adjusted mutual information between skill labels and source groups (0 = labels say nothing
about the source, 1 = perfect), accuracy under the best source→skill mapping (each group mapped to its
most frequent skill; several groups may share a skill, which AMI penalises), the same under the best
one-to-one mapping, the confusion table, the share of "unsure" and of empty labels (must be 0).

    python evals/eval_labels.py --quick                # 6 per source (54 items)
    python evals/eval_labels.py --per-source 12        # 108 items
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import random
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    DATA,
    add_common_args,
    deadline,
    deadline_seconds,
    log,
    model_label,
    pct,
    run_choices,
    settings_for,
    table,
    write_results,
)

from refinelab.agents.labels import calibrated  # noqa: E402
from refinelab.agents.options import RunOptions  # noqa: E402
from refinelab.api import refine  # noqa: E402
from refinelab.io import load_dataset  # noqa: E402
from refinelab.metrics.targets import Targets  # noqa: E402
from refinelab.run_layout import STORE
from refinelab.schema import Dataset, QAItem  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402

GROUPS = {"gsm8k": "quantitative", "svamp": "quantitative", "aqua": "quantitative", "arc": "science",
          "sciq": "science", "openbookqa": "science", "commonsenseqa": "commonsense",
          "truthfulqa": "misconceptions", "mmlu_law_history": "law/history"}
LAW_HISTORY = ("professional_law", "international_law", "jurisprudence", "high_school_us_history",
               "high_school_world_history", "high_school_european_history", "prehistory")


def _numeric_item(item_id: str, question: str, answer: float, subject: str, rng: random.Random) -> QAItem:
    """A free-answer math item as a 4-option item (the label only reads the stem; options are plausible)."""
    value = int(answer) if float(answer).is_integer() else round(float(answer), 2)
    wrong = {value + 1, value - 1, value * 2 if value else 3, value + 10} - {value}
    choices = [str(value), *map(str, rng.sample(sorted(wrong), 3))]
    rng.shuffle(choices)
    return QAItem(id=item_id, question=question, choices=choices, answer=choices.index(str(value)), subject=subject)


def _valid_rows(rows: list[Any], k: int, rng: random.Random, out: list[QAItem]) -> Any:
    """(index, row) over a shuffled copy of `rows` until `out` holds `k` items."""
    for row in rng.sample(rows, len(rows)):
        if len(out) >= k:
            return
        yield len(out), row


def _add(out: list[QAItem], build: Any) -> None:
    """Append the item `build()` makes; a row that makes no valid item (repeated options) is skipped."""
    with contextlib.suppress(ValueError, KeyError, IndexError):
        out.append(build())


def load_source(name: str, k: int, rng: random.Random) -> list[QAItem]:
    """`k` items of one source as QAItems (subject = the source name, so no subject map labels them)."""
    out: list[QAItem] = []
    if name == "gsm8k":
        rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines() if line]
        for i, row in _valid_rows(rows, k, rng, out):
            answer = float(row["answer"].split("####")[-1].strip().replace(",", ""))
            _add(out, lambda: _numeric_item(f"gsm8k-{i}", row["question"], answer, "gsm8k", rng))
    elif name == "svamp":
        rows = json.loads((DATA / "svamp" / "SVAMP.json").read_text())
        for i, row in _valid_rows(rows, k, rng, out):
            _add(out, lambda: _numeric_item(f"svamp-{i}", f"{row['Body']} {row['Question']}", float(row["Answer"]), "svamp", rng))
    elif name == "aqua":
        rows = [json.loads(line) for line in (DATA / "aqua" / "test.json").read_text().splitlines() if line.strip()]
        for i, row in _valid_rows(rows, k, rng, out):
            choices = [re.sub(r"^[A-E]\)", "", o).strip() for o in row["options"]]
            _add(out, lambda: QAItem(id=f"aqua-{i}", question=row["question"], choices=choices,
                              answer="ABCDE".index(row["correct"]), subject="aqua"))
    elif name == "arc":
        data = load_dataset(DATA / "arc" / "ARC-Challenge" / "ARC-Challenge-Test.jsonl", format="arc",
                            on_invalid="quarantine")
        out = [i.model_copy(update={"id": f"arc-{n}", "subject": "arc"}) for n, i in enumerate(rng.sample(list(data), k))]
    elif name == "sciq":
        rows = json.loads((DATA / "sciq" / "test.json").read_text())
        for i, row in _valid_rows(rows, k, rng, out):
            choices = [row["correct_answer"], row["distractor1"], row["distractor2"], row["distractor3"]]
            rng.shuffle(choices)
            _add(out, lambda: QAItem(id=f"sciq-{i}", question=row["question"], choices=choices,
                              answer=choices.index(row["correct_answer"]), subject="sciq"))
    elif name == "openbookqa":
        rows = [json.loads(line) for line in (DATA / "openbookqa" / "openbook_qa.jsonl").read_text().splitlines() if line]
        for i, row in _valid_rows(rows, k, rng, out):
            _add(out, lambda: QAItem(id=f"obqa-{i}", question=row["query"], choices=row["choices"], answer=int(row["gold"]),
                              subject="openbookqa"))
    elif name == "commonsenseqa":
        rows = [json.loads(line) for line in (DATA / "commonsenseqa" / "dev_rand_split.jsonl").read_text().splitlines() if line]
        for i, row in _valid_rows(rows, k, rng, out):
            labels = [c["label"] for c in row["question"]["choices"]]
            _add(out, lambda: QAItem(id=f"csqa-{i}", question=row["question"]["stem"],
                              choices=[c["text"] for c in row["question"]["choices"]],
                              answer=labels.index(row["answerKey"]), subject="commonsenseqa"))
    elif name == "truthfulqa":
        with open(DATA / "truthfulqa" / "TruthfulQA.csv", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
        for i, row in _valid_rows(rows, k, rng, out):
            wrong = [w.strip() for w in row["Incorrect Answers"].split(";") if w.strip()][:3]
            choices = [row["Best Answer"], *wrong]
            rng.shuffle(choices)
            _add(out, lambda: QAItem(id=f"tqa-{i}", question=row["Question"], choices=choices,
                              answer=choices.index(row["Best Answer"]), subject="truthfulqa"))
    elif name == "mmlu_law_history":
        data = load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine")
        pool = [i for i in data if i.subject in LAW_HISTORY and len(i.render()) < 1200]
        out = [i.model_copy(update={"id": f"mmlu-{n}"}) for n, i in enumerate(rng.sample(pool, k))]
    else:
        raise ValueError(f"unknown source {name}")
    return out


def mixed_set(per_source: int, seed: int) -> tuple[Dataset, dict[str, str]]:
    rng = random.Random(seed)
    per: list[list[QAItem]] = []
    group: dict[str, str] = {}
    for source in GROUPS:
        per.append(load_source(source, per_source, rng))
        group |= {item.id: GROUPS[source] for item in per[-1]}
    # round-robin over sources: a run cut short by its deadline still labels every source alike
    items = [rows[k] for k in range(per_source) for rows in per if k < len(rows)]
    return Dataset(items, name=f"label-mix-{per_source}"), group


def separation(labels: Sequence[str], groups: Sequence[str]) -> dict[str, Any]:
    """AMI and mapping accuracies of labels against groups."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_mutual_info_score

    names, skills = sorted(set(groups)), sorted(set(labels))
    counts = np.zeros((len(names), len(skills)), dtype=int)
    for label, g in zip(labels, groups, strict=True):
        counts[names.index(g), skills.index(label)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return {
        "ami": float(adjusted_mutual_info_score(groups, labels)),
        "accuracy_best_mapping": float(counts.max(axis=1).sum() / counts.sum()),
        "best_mapping": {names[g]: skills[int(counts[g].argmax())] for g in range(len(names))},
        "accuracy_one_to_one": float(counts[rows, cols].sum() / counts.sum()),
        "confusion": {names[g]: {skills[s]: int(counts[g, s]) for s in range(len(skills)) if counts[g, s]}
                      for g in range(len(names))},
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, deadline_quick=900)
    parser.add_argument("--per-source", type=int, default=None, help="items per source (quick 6, full 12)")
    parser.add_argument("--skill-method", choices=("exemplars", "model", "probs"), default="exemplars")
    parser.add_argument("--label-batch", type=int, default=1,
                        help="items the judge labels in one call (RunOptions.label_batch; skill method model)")
    args = parser.parse_args(argv)
    args.tag = args.tag or ("labels_quick" if args.quick else "labels")
    per_source = args.per_source or (6 if args.quick else 12)
    dataset, group = mixed_set(per_source, args.seed)
    settings = settings_for(args)
    run_id = f"{args.tag}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    options = RunOptions(dry_run=True, difficulty_method="rating", skill_method=args.skill_method,
                         validate_suspects=False, validators=[], dedup="lexical", label_batch=args.label_batch,
                         **run_choices(args, rounds=1))
    log(f"labels: {len(dataset)} items from {len(GROUPS)} sources")
    started = time.monotonic()
    with deadline(deadline_seconds(args)) as stop:
        result = refine(dataset, budget=10**9, targets=Targets(), settings=settings, run_id=run_id, options=options)
    store = RunStore(result.run_dir / STORE)
    labels = {d.item_id: d for d in store.diagnostics("label")}
    items = {i.id: i for i in store.items(("kept", "edited", "new", "removed"))}
    rows = [(i, (items[i].skill if i in items else "") or "", group[i]) for i in group if i in labels]
    skills = [r[1] for r in rows]
    result_row: dict[str, Any] = {
        "tag": args.tag, "model": model_label(args), "per_source": per_source, "items": len(dataset),
        "labelled": len(rows), "spent": result.spent, "seconds": round(time.monotonic() - started, 1),
        "deadline_hit": stop["hit"], "run_dir": str(result.run_dir),
        "empty_labels": sum(1 for s in skills if not s), "unsure": sum(1 for s in skills if s == "unsure"),
        "skill_counts": dict(Counter(skills)), "label_failures": sum(1 for d in labels.values() if d.flag),
    }
    result_row |= separation(skills, [r[2] for r in rows]) if rows else {}
    result_row["skill_method"] = args.skill_method
    result_row["label_batch"] = args.label_batch
    asked = [d for d in labels.values() if d.evidence.get("by") == "model"]
    result_row["judge_labels"] = {"items": len(asked), "tokens": sum(int(d.evidence.get("tokens") or 0) for d in asked),
                                  "batched": sum(1 for d in asked if d.evidence.get("batch"))}
    model_rows = [(labels[i].evidence["skill"] if labels[i].evidence.get("by") == "signals"
                   else labels[i].evidence.get("model_skill"), group[i]) for i, _, _ in rows]
    model_rows = [(s, g) for s, g in model_rows if s]
    if args.skill_method != "model" and model_rows:
        model_sep = separation([s for s, _ in model_rows], [g for _, g in model_rows])
        result_row["model_labels"] = {"labelled": len(model_rows), **model_sep}
    if args.skill_method != "model" and model_rows:
        result_row["cascade"] = cascade(labels, rows)
    if args.skill_method == "probs":
        result_row["probe_variants"] = probe_variants(labels, rows, store_names(labels))
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for item_id, skill, _ in rows:
        by_source[item_id.split("-")[0]][skill] += 1
    result_row["by_source"] = {k: dict(v) for k, v in by_source.items()}
    write_results(args.tag, result_row, markdown(result_row))
    print(markdown(result_row))
    return result_row


CASCADE_MARGINS = (0.0, 0.04, 0.08, 0.10, 0.15)


def cascade(labels: dict[str, Any], rows: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """A cascade from one exemplar run, no model call: the exemplar skill where its margin (best minus
    second-best similarity) reaches m, else the judge's; computable items stay the signals'. For each m:
    how many judge calls it would have saved and how the labels separate the sources. Says whether the
    free labeller can stand in for the judge where it is confident."""
    out = []
    for margin in CASCADE_MARGINS:
        skills, groups, saved, agree = [], [], 0, 0
        for item_id, _skill, group in rows:
            evidence = labels[item_id].evidence
            if evidence.get("by") == "signals":
                skill = evidence["skill"]
            else:
                sims = sorted((evidence.get("similarity") or {}).values(), reverse=True)
                confident = len(sims) > 1 and sims[0] - sims[1] >= margin
                skill = evidence.get("exemplar_skill") if confident else evidence.get("model_skill")
                saved += confident
                agree += confident and evidence.get("exemplar_skill") == evidence.get("model_skill")
            skills.append(skill or "")
            groups.append(group)
        sep = separation(skills, groups)
        out.append({"margin": margin, "judge_calls_saved": saved, "agree_with_judge": agree,
                    "ami": sep["ami"], "accuracy_best_mapping": sep["accuracy_best_mapping"]})
    return out


def store_names(labels: dict[str, Any]) -> list[str]:
    """The taxonomy's skill names in the probe's order (from any stored probe's evidence)."""
    for diag in labels.values():
        if diag.evidence.get("skill_probs"):
            return list(diag.evidence["skill_probs"])
    return []


def probe_variants(labels: dict[str, Any], rows: list[tuple[str, str, str]], names: list[str]) -> dict[str, Any]:
    """The skill probe read three ways on the same stored numbers (computable signals applied to each):
    the raw argmax, calibrated by the content-free prior (what the product does), and calibrated by the
    mean distribution over this set (a batch prior, for comparison)."""
    probed = [(i, g) for i, _, g in rows if labels[i].evidence.get("skill_probs_raw")]
    if not probed or not names:
        return {}
    raw = np.array([labels[i].evidence["skill_probs_raw"] for i, _ in probed])
    prior = np.array(labels[probed[0][0]].evidence["skill_prior"])
    batch = raw.mean(axis=0)

    def read(matrix: np.ndarray) -> list[str]:
        return [labels[i].evidence["skill"] if labels[i].evidence.get("by") == "signals" else names[int(row.argmax())]
                for (i, _), row in zip(probed, matrix, strict=True)]

    groups = [g for _, g in probed]
    out = {"prior": [round(float(v), 4) for v in prior], "batch_prior": [round(float(v), 4) for v in batch]}
    content_free = np.array([calibrated(list(row), list(prior)) for row in raw])  # what the product does
    for name, matrix in (("raw", raw), ("content_free", content_free), ("batch", raw / batch)):
        labels_read = read(matrix)
        out[name] = {"labelled": len(probed), "skill_counts": dict(Counter(labels_read)),
                     **separation(labels_read, groups)}
    return out


def markdown(r: dict[str, Any]) -> str:
    method = r.get("skill_method", "model")
    head = [f"# Skill labels vs source ({r['tag']})", "",
            f"{r['labelled']}/{r['items']} items labelled ({r['per_source']} per source), judge {r['model']}; "
            f"{r['spent']:,} tokens, {r['seconds']:.0f} s" + (" (deadline hit)" if r["deadline_hit"] else "") + ".",
            f"Empty labels: {r['empty_labels']}; \"unsure\": {r['unsure']}; failed label calls: {r['label_failures']}."]
    judged = r.get("judge_labels") or {}
    if judged.get("items"):
        head.append(f"The judge's labels: {judged['items']} items ({judged['batched']} in batches of up to "
                    f"{r.get('label_batch', 1)}), {judged['tokens']:,} tokens, {judged['tokens'] / judged['items']:.0f} "
                    "an item; the others were decided by their computable signals.")
    own = _section(f"`skill_method={method}`" + (" (the default)" if method == "model" else ""), r)
    model = r.get("model_labels")
    if model:  # an exemplar run also asked the judge (for the rating): its labels on the same items first
        head.append(f"Both labellers on the same {model['labelled']} items (computable signals applied to each).")
        head += _section("`skill_method=model` (the default)", model)
    if r.get("cascade"):
        head += ["", "A cascade (no model call, from this run): the exemplar skill where its margin over the "
                 "second-best skill reaches m, else the judge's.", "",
                 table(["margin m", "judge calls saved", "of which the judge agreed", "AMI", "best mapping"],
                       [[f"{c['margin']:.2f}", c["judge_calls_saved"], c["agree_with_judge"], f"{c['ami']:.3f}",
                         f"{c['accuracy_best_mapping']:.1%}"] for c in r["cascade"]])]
    variants = r.get("probe_variants") or {}
    if variants:
        head += ["", f"Skill probe prior (content-free question): {variants['prior']}; "
                 f"mean over this set: {variants['batch_prior']} (order: the taxonomy's)."]
        for name, title in (("raw", "probe, uncalibrated argmax"), ("batch", "probe, calibrated by this set's mean")):
            head += _section(title, variants[name])
    return "\n".join([*head, *own])


def _section(title: str, m: dict[str, Any]) -> list[str]:
    """One labeller's separation figures and its confusion table."""
    skills = sorted({s for row in m["confusion"].values() for s in row})
    rows = [[g, *[str(m["confusion"][g].get(s, 0)) for s in skills], m["best_mapping"].get(g, "—")]
            for g in sorted(m["confusion"])]
    return ["", f"## {title}", "",
            f"- adjusted mutual information (labels, source groups): **{m['ami']:.3f}**",
            f"- accuracy under the best source→skill mapping: **{pct(m['accuracy_best_mapping'])}** "
            f"(one-to-one: {pct(m['accuracy_one_to_one'])})", "",
            table(["source group", *skills, "mapped to"], rows)]


if __name__ == "__main__":
    main()
