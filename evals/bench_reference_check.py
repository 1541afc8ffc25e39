"""What looking for each new item in a decontamination reference costs a run (`refine --decontaminate`).

A run keeps its references indexed (agents/reference_index.py) and its validator looks for every new item the
writer makes in them, one item at a time (agents/validation/structural.py:copied_from_reference). Timed here on
MMLU test as the reference (14,042 rows), no model tokens:

1. reading the reference and indexing it (as `refine` does before the run; as a resume does again, with the
   digest of its items it compares to the one settings.json recorded), the embedding of its items included
   (MiniLM, from the on-disk cache when an earlier run embedded them: the table says which);
2. one new item looked for, `--sample` times, with MMLU val items standing in for new items (each with a mark
   added to its question, so its text is embedded then, as a new draft's is); and which of those items, as
   they are, the reference holds (MMLU repeats some test questions in val, as a copying writer would);
3. the index's memory: the embedding matrix, and what Python allocated to build the whole index.

  .venv/bin/python evals/bench_reference_check.py --sample 200 --tag bench_reference_check
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from common import log, table, write_results

from refinelab.api.overlap import index_reference
from refinelab.io import load_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=200, help="new items looked for, one at a time")
    parser.add_argument("--tag", default="bench_reference_check")
    args = parser.parse_args()
    reference = DATA / "mmlu" / "test"
    log(f"reading and indexing {reference}")
    started = time.perf_counter()
    index = index_reference(reference)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    digest = index.digest()
    digest_s = time.perf_counter() - started
    sample = load_dataset(DATA / "mmlu" / "val", on_invalid="quarantine").items[: args.sample]
    started = time.perf_counter()
    first = index.match(sample[:1])  # the first question embeds the whole reference
    embed_s = time.perf_counter() - started
    vectors = index._near._vectors if index._near is not None else None  # noqa: SLF001 (measured, not used)
    log(f"looking for {len(sample)} items one at a time, each as a new draft (its text never embedded)")
    stamp = time.time_ns()
    seconds = []
    for n, item in enumerate(sample):
        draft = item.model_copy(update={"question": f"{item.question} [{stamp}-{n}]"})  # a text no cache holds
        started = time.perf_counter()
        index.match([draft])
        seconds.append(time.perf_counter() - started)
    kinds = Counter(m.kind for m in index.match(sample))  # the items as they are: which the reference holds
    log("memory: the same index built again under tracemalloc (not timed: tracing slows allocation)")
    tracemalloc.start()
    index_reference(reference).match(sample[:1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    result = {"reference_items": len(index), "read_and_index_s": read_s, "digest_s": digest_s,
              "first_match_s": embed_s, "first_found": len(first), "sample": len(sample),
              "median_ms": statistics.median(ms), "p95_ms": p95, "max_ms": ms[-1], "found": dict(kinds),
              "vectors_mb": None if vectors is None else vectors.nbytes / 2**20, "python_peak_mb": peak / 2**20,
              "digest": digest}
    md = "\n".join([
        "# Looking for new items in a decontamination reference: MMLU test", "",
        table(["step", "measured"], [
            ["read MMLU test and index it by fingerprint and question", f"{read_s:.1f} s ({len(index):,} items)"],
            ["digest of its items (a resume compares it)", f"{digest_s:.2f} s"],
            ["first lookup: embed the reference (MiniLM, cached on disk when embedded before)", f"{embed_s:.1f} s"],
            [f"one new item looked for, its text embedded then (median / p95 / max of {len(sample)}; the max is "
             "the first: MiniLM loads, once a process)",
             f"{result['median_ms']:.1f} / {p95:.1f} / {ms[-1]:.1f} ms"],
            ["sample items found in the reference", f"{sum(kinds.values())} ({dict(kinds)})"],
            ["embedding matrix", f"{result['vectors_mb']:.1f} MiB" if vectors is not None else "-"],
            ["Python's peak allocation while reading and indexing", f"{result['python_peak_mb']:.0f} MiB"],
        ]), ""])
    write_results(args.tag, result, md)
    print(md)


if __name__ == "__main__":
    main()
