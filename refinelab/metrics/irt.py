"""One-parameter (Rasch) IRT from a model panel's correctness matrix: absolute item difficulty.

P(model m answers item i correctly) = sigmoid(ability[m] − difficulty[i]). Fit is MAP with weak Gaussian
priors on both (so items every model gets right/wrong stay finite), by damped diagonal Newton steps in
numpy. Missing answers (the panel did not see, or failed to parse) are NaN and simply left out. Unlike
Elo, the result is anchored to the panel: an item is hard when the panel's average model tends to fail it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class RaschResult:
    """Fitted parameters; `difficulty` in [0, 1] = P(a panel model of average ability gets it wrong)."""

    item_ids: list[str]
    model_ids: list[str]
    item_logit: np.ndarray  # b_i on the logit scale (higher = harder)
    ability: np.ndarray  # theta_m on the logit scale
    difficulty: np.ndarray  # sigmoid(b_i − mean(theta)), 1 = hardest
    n_responses: np.ndarray  # observed answers per item (0 = only the prior speaks)
    iterations: int
    converged: bool

    def difficulty_by_id(self) -> dict[str, float]:
        return dict(zip(self.item_ids, self.difficulty.tolist(), strict=True))

    def ability_by_model(self) -> dict[str, float]:
        return dict(zip(self.model_ids, self.ability.tolist(), strict=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_rasch(
    correct: np.ndarray | Sequence[Sequence[float | bool | None]],
    *,
    item_ids: Sequence[str] | None = None,
    model_ids: Sequence[str] | None = None,
    prior_sd_item: float = 2.0,
    prior_sd_ability: float = 2.0,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> RaschResult:
    """Fit a models × items matrix of 1/0 (True/False), or soft correctness in [0, 1], with NaN/None for
    missing."""
    y = np.array([[np.nan if v is None else float(v) for v in row] for row in correct], dtype=float) \
        if not isinstance(correct, np.ndarray) else correct.astype(float)
    if y.ndim != 2 or y.size == 0:
        raise ValueError(f"expected a non-empty models × items matrix, got shape {y.shape}")
    observed = ~np.isnan(y)
    if np.any((y[observed] < 0) | (y[observed] > 1)):
        # fractional entries are soft correctness (a member's probability of the key): the Bernoulli
        # likelihood and its Newton steps are the same with a soft target
        raise ValueError("correctness entries must be in [0, 1] (or NaN for missing)")
    n_models, n_items = y.shape
    items = list(item_ids) if item_ids is not None else [str(i) for i in range(n_items)]
    models = list(model_ids) if model_ids is not None else [str(m) for m in range(n_models)]
    if len(items) != n_items or len(models) != n_models:
        raise ValueError("item_ids/model_ids do not match the matrix shape")
    mask = observed.astype(float)
    y0 = np.where(observed, y, 0.0)
    theta, b = np.zeros(n_models), np.zeros(n_items)
    var_b, var_t = prior_sd_item**2, prior_sd_ability**2
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        p = _sigmoid(theta[:, None] - b[None, :])
        resid = (y0 - p) * mask
        info = p * (1 - p) * mask
        step_t = (resid.sum(axis=1) - theta / var_t) / (info.sum(axis=1) + 1 / var_t)
        step_b = (-resid.sum(axis=0) - b / var_b) / (info.sum(axis=0) + 1 / var_b)
        step_t, step_b = np.clip(step_t, -1, 1), np.clip(step_b, -1, 1)  # damping keeps early steps sane
        theta, b = theta + step_t, b + step_b
        if max(np.abs(step_t).max(), np.abs(step_b).max()) < tol:
            converged = True
            break
    return RaschResult(
        item_ids=items, model_ids=models, item_logit=b, ability=theta,
        difficulty=_sigmoid(b - theta.mean()), n_responses=observed.sum(axis=0),
        iterations=it, converged=converged,
    )


def soft_correctness(evidence: Mapping[str, object], member: str) -> float | None:
    """One panel member's correctness on one item from a panel diagnostic's evidence: its probability of
    the key when option probabilities were measured (`probs[member]["p"]`), else 1/0 from its answer,
    None when it gave neither."""
    key = evidence.get("key")
    probs = evidence.get("probs")
    if isinstance(key, int) and isinstance(probs, Mapping):
        entry = probs.get(member)
        if isinstance(entry, Mapping) and isinstance(entry.get("p"), Sequence) and 0 <= key < len(entry["p"]):
            return float(np.clip(float(entry["p"][key]), 0.0, 1.0))
    answers = evidence.get("answers")
    choice = answers.get(member) if isinstance(answers, Mapping) else None
    if not isinstance(choice, int) or not isinstance(key, int):
        return None
    return float(choice == key)


def anchored_difficulty(item_logit: np.ndarray, ability: np.ndarray, min_spread: float = 2.0) -> tuple[np.ndarray, float, float]:
    """Difficulty in [0, 1] with the bucket edges taken from the fitted panel: an item as hard as the
    weakest member is able (b = min ability) scores 1/3, one as hard as the strongest is able scores 2/3.

    So with the default thirds, "easy" means even the weakest member is more likely right than wrong,
    "hard" that even the strongest is more likely wrong, whatever the panel's absolute level (a strong
    panel rating most of a college exam "easy" on sigmoid(b - mean ability) was the failure this fixes).
    A panel spread narrower than `min_spread` logits (one member) is widened around its centre. Returns
    (difficulty, low anchor, high anchor)."""
    low, high = float(np.min(ability)), float(np.max(ability))
    if high - low < min_spread:
        centre = (low + high) / 2
        low, high = centre - min_spread / 2, centre + min_spread / 2
    return score_on_anchors(item_logit, low, high), low, high


def score_on_anchors(item_logit: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """Difficulty in [0, 1] of item logits against the anchors `anchored_difficulty` fixed: 1/3 at `low`,
    2/3 at `high` (sigmoid(+-ln 2)); also how an edited item is re-placed on the profile's scale."""
    scale = 2 * np.log(2.0) / (high - low)
    return _sigmoid(scale * (np.asarray(item_logit, dtype=float) - (low + high) / 2))


def reference_difficulty(p_key: float, quantiles: Sequence[float]) -> float:
    """Difficulty in [0, 1] as the share of a reference population the same model found easier: 1 − the
    reference CDF of p(key) at `p_key` (`quantiles`: the population's p(key) at 0%, 1%, …, 100%, ascending).

    Used for a one-member panel, where a Rasch fit has no spread of abilities to anchor buckets on: the
    default thirds then mean the easiest / middle / hardest third of the reference *for this model*."""
    q = np.asarray(quantiles, dtype=float)
    below, equal = float(np.sum(q < p_key)), float(np.sum(q == p_key))
    if equal:  # many reference items at one value: the middle of the step
        return float(1.0 - (below + equal / 2) / len(q))
    return float(np.clip(1.0 - np.interp(p_key, q, np.linspace(0.0, 1.0, len(q))), 0.0, 1.0))


def fit_item_logit(correct: Sequence[float | None], ability: Sequence[float], prior_sd: float = 2.0,
                   max_iter: int = 100, tol: float = 1e-8) -> float:
    """One item's logit b with the panel's abilities held fixed (MAP, the same prior as `fit_rasch`):
    places an edited item on an existing fit without refitting everything, so the answer does not depend
    on which other edits were measured first."""
    y = np.array([np.nan if v is None else float(v) for v in correct], dtype=float)
    theta = np.asarray(ability, dtype=float)
    if y.shape != theta.shape:
        raise ValueError("one correctness value per panel member")
    seen = ~np.isnan(y)
    b = 0.0
    for _ in range(max_iter):
        p = _sigmoid(theta[seen] - b)
        step = (-(y[seen] - p).sum() - b / prior_sd**2) / ((p * (1 - p)).sum() + 1 / prior_sd**2)
        step = float(np.clip(step, -1, 1))
        b += step
        if abs(step) < tol:
            break
    return b
