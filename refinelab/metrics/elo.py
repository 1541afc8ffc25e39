"""Elo difficulty from pairwise "which question is harder?" judgements, in O(n log n) comparisons.

Why this shape:
- each pair is asked in both orders and a disagreement counts as a draw, so a judge's position bias
  cancels instead of leaking into ratings;
- Swiss-style rounds pair neighbours in the current rating (random pairing in round 1, rematches
  avoided), so ~log2(n) + c rounds of n/2 pairs order the set — n·(log2 n + c) judge calls, not n²;
- the K-factor decays geometrically across rounds (big moves while ratings are unknown, fine moves later);
- final ratings are the Bradley–Terry maximum-likelihood fit of all matches (the order-independent fixed
  point of Elo; a weak prior keeps unbeaten items finite), on the Elo scale; ``fit="elo"`` keeps the
  online ratings instead;
- bootstrap over matches gives a confidence interval per item.

The judge is any callable ``judge(a, b) -> "first" | "second"`` naming the HARDER item, or a batch judge
``judge(list_of_pairs) -> list_of_verdicts``; the agents layer wraps the LLM prompt into one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
Verdict = Literal["first", "second"]
Judge = Callable[[T, T], Verdict]
BatchJudge = Callable[[Sequence[tuple[T, T]]], Sequence[Verdict]]


@dataclass(frozen=True)
class EloConfig:
    """Schedule and fitting knobs; the defaults meet the must-show bound (≤ 8·n·log2 n calls)."""

    rounds: int | None = None  # None: ceil(log2 n) + extra_rounds
    extra_rounds: int = 8
    initial: float = 1500.0
    scale: float = 400.0  # Elo points per factor-10 in odds
    k_start: float = 64.0  # K in round 1 ...
    k_end: float = 16.0  # ... decaying geometrically to this in the last round
    fit: Literal["bt", "elo"] = "bt"
    prior_games: float = 1.0  # virtual draws against an average item in the Bradley–Terry fit
    bootstrap: int = 200  # resamples for the confidence interval (0 = none)
    ci: float = 0.90
    seed: int = 0

    def n_rounds(self, n: int) -> int:
        if self.rounds is not None:
            return self.rounds
        return math.ceil(math.log2(max(n, 2))) + self.extra_rounds

    def k_factor(self, round_index: int, n_rounds: int) -> float:
        """K for a 0-based round: geometric decay from k_start to k_end."""
        if n_rounds <= 1:
            return self.k_start
        return self.k_start * (self.k_end / self.k_start) ** (round_index / (n_rounds - 1))


@dataclass(frozen=True)
class Match:
    """One pair judged in both orders. `score` is for `first` being harder: 1 win, 0.5 draw, 0 loss."""

    first: int
    second: int
    score: float
    verdicts: tuple[Verdict, Verdict]  # (verdict asked as (first, second), verdict asked as (second, first))


@dataclass
class EloResult(Generic[K]):
    """Ratings (higher = harder) with bootstrap intervals and the full match record for audit/replay."""

    ids: list[K]
    ratings: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    online_ratings: np.ndarray
    matches: list[Match] = field(default_factory=list)
    comparisons: int = 0  # judge calls, both orders counted
    rounds: int = 0

    def as_dict(self) -> dict[K, float]:
        return {k: float(r) for k, r in zip(self.ids, self.ratings, strict=True)}

    def difficulty(self, method: Literal["logistic", "percentile"] = "logistic", scale: float = 400.0) -> dict[K, float]:
        """Ratings mapped to [0, 1] (1 = hardest); see `unit_difficulty`."""
        return dict(zip(self.ids, unit_difficulty(self.ratings, method, scale).tolist(), strict=True))


def both_orders(judge: Judge[T], a: T, b: T) -> tuple[float, tuple[Verdict, Verdict]]:
    """Ask (a, b) and (b, a); score for `a` being harder, disagreement = draw."""
    v1, v2 = judge(a, b), judge(b, a)
    return _score(v1, v2), (v1, v2)


def _score(v_ab: str, v_ba: str) -> float:
    for v in (v_ab, v_ba):
        if v not in ("first", "second"):
            raise ValueError(f"judge must answer 'first' or 'second', got {v!r}")
    a_harder = (v_ab == "first") + (v_ba == "second")
    return a_harder / 2.0


def swiss_pairs(ratings: np.ndarray, played: set[tuple[int, int]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pair neighbours in current rating (random tie-break), skipping to the next-nearest on a rematch.

    With an odd count the item left over sits the round out.
    """
    n = len(ratings)
    order = [int(i) for i in np.lexsort((rng.random(n), ratings))]
    pairs: list[tuple[int, int]] = []
    while len(order) >= 2:
        a = order.pop(0)
        pick = 0
        for j, b in enumerate(order):  # nearest neighbour not met yet; a rematch only when none is left
            if (min(a, b), max(a, b)) not in played:
                pick = j
                break
        b = order.pop(pick)
        pairs.append((a, b))
    return _repair_rematches(pairs, played)


def _repair_rematches(pairs: list[tuple[int, int]], played: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Swap partners with another pair when greedy pairing was forced into a rematch at the tail."""
    def fresh(x: int, y: int) -> bool:
        return (min(x, y), max(x, y)) not in played

    for i, (a, b) in enumerate(pairs):
        if fresh(a, b):
            continue
        for j in range(len(pairs) - 1, -1, -1):
            c, d = pairs[j]
            if j == i:
                continue
            if fresh(a, c) and fresh(b, d):
                pairs[i], pairs[j] = (a, c), (b, d)
                break
            if fresh(a, d) and fresh(b, c):
                pairs[i], pairs[j] = (a, d), (b, c)
                break
    return pairs


def fit_bradley_terry(
    n: int,
    first: np.ndarray,
    second: np.ndarray,
    score: np.ndarray,
    prior_games: float = 1.0,
    scale: float = 400.0,
    initial: float = 1500.0,
    start: np.ndarray | None = None,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> np.ndarray:
    """Bradley–Terry MLE by the MM algorithm (Hunter 2004), draws as half wins, on the Elo scale.

    `prior_games` virtual draws against an average item keep items with all wins/losses finite.
    """
    wins = np.bincount(first, weights=score, minlength=n) + np.bincount(second, weights=1 - score, minlength=n)
    wins = wins + 0.5 * prior_games
    gamma = np.ones(n) if start is None else 10 ** ((start - initial) / scale)
    for _ in range(max_iter):
        inv = 1.0 / (gamma[first] + gamma[second])
        denom = np.bincount(first, weights=inv, minlength=n) + np.bincount(second, weights=inv, minlength=n)
        denom = denom + prior_games / (gamma + 1.0)
        new = wins / denom
        new = new / math.exp(np.mean(np.log(new)))  # geometric mean 1 = rating `initial`
        if np.max(np.abs(np.log(new) - np.log(gamma))) < tol:
            gamma = new
            break
        gamma = new
    return initial + scale * np.log10(gamma)


def run_elo(
    items: Sequence[T],
    judge: Judge[T] | None = None,
    *,
    batch_judge: BatchJudge[T] | None = None,
    ids: Sequence[K] | None = None,
    config: EloConfig | None = None,
) -> EloResult[K]:
    """Rate items by difficulty with Swiss rounds; give exactly one of `judge` or `batch_judge`.

    A batch judge receives every (a, b) query of a round at once (both orders), so the caller can fan
    the LLM calls out in parallel and cache them.
    """
    if (judge is None) == (batch_judge is None):
        raise ValueError("give exactly one of judge= or batch_judge=")
    config = config or EloConfig()
    n = len(items)
    if n < 2:
        raise ValueError("need at least two items to compare")
    keys: list = list(ids) if ids is not None else list(range(n))
    if len(keys) != n:
        raise ValueError("ids must match items one to one")
    rng = np.random.default_rng(config.seed)
    ratings = np.full(n, config.initial, dtype=float)
    played: set[tuple[int, int]] = set()
    matches: list[Match] = []
    n_rounds = config.n_rounds(n)
    for r in range(n_rounds):
        pairs = swiss_pairs(ratings, played, rng)
        if batch_judge is not None:
            queries = [(items[a], items[b]) for a, b in pairs] + [(items[b], items[a]) for a, b in pairs]
            verdicts = list(batch_judge(queries))
            if len(verdicts) != len(queries):
                raise ValueError(f"batch judge returned {len(verdicts)} verdicts for {len(queries)} pairs")
            m = len(pairs)
            results = [(_score(verdicts[i], verdicts[m + i]), (verdicts[i], verdicts[m + i])) for i in range(m)]
        else:
            results = [both_orders(judge, items[a], items[b]) for a, b in pairs]  # type: ignore[arg-type]
        k = config.k_factor(r, n_rounds)
        delta = np.zeros(n)
        for (a, b), (s, v) in zip(pairs, results, strict=True):
            expected = 1.0 / (1.0 + 10 ** ((ratings[b] - ratings[a]) / config.scale))
            delta[a] += k * (s - expected)
            delta[b] -= k * (s - expected)
            played.add((min(a, b), max(a, b)))
            matches.append(Match(a, b, s, v))
        ratings = ratings + delta  # simultaneous update: every match of a round sees pre-round ratings
    online = ratings.copy()
    first = np.array([m.first for m in matches])
    second = np.array([m.second for m in matches])
    score = np.array([m.score for m in matches])
    fit_kwargs = {"prior_games": config.prior_games, "scale": config.scale, "initial": config.initial}
    final = fit_bradley_terry(n, first, second, score, **fit_kwargs) if config.fit == "bt" else online
    low, high = final.copy(), final.copy()
    if config.bootstrap > 0:
        samples = np.empty((config.bootstrap, n))
        for b in range(config.bootstrap):
            idx = rng.integers(0, len(matches), len(matches))
            samples[b] = fit_bradley_terry(
                n, first[idx], second[idx], score[idx], start=final, max_iter=100, tol=1e-4, **fit_kwargs
            ) if config.fit == "bt" else _replay_elo(n, first[idx], second[idx], score[idx], config)
        alpha = (1 - config.ci) / 2
        low, high = np.quantile(samples, alpha, axis=0), np.quantile(samples, 1 - alpha, axis=0)
    return EloResult(
        ids=keys, ratings=final, ci_low=low, ci_high=high, online_ratings=online,
        matches=matches, comparisons=2 * len(matches), rounds=n_rounds,
    )


def _replay_elo(n: int, first: np.ndarray, second: np.ndarray, score: np.ndarray, config: EloConfig) -> np.ndarray:
    """Sequential Elo over a match list with the decaying K schedule (used to bootstrap fit='elo')."""
    ratings = np.full(n, config.initial)
    total = len(first)
    for i, (a, b, s) in enumerate(zip(first, second, score, strict=True)):
        k = config.k_start * (config.k_end / config.k_start) ** (i / max(total - 1, 1))
        expected = 1.0 / (1.0 + 10 ** ((ratings[b] - ratings[a]) / config.scale))
        ratings[a] += k * (s - expected)
        ratings[b] -= k * (s - expected)
    return ratings


def unit_difficulty(
    ratings: np.ndarray | Sequence[float], method: Literal["logistic", "percentile"] = "logistic", scale: float = 400.0
) -> np.ndarray:
    """Map ratings to [0, 1], 1 = hardest.

    logistic: probability the item is judged harder than an item of mean rating (keeps spread, so a
    dataset of uniformly easy items is not forced into balanced buckets); percentile: rank / (n - 1).
    Elo is relative to the dataset either way; anchor with panel IRT for absolute difficulty.
    """
    r = np.asarray(ratings, dtype=float)
    if method == "logistic":
        return 1.0 / (1.0 + 10 ** (-(r - r.mean()) / scale))
    if method == "percentile":
        if len(r) == 1:
            return np.array([0.5])
        ranks = np.argsort(np.argsort(r, kind="stable"), kind="stable")
        return ranks / (len(r) - 1)
    raise ValueError(f"unknown method {method!r}; use 'logistic' or 'percentile'")


def bucket_by_thresholds(
    scores: Mapping[K, float], thresholds: Sequence[float] = (1 / 3, 2 / 3),
    names: Sequence[str] = ("easy", "medium", "hard"),
) -> dict[K, str]:
    """Bucket each score: bucket i holds [thresholds[i-1], thresholds[i])."""
    if len(names) != len(thresholds) + 1:
        raise ValueError(f"{len(thresholds)} thresholds need {len(thresholds) + 1} names, got {len(names)}")
    cuts = np.asarray(thresholds, dtype=float)
    if np.any(np.diff(cuts) <= 0):
        raise ValueError(f"thresholds must be strictly increasing, got {list(thresholds)}")
    return {k: names[int(np.searchsorted(cuts, v, side="right"))] for k, v in scores.items()}
