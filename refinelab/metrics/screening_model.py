"""Screening from evidence: per-item features → a fitted combiner → `p_error` and a likely error type.

Each piece of evidence is weak on its own (a 1.5B model's p(key) separates wrong keys from right ones
barely better than chance on hard subjects). Together — several members, two option orders, a
retrieval-conditioned member, text signals, the deterministic checks — they can separate much better, but
only with weights measured on labelled data. This module turns the stored evidence into one feature
vector, fits a logistic combiner (scikit-learn) on labelled or injected items, chooses the threshold for a
target precision or false-positive rate, and keeps the fitted model as plain JSON (coefficients, not a
pickle: a calibration file is untrusted input like any run folder).

cleanlab provides the label-quality scores (self-confidence, normalised margin) of the key under the
panel's pooled distribution — confident learning's view of "is this label an issue" — as features.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refinelab.errors import DataError
from refinelab.metrics.error_checks import ERROR_TYPES, check_row
from refinelab.metrics.option_probs import entropy, margin_against
from refinelab.safeload import loads_json
from refinelab.schema import QAItem

_META = re.compile(r"\b(all|none|both|neither) of (the )?(above|these|them)\b|\bboth [a-d] and [a-d]\b", re.I)
_NEGATION = re.compile(r"\b(not|except|least|false|incorrect)\b", re.I)
# A stem that points at something around it ("which of the following", "the passage", "shown above"):
# MMLU-Redux's fill-in statements without such a frame are more often unclear or mis-keyed.
_CITES_CONTEXT = re.compile(r"\b(following|passage|figure|table|graph|above|below|shown|excerpt|diagram|image|"
                            r"picture|the author|according to|this (poem|statement|quote|passage|text))\b", re.I)
_EPS = 1e-4

#: What the shipped model reads. Chosen on MMLU-Redux dev out of fold (folds grouped by subject): with 411
#: labelled rows a small set generalises better than all of them (all 18: AUROC 0.59 out of fold; these four:
#: 0.65, and 0.65 on the retriever-evaluation rows when fitted on dev alone, against 0.56 for p(key) alone).
#: A subject's mean p(key) looked stronger but only on error-enriched samples; weighted to the full set it
#: added nothing. evals/eval_screening.py.
SHIPPED_FEATURES = ("pooled_p_key", "stem_cites_context", "stem_is_question", "key_length_ratio")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def option_overlap(choices: Sequence[str]) -> float:
    """The largest word-set Jaccard similarity between two options (near-duplicate or overlapping options
    are a sign of several right answers or unclear options)."""
    sets = [_words(c) for c in choices]
    best = 0.0
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = sets[i] | sets[j]
            if union:
                best = max(best, len(sets[i] & sets[j]) / len(union))
    return best


def cleanlab_scores(pooled: Sequence[float], key: int) -> tuple[float, float]:
    """cleanlab's label-quality scores of `key` under `pooled`: (self_confidence, normalized_margin)."""
    from cleanlab.rank import get_label_quality_scores

    probs = np.asarray([max(p, _EPS) for p in pooled], dtype=float)
    probs = (probs / probs.sum())[None, :]
    labels = np.asarray([key])
    self_conf = float(get_label_quality_scores(labels, probs, method="self_confidence", adjust_pred_probs=False)[0])
    margin = float(get_label_quality_scores(labels, probs, method="normalized_margin", adjust_pred_probs=False)[0])
    return self_conf, margin


def item_features(item: QAItem, panel_evidence: Mapping[str, Any] | None,
                  members: Sequence[str] = ()) -> dict[str, float]:
    """One feature vector for `item` from its stored panel evidence (`Diagnostic(check="panel").evidence`)
    and its text. Missing evidence yields neutral values (p = uniform), never an exception."""
    n = len(item.choices)
    key = item.answer
    probes: Mapping[str, Any] = (panel_evidence or {}).get("probs", {}) or {}
    uniform = [1.0 / n] * n
    pooled = list((panel_evidence or {}).get("pooled") or uniform)
    if len(pooled) != n:
        pooled = uniform
    self_conf, norm_margin = cleanlab_scores(pooled, key)
    member_p = {m: list(p.get("p") or uniform) for m, p in probes.items()}
    flips = sum(1 for p in probes.values() if p.get("flip"))
    against = sum(1 for p in member_p.values() if len(p) == n and max(range(n), key=p.__getitem__) != key)
    checks = check_row(item)
    features: dict[str, float] = {
        "pooled_p_key": pooled[key],
        "pooled_margin": margin_against(pooled, key),
        "pooled_entropy": entropy(pooled),
        "cl_self_confidence": self_conf,
        "cl_normalized_margin": norm_margin,
        "members_against": against / max(1, len(member_p)),
        "order_flips": flips / max(1, len(probes)),
        "min_member_p_key": min((p[key] for p in member_p.values() if len(p) == n), default=pooled[key]),
        "max_other_p": max((q for i, q in enumerate(pooled) if i != key), default=0.0),
        "deterministic_flags": float(sum(d.flag for d in checks)),
        "meta_option": float(any(_META.search(c) for c in item.choices)),
        "negated_stem": float(bool(_NEGATION.search(item.question))),
        "stem_words_log": math.log1p(len(item.question.split())),
        "option_overlap": option_overlap(item.choices),
        "n_options": float(n),
        "stem_cites_context": float(bool(_CITES_CONTEXT.search(item.question))),
        "stem_is_question": float(item.question.strip().endswith("?")),
        "key_length_ratio": _key_length_ratio(item.choices, key),
    }
    for m in members:  # per-member evidence, in a fixed order so a fitted model can weight members
        p = member_p.get(m)
        features[f"p_key[{m}]"] = p[key] if p is not None and len(p) == n else 1.0 / n
    return features


def _key_length_ratio(choices: Sequence[str], key: int) -> float:
    """log(length of the key / mean length of the other options): keys much shorter than their distractors
    are more often wrong in MMLU-Redux (a giveaway long key is the opposite, familiar item-writing flaw)."""
    others = [len(c) for i, c in enumerate(choices) if i != key]
    return math.log((len(choices[key]) + 1) / ((sum(others) / len(others) if others else 0.0) + 1))


@dataclass
class ScreeningModel:
    """A fitted logistic combiner: standardised features → P(item has an error), plus the flag threshold.

    `error_types` holds, per type, the mean feature vector of that type in the fitting data: the predicted
    type of a flagged item is the nearest centroid (a small, explainable rule; the panel's evidence says
    little about *which* error it is, so the type is a hint for the reviewer, not a verdict)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float = 0.5
    error_types: dict[str, list[float]] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @property
    def member_features(self) -> list[str]:
        """The panel members whose own p(key) the model reads (`p_key[NAME]` features, a calibration fitted
        with several members); a run scoring with it needs each of them."""
        return [f[len("p_key["):-1] for f in self.features if f.startswith("p_key[") and f.endswith("]")]

    def _z(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        # a feature missing from a row (a model fitted by a later version) reads as the fitting data's mean:
        # it contributes nothing rather than a made-up 0
        x = np.asarray([[float(r.get(f, m)) for f, m in zip(self.features, self.mean, strict=True)] for r in rows],
                       dtype=float)
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)

    def p_error(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        if not rows:
            return []
        z = self._z(rows) @ np.asarray(self.coef) + self.intercept
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]

    def error_type(self, row: Mapping[str, float]) -> str:
        if not self.error_types:
            return "wrong_groundtruth"
        z = self._z([row])[0]
        return min(self.error_types, key=lambda t: float(np.sum((z - np.asarray(self.error_types[t])) ** 2)))

    # -- persistence (JSON, validated on read) -----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"features": self.features, "mean": self.mean, "scale": self.scale, "coef": self.coef,
                "intercept": self.intercept, "threshold": self.threshold, "error_types": self.error_types,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, data: Any, source: str = "calibration") -> ScreeningModel:
        """Read a model back, refusing anything malformed with a message naming the field."""
        if not isinstance(data, dict):
            raise DataError(source, None, None, "expected a JSON object")
        try:
            features = [str(f) for f in data["features"]]
            vectors = {name: [float(v) for v in data[name]] for name in ("mean", "scale", "coef")}
            intercept, threshold = float(data["intercept"]), float(data.get("threshold", 0.5))
            types = {str(t): [float(v) for v in vec] for t, vec in (data.get("error_types") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(source, None, str(exc).strip("'"), "missing or not a number list") from None
        bad = [n for n, v in vectors.items() if len(v) != len(features)] + [
            t for t, v in types.items() if len(v) != len(features)]
        if bad or not 0.0 < threshold < 1.0 or any(s <= 0 for s in vectors["scale"]) or not all(
                math.isfinite(v) for vec in (*vectors.values(), *types.values(), [intercept]) for v in vec):
            raise DataError(source, None, bad[0] if bad else "scale/threshold",
                            "inconsistent with the feature list, not finite, or out of range")
        return cls(features=features, intercept=intercept, threshold=threshold, error_types=types,
                   fitted_on=dict(data.get("fitted_on") or {}), **vectors)

    def save(self, path: Path) -> None:
        from refinelab.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ScreeningModel:
        try:  # safeload: depth and size limits, and no NaN/Infinity (a NaN intercept flagged nothing, silently)
            data = loads_json(Path(path).read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(str(path), None, None, f"not a readable calibration file ({type(exc).__name__})") from None
        return cls.from_json(data.get("model", data) if isinstance(data, dict) else data, str(path))


def fit_screening_model(rows: Sequence[Mapping[str, float]], labels: Sequence[str], *,
                        features: Sequence[str] | None = None, c: float = 0.05) -> ScreeningModel:
    """Fit the combiner on labelled rows (`labels`: "ok" or an error type); class-balanced, L2-regularised
    (strongly: a few hundred labelled rows; C 0.05 beat 0.5 out of fold on MMLU-Redux dev)."""
    from sklearn.linear_model import LogisticRegression

    names = list(features or rows[0].keys())
    x = np.asarray([[float(r.get(f, 0.0)) for f in names] for r in rows], dtype=float)
    y = np.asarray([lab != "ok" for lab in labels], dtype=int)
    if y.min() == y.max():
        raise ValueError("fitting needs both ok and erroneous items")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(z, y)
    types = {t: z[np.asarray(labels) == t].mean(axis=0).tolist() for t in ERROR_TYPES
             if (np.asarray(labels) == t).sum() >= 3}
    return ScreeningModel(features=names, mean=mean.tolist(), scale=scale.tolist(), coef=model.coef_[0].tolist(),
                          intercept=float(model.intercept_[0]), error_types=types,
                          fitted_on={"items": len(labels), "errors": int(y.sum())})


def precision_at_prevalence(tpr: float, fpr: float, prevalence: float) -> float:
    """The precision a screen with these rates has on data where `prevalence` of the items are erroneous
    (rates measured on a sample with another mix carry over; precision does not)."""
    tp, fp = tpr * prevalence, fpr * (1 - prevalence)
    return tp / (tp + fp) if tp + fp else 0.0


def f1_score(precision: float, recall: float) -> float:
    """The harmonic mean of precision and recall (0 when both are 0)."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def operating_point(scores: Sequence[float], gold: Sequence[bool], threshold: float) -> dict[str, float]:
    """TPR, FPR, precision, recall and F1 of `score >= threshold`."""
    tp = sum(1 for s, g in zip(scores, gold, strict=True) if g and s >= threshold)
    fp = sum(1 for s, g in zip(scores, gold, strict=True) if not g and s >= threshold)
    pos, neg = sum(gold), len(gold) - sum(gold)
    tpr, fpr = tp / pos if pos else 0.0, fp / neg if neg else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return {"tpr": tpr, "fpr": fpr, "precision": precision, "recall": tpr, "f1": f1_score(precision, tpr),
            "threshold": threshold}


def auroc(scores: Sequence[float], gold: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    pos = [s for s, g in zip(scores, gold, strict=True) if g]
    neg = [s for s, g in zip(scores, gold, strict=True) if not g]
    if not pos or not neg:
        return None
    order = np.argsort(np.asarray(pos + neg), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.asarray(pos + neg)[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = ranks[: len(pos)].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
