"""The operation catalogue: what each edit applies to, what it costs, how often it succeeds, what it moves.

The planner never calls a model; it only needs, per operation, a token-cost model, a success
probability and the quality terms it touches. Both numbers start from documented priors and are
updated from pilot observations (least squares for cost, a Beta posterior for success), so re-planning
after a round uses what was actually observed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from refinelab.operations import REGISTRY, Op, Operation, Term


class CostModel(BaseModel):
    """Tokens per attempt as `intercept + slope * length_tokens` (prompt template + item + output + check).

    Failed attempts cost the same, so the planner multiplies nothing by the success probability.
    """

    model_config = ConfigDict(extra="forbid")

    intercept: float = Field(ge=0.0)
    slope: float = Field(ge=0.0)
    n_observations: int = 0  # pilot observations behind the fit (0 = prior only)

    def tokens(self, length_tokens: float) -> float:
        return self.intercept + self.slope * max(0.0, length_tokens)

    def fitted(self, lengths: Sequence[float], tokens: Sequence[float], prior_weight: float = 2.0) -> CostModel:
        """Least-squares fit on pilot (length, tokens) pairs, shrunk toward this model.

        The prior enters as `prior_weight` pseudo-observations on the prior line (half at length 0,
        half at the largest observed length), so one or two pilot points give a sensible line and many
        points override the prior. Negative coefficients are clamped to zero (a cost never shrinks with
        length) and the intercept refitted.
        """
        x = np.asarray(lengths, dtype=float)
        y = np.asarray(tokens, dtype=float)
        if x.shape != y.shape:
            raise ValueError("lengths and tokens must have the same length")
        if x.size == 0:
            return self
        x_ref = max(float(x.max()), 1.0)
        px = np.array([0.0, x_ref])
        py = np.array([self.tokens(0.0), self.tokens(x_ref)])
        weights = np.concatenate([np.ones_like(x), np.full(2, prior_weight / 2.0)])
        xs = np.concatenate([x, px])
        ys = np.concatenate([y, py])
        design = np.column_stack([np.ones_like(xs), xs]) * np.sqrt(weights)[:, None]
        coef, *_ = np.linalg.lstsq(design, ys * np.sqrt(weights), rcond=None)
        intercept, slope = float(coef[0]), float(coef[1])
        if slope < 0.0:
            slope = 0.0
            intercept = float(np.average(ys, weights=weights))
        if intercept < 0.0:
            intercept = 0.0
            slope = max(0.0, float(np.sum(weights * xs * ys) / max(np.sum(weights * xs * xs), 1e-12)))
        return CostModel(intercept=intercept, slope=slope, n_observations=self.n_observations + int(x.size))


class SuccessModel(BaseModel):
    """Validator pass probability as the mean of a Beta(alpha, beta) posterior.

    The prior's alpha + beta is its strength in pseudo-trials (10 by default: a 5-item pilot moves it
    about a third of the way toward the observed rate).
    """

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(gt=0.0)
    beta: float = Field(gt=0.0)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def updated(self, passes: int, trials: int) -> SuccessModel:
        if not 0 <= passes <= trials:
            raise ValueError(f"need 0 <= passes <= trials, got {passes}/{trials}")
        return SuccessModel(alpha=self.alpha + passes, beta=self.beta + trials - passes)

    @classmethod
    def prior(cls, mean: float, strength: float = 10.0) -> SuccessModel:
        return cls(alpha=mean * strength, beta=(1.0 - mean) * strength)


class OperationSpec(BaseModel):
    """One operation: its cost and success models and the quality terms it affects."""

    model_config = ConfigDict(extra="forbid")

    op: Op
    cost: CostModel
    success: SuccessModel
    terms: frozenset[Term]
    description: str = ""

    @property
    def success_prob(self) -> float:
        return self.success.mean


class ApplicabilityPolicy(BaseModel):
    """When an operation is a candidate for an item (kept small so the ILP only sees sensible options)."""

    model_config = ConfigDict(extra="forbid")

    enabled: frozenset[Op] = frozenset(Op)
    fix_min_p_error: float = Field(0.05, ge=0.0, le=1.0)  # below this a fix is almost surely wasted
    rewrite_max_distractor_score: float = Field(0.7, ge=0.0, le=1.0)  # only weak distractor sets
    distractor_score_after_rewrite: float = Field(0.9, ge=0.0, le=1.0)  # expected score of a passed rewrite
    calibrate_max_steps: int = Field(1, ge=1)  # how many buckets away a calibration may move an item
    # Deletion is the exception: without `allow_shrink`, `remove` is a candidate only for a defect (an
    # error likely enough that keeping it costs more than the item is worth, or a flagged item whose fix
    # failed) or a duplicate; with it, any item may be removed to cut an over-represented cell or bucket.
    allow_shrink: bool = False
    remove_min_p_error: float = Field(0.5, ge=0.0, le=1.0)  # p_error at/above which an item is a defect


def _prior_spec(entry: Operation) -> OperationSpec:
    return OperationSpec(op=entry.op, cost=CostModel(intercept=entry.cost_intercept, slope=entry.cost_slope),
                         success=SuccessModel.prior(entry.success_prior, entry.success_strength),
                         terms=entry.terms, description=entry.description)


#: The priors of every operation, from the operation registry (see `refinelab.operations`).
DEFAULT_SPECS: dict[Op, OperationSpec] = {op: _prior_spec(entry) for op, entry in REGISTRY.items()}


class PilotObservation(BaseModel):
    """One pilot attempt: which operation, on how long an item, what it cost, and whether it validated."""

    op: Op
    length_tokens: float = Field(ge=0.0)
    tokens: float = Field(ge=0.0)
    passed: bool


class Catalogue(BaseModel):
    """The operation specs in force plus the applicability policy; `updated` folds in pilot results."""

    model_config = ConfigDict(extra="forbid")

    specs: dict[Op, OperationSpec] = Field(default_factory=lambda: dict(DEFAULT_SPECS))
    applicability: ApplicabilityPolicy = Field(default_factory=ApplicabilityPolicy)

    def spec(self, op: Op | str) -> OperationSpec:
        return self.specs[Op(op)]

    def enabled(self, op: Op) -> bool:
        return op in self.applicability.enabled and op in self.specs

    def cost(self, op: Op | str, length_tokens: float) -> float:
        return self.spec(op).cost.tokens(length_tokens)

    def success(self, op: Op | str) -> float:
        return self.spec(op).success_prob

    def updated(self, observations: Iterable[PilotObservation], prior_weight: float = 2.0) -> Catalogue:
        """A new catalogue with costs refitted and success posteriors updated from pilot observations."""
        by_op: dict[Op, list[PilotObservation]] = {}
        for obs in observations:
            by_op.setdefault(obs.op, []).append(obs)
        specs = dict(self.specs)
        for op, rows in by_op.items():
            spec = specs[op]
            cost = spec.cost.fitted([r.length_tokens for r in rows], [r.tokens for r in rows], prior_weight)
            success = spec.success.updated(sum(r.passed for r in rows), len(rows))
            specs[op] = spec.model_copy(update={"cost": cost, "success": success})
        return Catalogue(specs=specs, applicability=self.applicability)
