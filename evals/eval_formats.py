"""Which benchmark files in ../shared/data load as they ship, and what each loader makes of them.

A user hands RefineLab the files they have: ARC's CSV and JSONL, OpenBookQA's and AQuA's JSONL, SciQ's
JSON array, CommonsenseQA gzipped, MMLU-Redux's CSVs with numpy-printed options. This reads each through
`load_dataset` (quarantine mode, as `refine` does), with no model call, and reports items read, rows
refused (with the first reason), the first item as read, and the seconds the read took. SciQ needs a
mapping (its right option sits in its own column); it is the one file given `--columns`. Folders are read
whole and with `--split` (a folder of several splits is refused naming them).

  .venv/bin/python evals/eval_formats.py --tag formats
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import log, table, write_results

from refinelab.errors import RefineLabError
from refinelab.io import load_dataset, parse_columns

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REDUX = "mmlu_redux/retriever_evaluation/binary_mini_mmlu_groundtruth_correctness_zeroshot_gpt-4-turbo_virology_enwiki-paragraphs.csv"
SCIQ_COLUMNS = "question=question,choices=correct_answer,distractor1,distractor2,distractor3,answer=correct_answer"
FILES: list[tuple[str, str | None] | tuple[str, str | None, str | None]] = [
    ("mmlu/test", None),
    ("arc/ARC-Challenge/ARC-Challenge-Test.jsonl", None),
    ("arc/ARC-Challenge/ARC-Challenge-Test.csv", None),
    ("arc/ARC-Easy/ARC-Easy-Test.csv", None),
    ("commonsenseqa/dev_rand_split.jsonl", None),
    ("commonsenseqa/train_rand_split.jsonl.gz", None),
    ("openbookqa/openbook_qa.jsonl", None),
    ("aqua/test.json", None),
    ("sciq/test.json", SCIQ_COLUMNS),
    ("mmlu_redux/corruption_tests/corruption_test_WG.csv", None),
    (REDUX, None),
    ("mmlu_redux/dev/mmlu_virology.csv", None),
    ("mmlu_redux/dev/mmlu_astronomy.csv", None),
    ("truthfulqa/TruthfulQA.csv", None),
    ("mmlu", None, None),
    ("mmlu", None, "val"),
    ("arc/ARC-Challenge", None, None),
    ("commonsenseqa", None, None),
    ("commonsenseqa", None, "dev"),
    ("mmlu_redux/dev", None, None),
    ("sciq", SCIQ_COLUMNS, "valid"),
]


def read_one(name: str, columns: str | None, split: str | None = None) -> dict[str, object]:
    started = time.perf_counter()
    shown = f"{name} --split {split}" if split else name
    try:
        dataset = load_dataset(DATA / name, mapping=parse_columns(columns) if columns else None,
                               on_invalid="quarantine", split=split)
    except RefineLabError as exc:
        return {"file": shown, "error": str(exc).split(": ", 1)[-1][:160], "seconds": time.perf_counter() - started}
    first = dataset.items[0] if len(dataset) else None
    return {"file": shown, "columns": columns, "read": len(dataset), "refused": len(dataset.rejected),
            "first_refusal": str(dataset.rejected[0]).split(": ", 1)[-1][:120] if dataset.rejected else "",
            "first_item": {"id": first.id, "question": first.question[:50].replace("|", "/"), "choices": len(first.choices),
                           "answer": first.answer} if first else None,  # a glimpse, not a copy of the data
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="formats")
    args = parser.parse_args()
    results = []
    for name, columns, *split in FILES:
        log(f"reading {name}" + (f" --split {split[0]}" if split and split[0] else ""))
        results.append(read_one(name, columns, *split))
    rows = []
    for r in results:
        first = r.get("first_item") or {}
        shown = (f"{first['question']}… → {first['choices']} options, key {'ABCDEFGHIJ'[first['answer']]}"
                 if first else "")
        rows.append([f"`{r['file']}`" + (" (`--columns`)" if r.get("columns") else ""),
                     r.get("read", "—"), r.get("refused", "—"),
                     r.get("error") or r.get("first_refusal") or "", shown, f"{r['seconds']:.2f}"])
    markdown = ("# Benchmark files as they ship, through `load_dataset` (quarantine mode)\n\n"
                + table(["file", "read", "refused", "error, or the first refusal", "first item as read", "s"], rows))
    print(markdown)
    write_results(args.tag, {"files": results}, markdown)


if __name__ == "__main__":
    main()
