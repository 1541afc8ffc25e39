"""Cost fits, success posteriors and applicability rules of the operation catalogue."""

from __future__ import annotations

import numpy as np
import pytest

from refinelab.operations import Op, Term, operation
from refinelab.planner.catalogue import (
    DEFAULT_SPECS,
    ApplicabilityPolicy,
    Catalogue,
    CostModel,
    PilotObservation,
    SuccessModel,
)


def test_every_operation_has_priors_and_terms() -> None:
    assert set(DEFAULT_SPECS) == set(Op)
    for spec in DEFAULT_SPECS.values():
        assert 0 < spec.success_prob < 1 and spec.terms
        # an operation that calls a model costs tokens; a removal calls none and is priced at zero
        assert (spec.cost.intercept > 0) == operation(spec.op).calls_model
    assert Term.ERRORS in DEFAULT_SPECS[Op.FIX].terms
    assert Term.COVERAGE in DEFAULT_SPECS[Op.EXPAND].terms


def test_cost_fit_recovers_a_line_from_many_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(20, 400, 200)
    y = 300 + 4.0 * x + rng.normal(0, 10, 200)
    fit = CostModel(intercept=1000, slope=1.0).fitted(x, y)
    assert fit.intercept == pytest.approx(300, abs=25)
    assert fit.slope == pytest.approx(4.0, abs=0.15)
    assert fit.n_observations == 200


def test_cost_fit_with_few_points_stays_near_the_prior() -> None:
    prior = CostModel(intercept=800, slope=3.0)
    one = prior.fitted([100], [2000])
    assert prior.tokens(100) < one.tokens(100) < 2000
    assert prior.fitted([], []) == prior


def test_cost_fit_never_negative() -> None:
    fit = CostModel(intercept=100, slope=1).fitted([10, 20, 30, 40], [900, 700, 500, 300])
    assert fit.slope >= 0 and fit.intercept >= 0


def test_success_posterior() -> None:
    prior = SuccessModel.prior(0.7, strength=10)
    assert prior.mean == pytest.approx(0.7)
    post = prior.updated(passes=5, trials=5)
    assert post.mean == pytest.approx(12 / 15)
    with pytest.raises(ValueError):
        prior.updated(3, 2)


def test_catalogue_update_from_pilot() -> None:
    cat = Catalogue()
    obs = [PilotObservation(op=Op.FIX, length_tokens=100 + 10 * i, tokens=2000 + 10 * i, passed=i % 2 == 0)
           for i in range(6)]
    new = cat.updated(obs)
    assert new.success(Op.FIX) < cat.success(Op.FIX)  # 3/6 passed, prior 0.7
    assert new.cost(Op.FIX, 120) > cat.cost(Op.FIX, 120)
    assert new.spec(Op.REMOVE) == cat.spec(Op.REMOVE)


def test_applicability_policy_disables() -> None:
    cat = Catalogue(applicability=ApplicabilityPolicy(enabled=frozenset({Op.FIX})))
    assert cat.enabled(Op.FIX) and not cat.enabled(Op.REMOVE)
