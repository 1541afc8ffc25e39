"""Can an item's wording alone predict MMLU-Redux's human error labels in subjects the model has not seen?

The shipped combiner reads three hand-made text signals beside p(key): does the stem cite a context,
is it a question, and how long is the key against the other options. This eval asks whether a learned
text model does better. It fits a logistic regression on MiniLM embeddings of the item (the stem; the
stem with the key; the stem, the options and the key), raw or centred within each subject. It is
scored out of fold with folds grouped by subject, as `eval_screening.py` scores the combiner. It uses
every labelled dev row that is not "expert", and no model call.

  .venv/bin/python evals/eval_text_prior.py --tag text_prior_dev
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from common import log, table, write_results
from eval_screening import Row, dev_rows
from redux import DEFAULT_ROOT
from sklearn.linear_model import LogisticRegression

from refinelab.metrics.screening_model import SHIPPED_FEATURES, auroc, item_features
from refinelab.tools.embeddings import get_embedder

TEXT_FEATURES = [f for f in SHIPPED_FEATURES if f != "pooled_p_key"]
VIEWS = {
    "stem": lambda r: r.item.question,
    "stem + key": lambda r: f"{r.item.question} Answer: {r.item.choices[r.item.answer]}",
    "stem + options + key": lambda r: (f"{r.item.question} Options: {' | '.join(r.item.choices)} "
                                       f"Answer: {r.item.choices[r.item.answer]}"),
}


def out_of_fold(rows: list[Row], x: np.ndarray, gold: np.ndarray, c: float) -> list[float]:
    """Scores from a model fitted on the other subjects (five folds of subjects, as eval_screening)."""
    subjects = sorted({r.subject for r in rows})
    scores = np.zeros(len(rows))
    for held in (subjects[i::5] for i in range(5)):
        test = np.array([r.subject in held for r in rows])
        mean, scale = x[~test].mean(0), x[~test].std(0) + 1e-9
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        model.fit((x[~test] - mean) / scale, gold[~test])
        scores[test] = model.decision_function((x[test] - mean) / scale)
    return scores.tolist()


def centred(x: np.ndarray, rows: list[Row]) -> np.ndarray:
    """Each subject's mean vector removed (what a subject has in common is not what marks an error)."""
    subjects = np.array([r.subject for r in rows])
    out = x.copy()
    for subject in set(subjects.tolist()):
        out[subjects == subject] -= out[subjects == subject].mean(0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="text_prior_dev")
    args = parser.parse_args()
    rows = dev_rows(DEFAULT_ROOT)
    gold = np.array([r.label != "ok" for r in rows])
    log(f"{len(rows)} dev rows, {int(gold.sum())} with an error")
    results: list[dict[str, Any]] = []
    hand = np.array([[item_features(r.item, None)[f] for f in TEXT_FEATURES] for r in rows])
    results.append({"model": "the shipped combiner's text signals (" + ", ".join(TEXT_FEATURES) + ")",
                    "auroc": auroc(out_of_fold(rows, hand, gold, 0.05), gold.tolist())})
    embedder = get_embedder()
    for view, text in VIEWS.items():
        vectors = embedder.embed([text(r) for r in rows])
        for name, x in (("raw", vectors), ("centred in its subject", centred(vectors, rows))):
            for c in (0.001, 0.01, 0.1):
                score = auroc(out_of_fold(rows, x, gold, c), gold.tolist())
                results.append({"model": f"MiniLM of {view}, {name}, C={c}", "auroc": score})
                log(f"{view} {name} C={c}: AUROC {score:.3f}")
    md = "\n".join([
        "# Error labels from the item's wording alone (MMLU-Redux dev, out of fold by subject)", "",
        f"{len(rows)} rows, {int(gold.sum())} with an error; no model call.", "",
        table(["text model", "AUROC"], [[r["model"], f"{r['auroc']:.3f}"] for r in results])])
    write_results(args.tag, {"rows": len(rows), "errors": int(gold.sum()), "results": results}, md)
    print(md)


if __name__ == "__main__":
    main()
