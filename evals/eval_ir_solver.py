"""Does retrieval alone, with no language model, find MMLU-Redux errors? An IR solver on the retriever rows.

An evidence source independent of the 1.5B (issue 14): each option is scored by how well the row's own
Wikipedia paragraphs (the ones GPT-4-Turbo read for its released verdicts) support it, with the packaged
MiniLM embedder — the classic information-retrieval solver for multiple-choice science questions. Three
scores per option:

- `stem+option`: the best cosine between "stem option" and a paragraph chunk;
- `option`: the same for the option's text alone;
- `lexical`: the share of the option's words that occur in the paragraphs.

An item is suspicious when its key is supported less than the best other option: the signal is minus the
key's margin. Reported: AUROC against the human labels, overall and per error type, and TPR at FPR 0.11
(GPT-4-Turbo's operating point on these rows). No model call; ~10 minutes on 2 cores.

  .venv/bin/python evals/eval_ir_solver.py
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import command_line, git_commit, log, table, write_results
from eval_screening import ANCHOR, Row, retriever_rows, tpr_at_fpr
from redux import DEFAULT_ROOT

from refinelab.metrics.option_probs import margin_against
from refinelab.metrics.screening_model import auroc
from refinelab.tools.embeddings import SentenceEmbedder, limit_threads

SIGNALS = ("stem+option", "option", "lexical")
CHUNK_WORDS, CHUNK_STEP, MAX_CHUNKS = 150, 120, 40  # MiniLM reads ~256 tokens
_WORD = re.compile(r"[a-z0-9]+")


def chunks(context: str) -> list[str]:
    """The row's paragraphs cut into overlapping windows the embedder reads whole."""
    out = []
    for paragraph in (p.strip() for p in re.split(r"\n+", context)):
        words = paragraph.split()
        if len(paragraph) > 40:
            out += [" ".join(words[i:i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_STEP)]
    return out[:MAX_CHUNKS] or [context[:1000] or "(no passage)"]


def option_scores(row: Row, embedder: SentenceEmbedder) -> dict[str, list[float]]:
    """Per signal, each option's support in the row's paragraphs."""
    paragraphs = embedder.embed(chunks(row.context))
    choices = row.item.choices
    queries = embedder.embed([f"{row.item.question} {c}" for c in choices] + list(choices))
    k = len(choices)
    words = set(_WORD.findall(row.context.lower()))
    lexical = [float(np.mean([w in words for w in _WORD.findall(c.lower())] or [0.0])) for c in choices]
    return {"stem+option": (queries[:k] @ paragraphs.T).max(axis=1).tolist(),
            "option": (queries[k:] @ paragraphs.T).max(axis=1).tolist(), "lexical": lexical}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="ir_solver_retriever")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = retriever_rows(Path(DEFAULT_ROOT))
    gold = [r.label != "ok" for r in rows]
    log(f"{len(rows)} retriever rows ({sum(gold)} errors)")
    embedder = SentenceEmbedder()
    scores = []
    with limit_threads(1):
        for n, row in enumerate(rows, 1):
            scores.append(option_scores(row, embedder))
            if n % 100 == 0:
                log(f"  {n}/{len(rows)}")
    types = sorted({r.label for r in rows} - {"ok"})
    figures: dict[str, dict[str, Any]] = {}
    for signal in SIGNALS:
        suspicion = [-margin_against(s[signal], r.item.answer) for s, r in zip(scores, rows, strict=True)]
        per_type = {}
        for t in types:
            pick = [i for i, r in enumerate(rows) if r.label in ("ok", t)]
            per_type[t] = auroc([suspicion[i] for i in pick], [rows[i].label == t for i in pick])
        figures[signal] = {"auroc": auroc(suspicion, gold), "at_fpr": tpr_at_fpr(suspicion, gold, ANCHOR["fpr"]),
                           "per_type": per_type}
        log(f"  {signal}: AUROC {figures[signal]['auroc']:.3f}")
    gpt4 = auroc([float(bool(r.gpt4_flag)) for r in rows], gold)
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "rows": len(rows),
              "errors": sum(gold), "signals": figures, "gpt4_flag_auroc": gpt4,
              "per_type_n": {t: sum(r.label == t for r in rows) for t in types},
              "elapsed_s": time.monotonic() - started}
    md = [f"# An IR solver on the retriever-evaluation rows ({args.tag})\n",
          f"{len(rows)} MMLU-Redux rows ({sum(gold)} errors); each option scored by its support in the row's own "
          "Wikipedia paragraphs (packaged MiniLM; no language model). Signal: minus the key's margin over the best "
          f"other option. GPT-4-Turbo's released verdicts on the same rows, as a 0/1 score: AUROC {gpt4:.3f}.\n",
          table(["signal", "AUROC", "TPR at FPR 0.11", *[f"{t} (n={result['per_type_n'][t]})" for t in types]],
                [[s, f"{f['auroc']:.3f}", f"{f['at_fpr']['tpr']:.2f}", *[f"{f['per_type'][t]:.3f}" for t in types]]
                 for s, f in figures.items()])]
    write_results(args.tag, result, "\n".join(md))
    return result


if __name__ == "__main__":
    main()
