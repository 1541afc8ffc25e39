"""Embedding speed by batch size: texts a second when the packaged MiniLM embeds the built-in Wikipedia
corpus in the retriever's chunks (`retrieval.EMBED_CHUNK` passages a call), MMLU question stems (what
dedup and the style examples embed) and MMLU options (what distractor diversity embeds), and the largest
difference between the vectors each batch size gives.

    .venv/bin/python evals/bench_embed_batch.py [--passages 1024] [--short 3000] [--batch-sizes 64,32,16,8]

Why it exists: a machine's first run that validates by retrieval embeds the whole corpus (4,968 passages
of 80-240 tokens), which took 392 s of the demo's 24 minutes at the old batch size of 64.
sentence-transformers pads each batch to its longest text, so smaller batches pad less; the vectors do
not change beyond float noise, which is why the embedding cache does not key on the batch size.
No model server is needed; nothing is read from or written to the embedding cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import DATA, RESULTS, write_results  # noqa: E402

from refinelab.io import load_dataset  # noqa: E402
from refinelab.tools.corpus import load_corpus  # noqa: E402
from refinelab.tools.embeddings import load_model  # noqa: E402
from refinelab.tools.retrieval import EMBED_CHUNK, passage_text_for_embedding  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1024, help="the corpus's first N passages")
    parser.add_argument("--short", type=int, default=3000, help="this many MMLU stems, and as many options")
    parser.add_argument("--batch-sizes", default="64,32,16,8")
    parser.add_argument("--tag", default="embed_batch")
    args = parser.parse_args()

    passages = [passage_text_for_embedding(p) for p in load_corpus("wikipedia:mmlu_redux")][:args.passages]
    items = list(load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine"))
    sets = {"corpus passages": passages, "MMLU stems": [item.question for item in items][:args.short],
            "MMLU options": [choice for item in items for choice in item.choices][:args.short]}
    model = load_model()
    model.encode(passages[:16], batch_size=16)  # warm-up: first-call allocations are not the batch size's cost
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    rows = []
    for what, texts in sets.items():
        reference = None
        for size in sizes:
            started = time.perf_counter()
            vectors = np.concatenate([model.encode(texts[i:i + EMBED_CHUNK], batch_size=size)
                                      for i in range(0, len(texts), EMBED_CHUNK)])
            seconds = time.perf_counter() - started
            reference = vectors if reference is None else reference
            rows.append({"texts": what, "count": len(texts), "batch_size": size, "seconds": round(seconds, 1),
                         "per_second": round(len(texts) / seconds, 1),
                         "max_abs_difference": float(np.abs(vectors - reference).max())})
            print(json.dumps(rows[-1]), flush=True)

    lines = [f"# Embedding speed by batch size ({args.tag})", "",
             f"Packaged MiniLM on this machine's CPU, texts in chunks of {EMBED_CHUNK} as the retriever embeds "
             "them. Corpus passages: the first passages of wikipedia:mmlu_redux (80-240 tokens); stems and "
             "options: MMLU test's first.", "",
             f"| texts | count | batch size | seconds | texts/s | vs batch {sizes[0]} | largest vector difference |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        base = next(r for r in rows if r["texts"] == row["texts"])
        lines.append(f"| {row['texts']} | {row['count']} | {row['batch_size']} | {row['seconds']} | "
                     f"{row['per_second']} | {base['seconds'] / row['seconds']:.2f}x | "
                     f"{row['max_abs_difference']:.1e} |")
    write_results(args.tag, {"chunk": EMBED_CHUNK, "rows": rows}, "\n".join(lines))
    print(f"wrote {RESULTS / args.tag}.md")


if __name__ == "__main__":
    main()
