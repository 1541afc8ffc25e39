"""Jensen–Shannon divergence between a dataset's profile and a target, plus the empirical profiles.

JSD (base 2) is bounded in [0, 1], symmetric and finite when a cell is empty on one side, which is why the
coverage and difficulty gaps are measured with it rather than KL. Distributions are plain dicts over
hashable cells (e.g. ``("STEM", "recall")`` or ``"hard"``); missing keys mean probability zero.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from refinelab.schema import Cell, QAItem

K = TypeVar("K", bound=Hashable)


def normalise(weights: Mapping[K, float]) -> dict[K, float]:
    """Scale non-negative weights to sum to 1; refuse negative, non-finite or all-zero input."""
    if not weights:
        raise ValueError("distribution is empty: it has no cells")
    total = 0.0
    for cell, value in weights.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"weight for cell {cell!r} is not finite: {value}")
        if value < 0:
            raise ValueError(f"weight for cell {cell!r} is negative: {value}")
        total += value
    if not math.isfinite(total):
        raise ValueError("distribution's weights are too large to add up; scale them down")
    if total <= 0:
        raise ValueError("distribution has zero total mass: every cell is 0")
    return {cell: float(value) / total for cell, value in weights.items()}


def _kl_to_mixture(p: Mapping[K, float], m: Mapping[K, float]) -> float:
    """KL(p || m) in bits, where m is the mixture (so m > 0 wherever p > 0)."""
    return sum(pv * math.log2(pv / m[c]) for c, pv in p.items() if pv > 0)


def jensen_shannon(p: Mapping[K, float], q: Mapping[K, float]) -> float:
    """JSD base 2 in [0, 1] between two distributions given as (possibly unnormalised) dicts.

    Both inputs are normalised first; cells present in only one input count as zero in the other.
    """
    p_n, q_n = normalise(p), normalise(q)
    cells = set(p_n) | set(q_n)
    p_full = {c: p_n.get(c, 0.0) for c in cells}
    q_full = {c: q_n.get(c, 0.0) for c in cells}
    m = {c: 0.5 * (p_full[c] + q_full[c]) for c in cells}
    value = 0.5 * _kl_to_mixture(p_full, m) + 0.5 * _kl_to_mixture(q_full, m)
    return min(1.0, max(0.0, value))  # clamp float noise


def empirical(cells: Iterable[K]) -> dict[K, float]:
    """Relative frequency of each cell in a sequence of observations."""
    counts = Counter(cells)
    if not counts:
        raise ValueError("cannot build a distribution from zero observations")
    return normalise(counts)


def coverage_distribution(items: Iterable[QAItem]) -> dict[Cell, float]:
    """Empirical distribution of items over domain × skill cells (unlabelled parts stay visible)."""
    return empirical(item.cell for item in items)


def bucket_of(score: float, thresholds: Sequence[float], names: Sequence[str]) -> str:
    """Bucket name for a difficulty score: bucket i holds scores in [thresholds[i-1], thresholds[i])."""
    if len(names) != len(thresholds) + 1:
        raise ValueError(f"{len(thresholds)} thresholds need {len(thresholds) + 1} bucket names, got {len(names)}")
    if list(thresholds) != sorted(thresholds):
        raise ValueError(f"thresholds must be increasing, got {list(thresholds)}")
    index = sum(1 for t in thresholds if score >= t)
    return names[index]


def difficulty_distribution(
    scores: Iterable[float | None],
    thresholds: Sequence[float] = (1 / 3, 2 / 3),
    names: Sequence[str] = ("easy", "medium", "hard"),
) -> dict[str, float]:
    """Empirical distribution over difficulty buckets; items without a score are left out (not guessed)."""
    buckets = [bucket_of(s, thresholds, names) for s in scores if s is not None]
    if not buckets:
        raise ValueError("no item has a difficulty score; profile difficulty first")
    dist = empirical(buckets)
    return {name: dist.get(name, 0.0) for name in names}


def divergence_report(
    observed: Mapping[K, float], target: Mapping[K, float]
) -> dict[str, object]:
    """JSD plus the per-cell gap (observed − target), largest absolute gap first, for reports and planning."""
    obs, tgt = normalise(observed), normalise(target)
    cells = set(obs) | set(tgt)
    gaps = sorted(((c, obs.get(c, 0.0) - tgt.get(c, 0.0)) for c in cells), key=lambda cg: -abs(cg[1]))
    return {"jsd": jensen_shannon(obs, tgt), "gaps": gaps}
