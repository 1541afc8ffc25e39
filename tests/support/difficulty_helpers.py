"""What the difficulty tests (Elo, Rasch IRT) measure with but the product never calls: a rank correlation
to score a recovered order against the planted one, buckets cut at the scores' own quantiles, and the
correctness matrix of a panel's answers (moved out of `refinelab.metrics`, where only tests used them)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from refinelab.metrics.elo import bucket_by_thresholds

K = TypeVar("K", bound=Hashable)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties), numpy only: how well a fit recovered an order."""
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # average tied ranks
            mask = v == value
            if mask.sum() > 1:
                r[mask] = r[mask].mean()
        return r

    a, b = ranks(np.asarray(x, dtype=float)), ranks(np.asarray(y, dtype=float))
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def bucket_by_quantiles(
    scores: Mapping[K, float], quantiles: Sequence[float] = (1 / 3, 2 / 3),
    names: Sequence[str] = ("easy", "medium", "hard"),
) -> dict[K, str]:
    """Bucket by the scores' own quantiles (equal-size buckets by default), through the product's
    `bucket_by_thresholds`."""
    if not scores:
        return {}
    cuts = np.quantile(np.fromiter(scores.values(), dtype=float), quantiles)
    cuts = np.maximum.accumulate(cuts + np.arange(len(cuts)) * 1e-12)  # keep strictly increasing on ties
    return bucket_by_thresholds(scores, cuts.tolist(), names)


def correctness_matrix(
    answers: Mapping[str, Mapping[str, int | None]], keys: Mapping[str, int]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Panel answers {model: {item_id: chosen index or None}} and keys {item_id: index} → (matrix, models, items),
    the input `fit_rasch` takes.

    A missing or unparsed answer (None / absent) is NaN, not "wrong": failure to answer is not evidence
    about the item.
    """
    models = sorted(answers)
    items = list(keys)
    y = np.full((len(models), len(items)), np.nan)
    for m, model in enumerate(models):
        for i, item in enumerate(items):
            choice = answers[model].get(item)
            if choice is not None:
                y[m, i] = float(choice == keys[item])
    return y, models, items
