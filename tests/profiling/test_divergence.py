"""JSD with known values, zero-probability cells, and the empirical profile helpers."""

import math

import pytest

from refinelab.metrics.divergence import (
    bucket_of,
    coverage_distribution,
    difficulty_distribution,
    divergence_report,
    jensen_shannon,
    normalise,
)
from refinelab.schema import UNLABELLED, QAItem


def test_identical_is_zero():
    p = {"a": 0.2, "b": 0.3, "c": 0.5}
    assert jensen_shannon(p, dict(p)) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_support_is_one():
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"c": 1.0}) == pytest.approx(1.0)


def test_hand_computed_value():
    # M = (0.75, 0.25); KL(p||M) = 0.5·log2(0.5/0.75) + 0.5·log2(0.5/0.25); KL(q||M) = log2(1/0.75)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    expected = 0.5 * (kl_p + kl_q)
    assert expected == pytest.approx(0.311278, abs=1e-6)
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 1.0}) == pytest.approx(expected)


def test_zero_cells_equal_missing_cells_and_symmetry():
    p = {"a": 0.5, "b": 0.5, "c": 0.0}
    q = {"a": 0.9, "c": 0.1}
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon({"a": 0.5, "b": 0.5}, q))
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(q, p))
    assert 0.0 < jensen_shannon(p, q) < 1.0


def test_unnormalised_counts_are_normalised():
    assert jensen_shannon({"a": 2, "b": 2}, {"a": 50, "b": 50}) == pytest.approx(0.0, abs=1e-12)
    assert normalise({"x": 1, "y": 3}) == {"x": 0.25, "y": 0.75}


def test_tuple_cells():
    p = {("STEM", "recall"): 1.0}
    q = {("STEM", "recall"): 0.5, ("other", "reasoning"): 0.5}
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon({"a": 1.0}, {"a": 0.5, "b": 0.5}))


@pytest.mark.parametrize(
    "bad, message",
    [({}, "empty"), ({"a": -0.1, "b": 1.0}, "negative"), ({"a": 0.0, "b": 0.0}, "zero total"),
     ({"a": float("nan")}, "not finite")],
)
def test_bad_input_raises(bad, message):
    with pytest.raises(ValueError, match=message):
        jensen_shannon(bad, {"a": 1.0})


def _item(i, domain="", skill="", difficulty=None):
    return QAItem(id=str(i), question="q?", choices=["x", "y"], answer=0, domain=domain, skill=skill,
                  difficulty=difficulty)


def test_coverage_distribution_keeps_unlabelled_visible():
    items = [_item(1, "STEM", "recall"), _item(2, "STEM", "recall"), _item(3, "humanities", ""),
             _item(4, "", "reasoning")]
    dist = coverage_distribution(items)
    assert dist[("STEM", "recall")] == 0.5
    assert dist[("humanities", UNLABELLED)] == 0.25
    assert dist[(UNLABELLED, "reasoning")] == 0.25


def test_difficulty_distribution_and_bucket_edges():
    assert bucket_of(0.0, [0.3, 0.7], ["easy", "medium", "hard"]) == "easy"
    assert bucket_of(0.3, [0.3, 0.7], ["easy", "medium", "hard"]) == "medium"  # lower edge is inclusive
    assert bucket_of(1.0, [0.3, 0.7], ["easy", "medium", "hard"]) == "hard"
    dist = difficulty_distribution([0.1, 0.2, 0.5, None], thresholds=[0.3, 0.7])
    assert dist == {"easy": 2 / 3, "medium": 1 / 3, "hard": 0.0}
    with pytest.raises(ValueError, match="no item has a difficulty"):
        difficulty_distribution([None, None])
    with pytest.raises(ValueError, match="bucket names"):
        bucket_of(0.5, [0.5], ["a", "b", "c"])


def test_divergence_report_orders_gaps():
    report = divergence_report({"a": 0.8, "b": 0.2}, {"a": 0.5, "b": 0.3, "c": 0.2})
    cells = [c for c, _ in report["gaps"]]
    assert cells[0] == "a" and set(cells) == {"a", "b", "c"}
    assert report["jsd"] == pytest.approx(jensen_shannon({"a": 0.8, "b": 0.2}, {"a": 0.5, "b": 0.3, "c": 0.2}))
