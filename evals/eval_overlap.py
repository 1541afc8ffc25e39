"""How well `refinelab data overlap` finds a dataset's items in another, on real benchmark files.

Three measurements and a census, no model tokens (MiniLM embeddings, cached on disk):

1. **Known copies.** MMLU-Redux's dev files re-annotate MMLU test questions, and the retriever-evaluation
   rows are dev questions: each should be found, nearly all as exact copies.
2. **Edited copies (recall).** `--n` MMLU test items edited the way leaked items are (options reordered; the
   stem's punctuation and case changed; one or two words of the stem changed; "Which of the following" and
   similar frames reworded), each kind searched for in the MMLU test split: the share found at each threshold.
3. **Unrelated sets (false matches).** MMLU's val split against its test split (different questions by
   construction, though MMLU is known to repeat some), with and without the rule that a near match shares
   half its options, and ARC-Challenge's test split against MMLU test: the matches at each threshold, with
   examples, so a reader can judge where near stops meaning "the same".
4. **A set against itself.** MMLU's test split: its items that repeat an earlier one, and how many of those
   are keyed otherwise; and whether an item with such a twin is more often one MMLU-Redux's annotators found
   wrong (screening evidence, if it held).

  .venv/bin/python evals/eval_overlap.py --n 200 --tag overlap
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

from common import log, table, write_results

from refinelab.agents.dedup import EMBEDDING_THRESHOLD
from refinelab.api.overlap import OverlapMatch, OverlapReport, find_overlap
from refinelab.io import load_dataset
from refinelab.schema import Dataset, QAItem

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
THRESHOLDS = (0.85, 0.90, 0.92, 0.95)
FRAMES = [("Which of the following", "Which one of these"), ("which of the following", "which one of these"),
          ("What is", "What's"), ("Which is", "Which one is"), ("is not", "isn't")]


def reorder(item: QAItem, rng: random.Random) -> QAItem:
    order = list(range(len(item.choices)))
    while order == sorted(order):
        rng.shuffle(order)
    return item.model_copy(update={"choices": [item.choices[i] for i in order], "answer": order.index(item.answer)})


def punctuate(item: QAItem, rng: random.Random) -> QAItem:
    stem = item.question.rstrip(" ?.:").lower() + rng.choice(["", " ?", ".", ":"])
    return item.model_copy(update={"question": stem})


def change_words(item: QAItem, rng: random.Random) -> QAItem:
    words = item.question.split()
    for _ in range(min(2, max(1, len(words) // 8))):
        spot = rng.randrange(len(words))
        words[spot] = rng.choice(["the", "a", "this", "some", "each", "that"])
    return item.model_copy(update={"question": " ".join(words)})


def reframe(item: QAItem, rng: random.Random) -> QAItem | None:
    for old, new in FRAMES:
        if old in item.question:
            return item.model_copy(update={"question": item.question.replace(old, new, 1)})
    return None


EDITS = {"options reordered": reorder, "punctuation and case": punctuate, "1-2 words changed": change_words,
         "frame reworded": reframe}


def found_at(report: OverlapReport, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[float, int]:
    return {t: sum(1 for m in report.matches if m.similarity >= t) for t in thresholds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="MMLU test items edited per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="overlap")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = random.Random(args.seed)
    mmlu_test = load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine")
    lowest = min(THRESHOLDS)
    result: dict[str, object] = {"n": args.n, "seed": args.seed, "thresholds": THRESHOLDS}

    log("known copies")
    known_rows = []
    for name, data, reference in (
            ("MMLU-Redux dev (20 subjects) in MMLU test", DATA / "mmlu_redux" / "dev", mmlu_test),
            ("retriever-evaluation rows in MMLU-Redux dev", DATA / "mmlu_redux" / "retriever_evaluation",
             DATA / "mmlu_redux" / "dev")):
        t0 = time.perf_counter()
        report = find_overlap(data, reference)
        counts = report.counts()
        known_rows.append([name, report.items, f"{len(report.matches):,} ({report.share:.1%})", counts["exact"],
                           counts["same_question"], counts["near"], f"{time.perf_counter() - t0:.0f}"])
        result[name] = report.to_dict(with_matches=False)
    log("MMLU test against itself")
    t0 = time.perf_counter()
    report = find_overlap(mmlu_test)
    counts, other_key = report.counts(), report.other_key()
    within_row = [report.items, f"{len(report.matches):,} ({report.share:.1%})", counts["exact"],
                  counts["same_question"], counts["near"], other_key["exact"], other_key["same_question"],
                  other_key["near"], f"{time.perf_counter() - t0:.0f}"]
    result["MMLU test against itself"] = report.to_dict(with_matches=False)

    log("twins and MMLU-Redux's labels")
    twin_rows = twins_and_errors(mmlu_test)
    result["twins and errors"] = twin_rows

    log("edited copies")
    sample = rng.sample(list(mmlu_test), args.n)
    fingerprints = {item.id: item.fingerprint for item in mmlu_test}
    edit_rows = []
    for kind, edit in EDITS.items():
        edited = [e for e in (edit(item, rng) for item in sample) if e is not None]
        report = find_overlap(Dataset(edited, name=kind), mmlu_test, threshold=lowest)
        # the item it was made from, or a copy of it: MMLU's test split repeats some items word for word
        right = [m for m in report.matches if fingerprints[m.reference_id] == fingerprints[m.item_id]]
        at = {t: sum(1 for m in right if m.similarity >= t) / len(edited) for t in THRESHOLDS}
        edit_rows.append([kind, len(edited), *(f"{at[t]:.1%}" for t in THRESHOLDS), len(report.matches) - len(right)])
        result[f"edited: {kind}"] = {"items": len(edited), "found_right": {str(t): v for t, v in at.items()}}

    log("unrelated sets")
    false_rows = []
    examples = []
    for name, data, any_options in (
            ("MMLU val in MMLU test", DATA / "mmlu" / "val", False),
            ("the same, near matches whatever their options (--any-options)", DATA / "mmlu" / "val", True),
            ("ARC-Challenge test in MMLU test", DATA / "arc" / "ARC-Challenge" / "ARC-Challenge-Test.jsonl", False)):
        report = find_overlap(data, mmlu_test, threshold=lowest, any_options=any_options)
        counts = report.counts()
        at = found_at(report)
        keyed = [m for m in report.matches if m.kind == "near" and m.similarity >= EMBEDDING_THRESHOLD]
        false_rows.append([name, report.items, counts["exact"], counts["same_question"],
                           *(f"{at[t]:,}" for t in THRESHOLDS),
                           f"{sum(not m.same_key for m in keyed)} of {len(keyed)}",
                           report.other_key()["exact"]])
        result[name] = report.to_dict(with_matches=False) | {"at": {str(t): v for t, v in at.items()}}
        near = sorted((m for m in report.matches if m.kind == "near"), key=lambda m: -m.similarity)
        for m in (near[round(k * (len(near) - 1) / 7)] for k in range(8)) if near else ():
            examples.append([name, f"{m.similarity:.3f}", "yes" if m.same_key else "no", _clip(m.question),
                             _clip(m.reference_question)])

    seconds = time.perf_counter() - started
    markdown = (
        f"# Overlap between datasets ({args.tag})\n\n`find_overlap` (`refinelab data overlap`): MiniLM cosine of "
        "stem + options, exact and same-question matches by normalised text; no model tokens.\n\n"
        "## Known copies\n\n"
        + table(["data in reference", "items", "found", "exact", "same question", "near", "s"], known_rows)
        + "\n\n## MMLU test against itself (items repeating an earlier one)\n\n"
        + table(["items", "repeats", "exact", "same question", "near", "exact keyed otherwise",
                 "same question keyed otherwise", "near keyed otherwise", "s"], [within_row])
        + "\n\n## Does a twin predict a wrong key? (MMLU-Redux dev's 20 subjects, matched to MMLU test)\n\n"
        + table(["MMLU-Redux rows", "rows", "erroneous", "share erroneous"], twin_rows)
        + f"\n\n{twin_verdict(twin_rows)}\n"
        + f"\n\n## Edited copies of {args.n} MMLU test items, searched for in MMLU test (recall)\n\n"
        "Found = the item it was made from (or a word-for-word copy of it in MMLU test) is its best match, at or "
        "above the threshold; the last column counts edited items whose best match is another item.\n\n"
        + table(["edit", "items", *(f"found at {t}" for t in THRESHOLDS), "best match another item"], edit_rows)
        + "\n\n## Unrelated sets (matches are false, or real repeats)\n\n"
        + table(["data in reference", "items", "exact", "same question", *(f"matched at {t}" for t in THRESHOLDS),
                 f"near at {EMBEDDING_THRESHOLD} keyed otherwise", "exact keyed otherwise"],
                false_rows)
        + "\n\nNear matches, eight spread evenly from the closest to the least close:\n\n"
        + table(["set", "similarity", "same key", "item", "matched reference item"], examples)
        + f"\n\nTotal {seconds:.0f} s.\n")
    print(markdown)
    write_results(args.tag, result, markdown)


def twins_and_errors(mmlu_test: Dataset) -> list[list[object]]:
    """Whether an MMLU test item with a twin in the same split (a repeat or a near-duplicate, 0.90, any
    options), or a twin keyed otherwise, is more often one MMLU-Redux's annotators found wrong: a source of
    evidence for screening that no model call would pay for, if it held."""
    from redux import read_redux_dev

    report = find_overlap(mmlu_test, any_options=True, threshold=0.90)
    twins: dict[str, list[OverlapMatch]] = {}
    for m in report.matches:
        twins.setdefault(m.item_id, []).append(m)
        twins.setdefault(m.reference_id, []).append(m)
    by_fingerprint = {item.fingerprint: item.id for item in mmlu_test}
    labelled = []
    for row in read_redux_dev():
        if row.error_type == "expert" or row.answer is None:
            continue
        try:
            item = QAItem(id="redux", question=row.question, choices=row.choices, answer=row.answer)
        except ValueError:
            continue
        if (found := by_fingerprint.get(item.fingerprint)) is not None:
            labelled.append((row.error_type != "ok", twins.get(found, [])))
    rows = []
    for name, keep in (("every labelled row", lambda t: True), ("with a twin", bool),
                       ("with a twin keyed otherwise", lambda t: any(not m.same_key for m in t))):
        chosen = [wrong for wrong, t in labelled if keep(t)]
        rows.append([name, len(chosen), sum(chosen), f"{sum(chosen) / max(1, len(chosen)):.1%}"])
    return rows


def twin_verdict(rows: list[list[object]]) -> str:
    """What the twins table says, read from its figures."""
    base, *twinned = (int(r[2]) / max(1, int(r[1])) for r in rows)  # type: ignore[call-overload]
    if all(share <= base for share in twinned):
        return (f"No: items with a twin are wrong no more often than the rest ({max(twinned):.1%} at most against "
                f"{base:.1%}), so a twin is not screening evidence.")
    return f"Items with a twin are wrong more often ({max(twinned):.1%} against {base:.1%}): screening evidence to test."


def _clip(text: str, limit: int = 110) -> str:
    text = re.sub(r"\s+", " ", text).replace("|", "/")
    if len(text) <= limit:
        return text
    return text[:limit // 2 - 1] + " … " + text[-(limit // 2 - 2):]  # the end shows where long stems differ


if __name__ == "__main__":
    main()
