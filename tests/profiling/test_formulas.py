"""Options that are formulas compared by value (metrics/formulas.py), not by their characters."""

from __future__ import annotations

import numpy as np
import pytest

from refinelab.metrics.distractors import select_distractors, value_relation
from refinelab.metrics.formulas import formula_relation


@pytest.mark.parametrize(("key", "candidate", "expected"), [
    ("r = k", "r = k [B]^0", "same"),  # from a demo run: anything to the power 0 is 1
    ("r = k", "r = k [A]^2", "distinct"),
    ("r = k", "r = k * t", "distinct"),
    ("r = k", "r = k ln[A]", "distinct"),
    ("E = mc^2", "E = m c**2", "same"),
    ("x^2 − 1", "(x-1)(x+1)", "same"),
    ("x^2 - 1", "(x-1)^2", "distinct"),
    ("m v^2 / 2", "(m v v) / 2", "same"),
    ("v_0 + a t", "a t + v_0", "same"),
    ("[H+][OH-] = Kw", "[OH-][H+] = Kw", "same"),
    ("a/b", "b/a", "distinct"),
    ("x = 2", "x = 3", "distinct"),
    ("2x + 3", "3 + 2x", "same"),
    ("k_1 [A] × 10^-3", "k_1 [A] / 1000", "same"),
    ("k [A] × 10^-34", "k [A] × 10^-33", "distinct"),  # tiny values are compared relatively, not to 0
])
def test_formulas_equal_as_functions_are_the_same(key: str, candidate: str, expected: str) -> None:
    assert formula_relation(key, candidate) == expected


@pytest.mark.parametrize(("key", "candidate"), [
    ("The rate is constant", "r = k"),  # prose is not a formula
    ("It is 5", "5"),
    ("6:5", "5:6"),
    ("r = k", "k"),  # an equation against a bare expression: not compared
    ("2 + 3", "5"),  # no symbol: the number rules decide
    ("__import__('os').system('id')", "x"),  # never evaluated: not in the grammar
    ("exec(x)", "x + 1"),
    ("x ^ 999999", "x + 1"),  # overflows at every point: cannot be compared
    ("2.166 x 10^-34 J s", "3.691 x 10^-34 J s"),  # quantities with units: the number rules decide
    ("0.717 x 10^-26 J T-1", "0.827 x 10^-26 J T-1"),
    ("5 m/s", "5 m s^-1"),
    ("+".join(["x"] * 5000), "x"),  # too long for an option: never parsed
    ("(" * 3000 + "x" + ")" * 3000, "x"),
])
def test_what_is_not_a_comparable_formula_is_left_to_the_other_measures(key: str, candidate: str) -> None:
    assert formula_relation(key, candidate) is None


def test_the_value_relation_reads_formulas_before_numbers() -> None:
    # both state the one number 2, which the number rule alone reads as the key's value
    assert value_relation("r = k [A]^2", "r = 2k [A]") == "distinct"
    assert value_relation("r = k", "r = k [B]^0") == "same"


def test_a_formula_equal_to_the_key_is_dropped_and_other_formulas_survive_a_close_embedding() -> None:
    """The embedding put "r = k * t" at cosine 0.89 from "r = k" (dropped as a paraphrase) and let
    "r = k [B]^0" through: for formulas the value decides."""
    key = "r = k"
    candidates = ["r = k [B]^0", "r = k * t", "r = k ln[A]", "r = k [A]^2"]

    def close(texts):  # every candidate at cosine 0.95 from the key, and far from each other
        rows = [np.eye(1, 6, 0)[0]]
        for i in range(1, len(texts)):
            rows.append(0.95 * np.eye(1, 6, 0)[0] + np.sqrt(1 - 0.95 ** 2) * np.eye(1, 6, i)[0])
        return np.asarray(rows)

    choice = select_distractors(key, candidates, 3, close)
    assert choice.dropped == {0: "the key's value"} and sorted(choice.chosen) == [1, 2, 3]


def test_an_original_distractor_equal_in_value_is_kept_the_dataset_asks_for_the_form() -> None:
    """MMLU's "factor 36 − 9x²": the key 9(2−x)(2+x) and the distractor (6−3x)(6+3x) are equal as functions on
    purpose. A new candidate equal to the key is dropped; the dataset's own distractor is not."""
    key = "9(2-x)(2+x)"
    original, new = "(6-3x)(6+3x)", "(-3x+6)(3x+6)"
    assert formula_relation(key, original) == "same"

    def apart(texts):
        return np.eye(len(texts), 8)

    choice = select_distractors(key, [original, new, "(3x-6)^2", "9(x-2)^2"], 3, apart, known_wrong=[original])
    assert choice.dropped == {1: "the key's value"} and 0 in choice.chosen
