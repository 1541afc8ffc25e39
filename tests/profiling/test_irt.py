"""Rasch IRT recovers planted item difficulties and model abilities from a panel's correctness matrix."""

import numpy as np
import pytest

from refinelab.metrics.irt import fit_rasch
from tests.support.difficulty_helpers import correctness_matrix, spearman


def simulate(n_models, n_items, seed, missing=0.1):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1.5, n_items)
    theta = rng.normal(0, 1, n_models)
    p = 1 / (1 + np.exp(-(theta[:, None] - b[None, :])))
    y = (rng.random(p.shape) < p).astype(float)
    y[rng.random(y.shape) < missing] = np.nan
    return y, b, theta


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_planted_difficulties(seed):
    y, b, theta = simulate(40, 150, seed)
    result = fit_rasch(y)
    assert result.converged
    assert spearman(result.item_logit, b) >= 0.9
    assert spearman(result.difficulty, b) >= 0.9  # the [0, 1] map keeps the order
    assert spearman(result.ability, theta) >= 0.9
    assert np.all((result.difficulty > 0) & (result.difficulty < 1))


def test_extreme_items_stay_finite_and_ordered():
    y = np.array([[1, 1, 0, np.nan], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=float)
    result = fit_rasch(y, item_ids=["easy", "mid", "hard", "sparse"], model_ids=["m1", "m2", "m3"])
    d = result.difficulty_by_id()
    assert np.all(np.isfinite(result.item_logit))
    assert d["easy"] < d["mid"] < d["hard"]
    assert result.n_responses.tolist() == [3, 3, 3, 2]
    assert set(result.ability_by_model()) == {"m1", "m2", "m3"}


def test_accepts_lists_with_none_and_rejects_bad_values():
    result = fit_rasch([[True, None], [False, True]])
    assert result.difficulty.shape == (2,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_rasch(np.array([[1.5, 1.0]]))
    soft = fit_rasch(np.array([[0.9, 0.2], [0.8, 0.1]]))  # soft correctness: probabilities of the key
    assert soft.difficulty[1] > soft.difficulty[0]


def test_anchored_difficulty_puts_the_panel_range_at_the_bucket_edges():
    from refinelab.metrics.irt import anchored_difficulty

    score, low, high = anchored_difficulty(np.array([-1.0, 0.0, 1.0, 3.0, -3.0]), np.array([-1.0, 0.0, 1.0]))
    assert (low, high) == (-1.0, 1.0)
    assert score[0] == pytest.approx(1 / 3) and score[2] == pytest.approx(2 / 3) and score[1] == pytest.approx(0.5)
    assert score[3] > 2 / 3 > 1 / 3 > score[4]
    one, low, high = anchored_difficulty(np.array([0.5]), np.array([0.5]))  # one member: widened to 2 logits
    assert high - low == pytest.approx(2.0) and one[0] == pytest.approx(0.5)


def test_soft_correctness_reads_probabilities_then_answers():
    from refinelab.metrics.irt import soft_correctness

    evidence = {"key": 1, "answers": {"a": 1, "b": 0, "c": None}, "probs": {"a": {"p": [0.3, 0.7]}}}
    assert soft_correctness(evidence, "a") == pytest.approx(0.7)
    assert soft_correctness(evidence, "b") == 0.0
    assert soft_correctness(evidence, "c") is None
    with pytest.raises(ValueError, match="shape"):
        fit_rasch(np.zeros((2, 2)), item_ids=["a"])


def test_correctness_matrix_from_panel_answers():
    answers = {"small": {"q1": 0, "q2": 3}, "big": {"q1": 0, "q2": None}}
    y, models, items = correctness_matrix(answers, {"q1": 0, "q2": 1})
    assert models == ["big", "small"] and items == ["q1", "q2"]
    assert y[1].tolist() == [1.0, 0.0]
    assert y[0, 0] == 1.0 and np.isnan(y[0, 1])


def test_reference_difficulty_places_p_key_in_the_models_reference_population():
    import json
    from importlib import resources

    from refinelab.metrics.irt import reference_difficulty

    quantiles = list(np.linspace(0.1, 0.7, 101))
    assert reference_difficulty(0.05, quantiles) == pytest.approx(1.0)
    assert reference_difficulty(0.4, quantiles) == pytest.approx(0.5)
    assert reference_difficulty(0.9, quantiles) == 0.0
    assert reference_difficulty(0.5, [0.5] * 101) == pytest.approx(0.5)  # a step: its middle
    # the shipped reference spreads a real population over the thirds rather than one bucket
    shipped = json.loads(resources.files("refinelab.data").joinpath("difficulty_reference.json").read_text())
    q = shipped["p_key_quantiles"]
    assert len(q) == 101 and q == sorted(q) and shipped["items"] >= 100
    scores = [reference_difficulty(v, q) for v in q]
    buckets = [sum(lo <= s < hi for s in scores) for lo, hi in ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.01))]
    assert min(buckets) >= 25
