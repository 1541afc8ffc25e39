"""Elo difficulty: the must-show recovery bound, both-order draws, batch judges, CIs and buckets."""

import math

import numpy as np
import pytest

from refinelab.metrics.elo import (
    EloConfig,
    bucket_by_thresholds,
    run_elo,
    unit_difficulty,
)
from tests.support.difficulty_helpers import bucket_by_quantiles, spearman


def noisy_judge(true_difficulty, accuracy, rng):
    """Answers "which is harder" correctly with probability `accuracy`, independently per call."""
    def judge(a, b):
        first_harder = true_difficulty[a] > true_difficulty[b]
        return "first" if first_harder == (rng.random() < accuracy) else "second"
    return judge


@pytest.mark.parametrize("n, seed", [(64, 0), (64, 1), (100, 2), (128, 3), (128, 4), (200, 5)])
def test_must_show_recovers_planted_order_with_80pct_judge(n, seed):
    rng = np.random.default_rng(seed)
    true = rng.permutation(n)
    calls = 0
    judge_inner = noisy_judge(true, 0.8, rng)

    def judge(a, b):
        nonlocal calls
        calls += 1
        return judge_inner(a, b)

    result = run_elo(list(range(n)), judge, config=EloConfig(seed=seed, bootstrap=0))
    assert calls == result.comparisons  # both orders counted
    assert calls <= 8 * n * math.log2(n)
    assert spearman(result.ratings, true) >= 0.9


def test_both_orders_disagreement_is_a_draw():
    always_first = lambda a, b: "first"  # noqa: E731 - pure position bias
    result = run_elo(list(range(16)), always_first, config=EloConfig(bootstrap=0, rounds=4))
    assert all(m.score == 0.5 for m in result.matches)
    assert np.allclose(result.ratings, result.ratings[0])


def test_batch_judge_gives_same_result_as_single_judge():
    true = np.random.default_rng(0).permutation(32)
    perfect = lambda a, b: "first" if true[a] > true[b] else "second"  # noqa: E731
    batch_calls = []

    def batch(pairs):
        batch_calls.append(len(pairs))
        return [perfect(a, b) for a, b in pairs]

    cfg = EloConfig(seed=3, bootstrap=0)
    single = run_elo(list(range(32)), perfect, config=cfg)
    batched = run_elo(list(range(32)), batch_judge=batch, config=cfg)
    assert np.allclose(single.ratings, batched.ratings)
    assert len(batch_calls) == cfg.n_rounds(32) and all(c == 32 for c in batch_calls)
    assert spearman(single.ratings, true) > 0.97


def test_no_rematches_and_ids_and_bootstrap_interval():
    rng = np.random.default_rng(7)
    true = rng.permutation(40)
    ids = [f"q{i}" for i in range(40)]
    result = run_elo(list(range(40)), noisy_judge(true, 0.8, rng), ids=ids, config=EloConfig(seed=7, bootstrap=50))
    pairs = [(min(m.first, m.second), max(m.first, m.second)) for m in result.matches]
    assert len(pairs) - len(set(pairs)) <= 0.02 * len(pairs)  # rematches only when the tail is forced
    assert np.all(result.ci_low <= result.ratings + 1e-9) and np.all(result.ratings <= result.ci_high + 1e-9)
    assert np.all(result.ci_high - result.ci_low > 0)
    assert set(result.as_dict()) == set(ids)
    diff = result.difficulty()
    assert all(0 <= v <= 1 for v in diff.values())


def test_k_schedule_decays_and_validation():
    cfg = EloConfig(k_start=64, k_end=16)
    ks = [cfg.k_factor(r, 10) for r in range(10)]
    assert ks[0] == 64 and ks[-1] == pytest.approx(16) and all(a > b for a, b in zip(ks, ks[1:], strict=False))
    with pytest.raises(ValueError, match="first' or 'second"):
        run_elo([1, 2], lambda a, b: "harder", config=EloConfig(bootstrap=0))
    with pytest.raises(ValueError, match="exactly one"):
        run_elo([1, 2])
    with pytest.raises(ValueError, match="two items"):
        run_elo([1], lambda a, b: "first")


def test_unit_difficulty_and_buckets():
    ratings = np.array([1000.0, 1500.0, 2000.0])
    logistic = unit_difficulty(ratings)
    assert logistic[1] == pytest.approx(0.5) and logistic[0] < 0.5 < logistic[2]
    assert unit_difficulty(ratings, "percentile").tolist() == [0.0, 0.5, 1.0]
    scores = {"a": 0.1, "b": 0.4, "c": 0.8, "d": 0.34}
    assert bucket_by_thresholds(scores, [0.34, 0.67]) == {"a": "easy", "b": "medium", "c": "hard", "d": "medium"}
    quant = bucket_by_quantiles({i: float(i) for i in range(9)})
    assert [quant[i] for i in range(9)].count("easy") == 3 and quant[8] == "hard"
    with pytest.raises(ValueError, match="increasing"):
        bucket_by_thresholds(scores, [0.6, 0.3])
