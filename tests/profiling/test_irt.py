"""Rasch IRT recovers planted item difficulties and model abilities from a panel's correctness matrix."""

import numpy as np
import pytest

from refinelab.metrics.elo import spearman
from refinelab.metrics.irt import correctness_matrix, fit_rasch


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
    with pytest.raises(ValueError, match="0/1"):
        fit_rasch(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        fit_rasch(np.zeros((2, 2)), item_ids=["a"])


def test_correctness_matrix_from_panel_answers():
    answers = {"small": {"q1": 0, "q2": 3}, "big": {"q1": 0, "q2": None}}
    y, models, items = correctness_matrix(answers, {"q1": 0, "q2": 1})
    assert models == ["big", "small"] and items == ["q1", "q2"]
    assert y[1].tolist() == [1.0, 0.0]
    assert y[0, 0] == 1.0 and np.isnan(y[0, 1])
