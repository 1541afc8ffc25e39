"""The threshold and estimates `screen --calibrate` writes: target precision when reachable, best F1 and a
plain "not reached" when not, never a threshold resting on one or two planted copies; the error mix weights
the overall recall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.errors import DataError
from refinelab.metrics.screen_calibration import (
    EQUAL_MIX,
    MIN_PLANTED_FLAGGED,
    ErrorMix,
    choose_threshold,
    estimate,
    shipped_error_mix,
)

CLEAN = [i / 100 for i in range(100)]  # FPR(t) = 1 - t on this grid


def test_estimate_reads_fpr_on_clean_recall_per_type_and_weights_types_by_the_mix() -> None:
    planted = {"wrong_groundtruth": [0.9] * 8 + [0.1] * 2, "bad_question_clarity": [0.9] * 2 + [0.1] * 8}
    mix = ErrorMix(weights={"wrong_groundtruth": 0.75, "bad_question_clarity": 0.25}, source="test")
    point = estimate(0.8, planted, CLEAN, mix, prevalence=0.1)
    assert point["fpr"] == pytest.approx(0.2)
    assert point["per_type"]["wrong_groundtruth"]["recall"] == pytest.approx(0.8)
    assert point["recall"] == pytest.approx(0.75 * 0.8 + 0.25 * 0.2)
    tp, fp = point["recall"] * 0.1, 0.2 * 0.9
    assert point["precision"] == pytest.approx(tp / (tp + fp), abs=1e-3)
    assert estimate(0.8, planted, CLEAN, EQUAL_MIX, 0.1)["recall"] == pytest.approx(0.5)


def test_a_reachable_target_gets_the_lowest_threshold_that_reaches_it() -> None:
    planted = {"wrong_groundtruth": [0.95] * 10 + [0.2] * 10}
    point = choose_threshold(planted, CLEAN, EQUAL_MIX, prevalence=0.5, target_precision=0.6)
    assert point["target_reached"] and point["precision"] >= 0.6
    lower = estimate(max(c for c in CLEAN if c < point["threshold"]), planted, CLEAN, EQUAL_MIX, 0.5)
    assert lower["precision"] < 0.6


def test_an_unreachable_target_takes_the_best_f1_and_says_so() -> None:
    planted = {"wrong_groundtruth": [i / 100 + 0.05 for i in range(90)]}  # barely above the clean scores
    point = choose_threshold(planted, CLEAN, EQUAL_MIX, prevalence=0.1, target_precision=0.9)
    assert not point["target_reached"]
    assert point["recall"] >= MIN_PLANTED_FLAGGED and point["fpr"] > 0
    f1 = 2 * point["precision"] * point["recall"] / (point["precision"] + point["recall"])
    for t in (0.3, 0.6, 0.9):
        other = estimate(t, planted, CLEAN, EQUAL_MIX, 0.1)
        assert 2 * other["precision"] * other["recall"] / (other["precision"] + other["recall"]) <= f1 + 1e-9


def test_one_stray_planted_copy_above_every_clean_item_is_not_an_operating_point() -> None:
    # the first version read "precision 1.00" off the single highest planted copy and flagged nothing real
    planted = {"wrong_groundtruth": [0.999] + [0.3] * 39}
    point = choose_threshold(planted, CLEAN, EQUAL_MIX, prevalence=0.1, target_precision=0.5)
    assert point["threshold"] < 0.999 and point["recall"] >= MIN_PLANTED_FLAGGED


def test_the_shipped_mix_is_mmlu_redux_and_a_malformed_mix_is_refused(tmp_path: Path) -> None:
    mix = shipped_error_mix()
    assert mix.weights["wrong_groundtruth"] == max(mix.weights.values())
    assert sum(mix.weights.values()) == pytest.approx(1.0, abs=1e-3)
    for bad in ({"weights": {"wrong_groundtruth": -1}}, {"weights": "all"}, {}):
        with pytest.raises(DataError, match="mix.json"):
            ErrorMix.from_json(json.loads(json.dumps(bad)), "mix.json")
