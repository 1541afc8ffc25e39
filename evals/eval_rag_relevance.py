"""Does `rag_min_score` tell on-topic passages from off-topic ones?

Retrieval counts as evidence (the RAG validator's verdict, the `rag:` panel member's passages) only when
the best passage's cosine reaches `options.rag_min_score`. The `wikipedia:mmlu_redux` corpus holds the
paragraphs BM25 retrieved for the questions of 10 MMLU subjects, so a question of those subjects has
passages written about it (on-topic) and a question of any other subject does not (off-topic). This eval
embeds both groups' queries, as the validator and the panel member build them, and reports the best
score's distribution and the share of each group a threshold lets through. Embeddings only; no model call.

  .venv/bin/python evals/eval_rag_relevance.py --n 400 --tag rag_relevance
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import log, table, write_results

from refinelab.agents.validation.rag import QUERY_WORDS, query_for
from refinelab.io import load_dataset
from refinelab.schema import QAItem
from refinelab.tools.corpus import load_corpus
from refinelab.tools.retrieval import Retriever

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ON_TOPIC = ("college_chemistry", "college_mathematics", "econometrics", "formal_logic", "global_facts",
            "high_school_physics", "machine_learning", "professional_law", "public_relations", "virology")
OFF_TOPIC = ("astronomy", "high_school_world_history", "high_school_biology", "philosophy", "marketing",
             "sociology", "nutrition", "college_physics", "high_school_geography", "world_religions")
THRESHOLDS = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


def best_scores(retriever: Retriever, items: Sequence[QAItem]) -> dict[str, np.ndarray]:
    """The best passage's score per item, for the validator's queries (question+key and question alone,
    the better of the two) and for the panel member's (question and every option)."""
    def top(queries: list[str]) -> np.ndarray:
        return np.array([hits[0].score if hits else 0.0 for hits in retriever.search_many(queries, k=1)])

    validator = np.maximum(top([query_for(i) for i in items]),
                           top([" ".join(i.question.split()[-QUERY_WORDS:]) for i in items]))
    member = top([" ".join([i.question, *i.choices]) for i in items])
    return {"validator": validator, "panel member": member}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="MMLU test items per group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="rag_relevance")
    args = parser.parse_args(argv)
    items = list(load_dataset(DATA / "mmlu" / "test", on_invalid="quarantine"))
    rng = random.Random(args.seed)
    groups = {name: rng.sample(pool, min(args.n, len(pool))) for name, pool in
              (("on-topic", [i for i in items if i.subject in ON_TOPIC]),
               ("off-topic", [i for i in items if i.subject in OFF_TOPIC]))}
    retriever = Retriever.build_or_load(load_corpus("wikipedia:mmlu_redux"))
    scores = {name: best_scores(retriever, group) for name, group in groups.items()}
    log("scored " + ", ".join(f"{len(g)} {name}" for name, g in groups.items()))
    result: dict[str, Any] = {"tag": args.tag, "n": {k: len(v) for k, v in groups.items()}, "corpus": "wikipedia:mmlu_redux",
                              "percentiles": {}, "kept": {}}
    for query in ("validator", "panel member"):
        for name in groups:
            s = scores[name][query]
            result["percentiles"][f"{query}, {name}"] = [round(float(x), 3) for x in np.percentile(s, [5, 25, 50, 75, 95])]
            result["kept"][f"{query}, {name}"] = {str(t): round(float((s >= t).mean()), 3) for t in THRESHOLDS}
    rows_p = [[k, *v] for k, v in result["percentiles"].items()]
    rows_k = [[k, *[f"{v[str(t)]:.0%}" for t in THRESHOLDS]] for k, v in result["kept"].items()]
    md = "\n".join([
        f"# Best passage score, on-topic vs off-topic questions ({args.tag})\n",
        f"Corpus `wikipedia:mmlu_redux` ({len(retriever)} passages); on-topic = MMLU test questions of the 10 subjects "
        f"whose paragraphs it holds, off-topic = 10 other subjects; {args.n} questions each.\n",
        "## Best score (percentiles 5, 25, 50, 75, 95)\n",
        table(["queries, group", "p5", "p25", "p50", "p75", "p95"], rows_p),
        "\n## Share of questions whose best passage reaches the threshold\n",
        table(["queries, group", *[str(t) for t in THRESHOLDS]], rows_k),
    ])
    write_results(args.tag, result, md)
    print(md)
    return result


if __name__ == "__main__":
    main()
