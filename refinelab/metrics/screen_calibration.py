"""From planted errors to what a screen will do on the user's real ones: the threshold and the estimates
`screen --calibrate` writes.

The planted copies and their clean originals are scored out of fold. At a threshold t the estimate reads
- FPR(t) on the clean copies (the user's own items, which hold their real errors too: a slight
  overestimate, the safe side);
- recall(t) per error type on the planted copies of that type, and overall as the types weighted by a mix
  of error types — by default MMLU-Redux's human-labelled mix (`refinelab/data/error_mix.json`; planting
  makes every type equally common, real datasets do not: wrong keys are 40% of MMLU-Redux's errors,
  unclear options 6%);
- precision from both at the assumed prevalence.

The threshold is the lowest whose estimated precision reaches the target. A weak panel cannot reach
precision 0.5 at 10% prevalence on any threshold; the first version then took the threshold with the
highest precision, which on MMLU-Redux dev was one flagged planted copy in forty: "precision 1.00" on
nothing real. Now, when the target is out of reach, the threshold is the one with the best estimated F1,
the record says the target was not reached, and no threshold is considered that flags fewer than
`MIN_PLANTED_FLAGGED` of the planted copies: an estimate resting on one or two items is not one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from refinelab.errors import DataError
from refinelab.metrics.screening_model import f1_score, precision_at_prevalence

ERROR_MIX_FILE = "error_mix.json"
#: The smallest share of planted copies a threshold must flag for its estimate to be read at all.
MIN_PLANTED_FLAGGED = 0.1


@dataclass(frozen=True)
class ErrorMix:
    """How common each error type is among a dataset's real errors (weights of the overall recall)."""

    weights: dict[str, float]
    source: str

    def weight(self, error_type: str) -> float:
        return self.weights.get(error_type, 0.0) if self.weights else 1.0

    def to_json(self) -> dict[str, Any]:
        return {"weights": self.weights, "source": self.source}

    @classmethod
    def from_json(cls, data: Any, source: str) -> ErrorMix:
        try:
            weights = {str(k): float(v) for k, v in data["weights"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(source, None, "weights", f"not an error mix ({type(exc).__name__})") from None
        if any(v < 0 for v in weights.values()) or not sum(weights.values()):
            raise DataError(source, None, "weights", "negative or all zero")
        return cls(weights=weights, source=str(data.get("source", source)))


EQUAL_MIX = ErrorMix(weights={}, source="every planted type weighted equally")


def shipped_error_mix() -> ErrorMix:
    """MMLU-Redux's mix of error types (refinelab/data); equal weights when this install has none."""
    path = resources.files("refinelab.data").joinpath(ERROR_MIX_FILE)
    if not path.is_file():
        return EQUAL_MIX
    return ErrorMix.from_json(json.loads(path.read_text(encoding="utf-8")), f"refinelab/data/{ERROR_MIX_FILE}")


def _share_at_least(scores: Sequence[float], threshold: float) -> float:
    return sum(1 for s in scores if s >= threshold) / len(scores) if scores else 0.0


def estimate(threshold: float, planted: Mapping[str, Sequence[float]], clean: Sequence[float], mix: ErrorMix,
             prevalence: float) -> dict[str, Any]:
    """Estimated recall (overall and per type), FPR and precision at `prevalence` of `score >= threshold`;
    `planted` holds the out-of-fold scores of the planted copies per error type, `clean` the originals'."""
    fpr = _share_at_least(clean, threshold)
    per_type: dict[str, dict[str, float]] = {}
    for etype, scores in planted.items():
        recall = _share_at_least(scores, threshold)
        per_type[etype] = {"n": len(scores), "recall": round(recall, 3),
                           "precision": round(precision_at_prevalence(recall, fpr, prevalence), 3)}
    weights = {t: mix.weight(t) for t in per_type}
    total = sum(weights.values())
    recall = sum(weights[t] * per_type[t]["recall"] for t in per_type) / total if total else 0.0
    return {"threshold": threshold, "recall": round(recall, 3), "fpr": round(fpr, 3),
            "precision": round(precision_at_prevalence(recall, fpr, prevalence), 3), "per_type": per_type}


def choose_threshold(planted: Mapping[str, Sequence[float]], clean: Sequence[float], mix: ErrorMix,
                     prevalence: float, target_precision: float) -> dict[str, Any]:
    """The estimate at the lowest threshold whose estimated precision reaches `target_precision`, else at
    the threshold with the best estimated F1 (`target_reached` says which); thresholds that flag fewer than
    `MIN_PLANTED_FLAGGED` of the planted copies are not considered."""
    every_planted = [s for scores in planted.values() for s in scores]
    usable = [t for t in sorted(set(every_planted) | set(clean))
              if 0.0 < t < 1.0 and _share_at_least(every_planted, t) >= MIN_PLANTED_FLAGGED]
    if not usable:
        raise ValueError("no threshold flags enough planted errors: calibration has nothing to fit")
    best: dict[str, Any] | None = None
    best_f1 = -1.0
    for t in usable:
        point = estimate(t, planted, clean, mix, prevalence)
        if point["precision"] >= target_precision and point["recall"] > 0:
            return point | {"target_reached": True}
        f1 = f1_score(point["precision"], point["recall"])
        if f1 > best_f1:
            best, best_f1 = point, f1
    assert best is not None  # usable is not empty
    return best | {"target_reached": False}
