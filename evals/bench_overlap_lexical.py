"""How long `refinelab data overlap --lexical` takes on MMLU, and what the pair-by-pair Jaccard it replaced cost.

The word-set Jaccard of every item against every reference item is now counted by one sparse product per
512 items (`agents/dedup.py`); before, each pair's sets were intersected in Python. Timed here, no model:

1. MMLU val (1,528 items) against MMLU test (14,042), and MMLU test against itself, through `find_overlap`;
2. the old pair-by-pair loop on `--sample` val items against all of MMLU test, extrapolated to the whole val
   split (the loop is linear in the items asked), and the new scoring on the same sample;
3. that both give the same scores on the sample.

  .venv/bin/python evals/bench_overlap_lexical.py --sample 100 --tag bench_overlap_lexical
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import log, table, write_results

from refinelab.agents.dedup import DuplicateIndex, _text, _words
from refinelab.api.overlap import find_overlap
from refinelab.io import load_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=100, help="val items the old pair-by-pair loop is timed on")
    parser.add_argument("--tag", default="bench_overlap_lexical")
    args = parser.parse_args()
    val = load_dataset(DATA / "mmlu" / "val", on_invalid="quarantine")
    test = load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine")
    rows, timings = [], {}
    for name, data, reference in (("MMLU val in MMLU test", val, test), ("MMLU test against itself", test, None)):
        log(name)
        started = time.perf_counter()
        report = find_overlap(data, reference, method="lexical")
        timings[name] = time.perf_counter() - started
        rows.append([name, len(data), len(reference) if reference is not None else len(data),
                     f"{timings[name]:.1f}", report.counts()])
    sample = val.items[: args.sample]
    index = DuplicateIndex("lexical")
    index.add(test.items)
    log(f"the old pair-by-pair loop on {len(sample)} val items")
    known = [_words(_text(i)) for i in test.items]
    started = time.perf_counter()
    old = np.array([[len(words & w) / max(1, len(words | w)) for w in known]
                    for words in (_words(_text(i)) for i in sample)])
    old_seconds = time.perf_counter() - started
    started = time.perf_counter()
    new = index._scores(sample)
    new_seconds = time.perf_counter() - started
    same = bool(np.allclose(old, new))
    per_item_old = old_seconds / len(sample)
    result = {"rows": rows, "timings_s": timings, "sample": len(sample), "old_sample_s": old_seconds,
              "new_sample_s": new_seconds, "same_scores": same,
              "old_val_extrapolated_s": per_item_old * len(val), "old_test_self_extrapolated_s": per_item_old * len(test)}
    md = "\n".join([
        "# `data overlap --lexical` on MMLU: sparse product against the pair-by-pair loop", "",
        table(["comparison", "items", "reference items", "seconds", "found"], rows), "",
        f"The old loop on {len(sample)} val items against all {len(test):,} test items: {old_seconds:.1f} s "
        f"({per_item_old * 1000:.0f} ms an item), i.e. about **{per_item_old * len(val) / 60:.1f} min** for the val "
        f"split and **{per_item_old * len(test) / 60:.0f} min** for test against itself (extrapolated: the loop is "
        f"linear in the items asked). The sparse scoring of the same {len(sample)}: {new_seconds:.2f} s. "
        f"Same scores on every pair: {same}.", ""])
    write_results(args.tag, result, md)
    print(md)


if __name__ == "__main__":
    main()
