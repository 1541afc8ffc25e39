"""Deterministic error checks on crafted raw rows, and the evidence pooling into p_error + type."""

import pytest

from refinelab.metrics.error_checks import (
    CHECKS,
    ErrorModel,
    check_row,
    coerce_row,
    combine_error_evidence,
    parse_answer,
    validator_diagnostic,
)
from refinelab.schema import QAItem
from refinelab.state import Verdict
from tests.support.error_checks_helpers import run_error_checks


def fired(row, **kw):
    return {d.check.removeprefix("error."): d for d in check_row(row, **kw) if d.flag}


def test_clean_item_passes_every_check():
    item = QAItem(id="ok", question="Which planet is largest?", choices=["Mars", "Jupiter", "Venus", "Earth"],
                  answer=1)
    diags = check_row(item)
    assert len(diags) == len(CHECKS)
    assert not any(d.flag for d in diags)
    assert all(d.score == 1.0 for d in diags)


def test_raw_rows_that_qaitem_would_reject():
    f = fired({"id": "r", "question": "  ", "choices": ["Paris", "paris.", ""], "answer": "E"})
    assert {"blank_question", "empty_option", "duplicate_options", "key_out_of_range"} <= set(f)
    assert f["duplicate_options"].evidence["options"] == ["A", "B"]
    assert f["empty_option"].evidence["options"] == ["C"]
    assert f["key_out_of_range"].score == pytest.approx(1 - CHECKS["key_out_of_range"].severity)
    assert "too_few_options" in fired({"question": "q?", "choices": ["only"], "answer": 0})
    assert "key_out_of_range" in fired({"question": "q?", "choices": ["a", "b"], "answer": "n/a"})
    assert "key_out_of_range" in fired({"question": "q?", "choices": ["a", "b"], "answer": None})


def test_duplicate_key_points_to_multiple_correct_answers():
    row = {"id": "d", "question": "What do algae supply?", "choices": ["carbon dioxide", "food", "food", "water"],
           "answer": 1}
    f = fired(row)
    assert f["duplicate_options"].evidence["key_is_duplicated"] is True
    a = combine_error_evidence("d", check_row(row))
    assert a.flag and a.error_type == "multiple_correct_answers"


def test_near_duplicates_differ_only_in_spacing():
    f = fired({"question": "Factor it.", "choices": ["(x − 1)(x+2)", "(x - 1)(x + 2)", "x", "y"], "answer": 0})
    assert f["near_duplicate_options"].evidence["pairs"] == [["A", "B"]]
    assert "near_duplicate_options" not in fired(
        {"question": "q?", "choices": ["True, False", "False, True", "True, True", "False, False"], "answer": 0})


def test_all_none_of_the_above_cues():
    row = {"question": "Which are mammals?", "choices": ["whale", "bat", "dog", "All of the above"], "answer": 3}
    f = fired(row)
    assert f["all_none_of_the_above"].evidence == {**f["all_none_of_the_above"].evidence, "options": ["D"],
                                                   "key_is_meta": True}
    for text in ["None of these", "Both A and C", "every option listed", "neither of the above"]:
        assert "all_none_of_the_above" in fired({"question": "q?", "choices": ["x", "y", text], "answer": 0}), text
    assert "all_none_of_the_above" not in fired(
        {"question": "q?", "choices": ["all cells divide", "none", "both parents", "above ground"], "answer": 0})
    none_key = {"question": "q?", "choices": ["x", "y", "None of the above"], "answer": 2}
    a = combine_error_evidence("n", check_row(none_key), panel_answers=[0, 1, 0], key=2)
    assert "no_correct_answer" in a.type_scores


def test_answer_leak_only_when_distractors_do_not_appear():
    leak = {"question": "The mitochondria is the powerhouse. What is the powerhouse of the cell?",
            "choices": ["the nucleus", "mitochondria", "a ribosome", "the membrane"], "answer": 1}
    assert "answer_leak" in fired(leak)
    both = dict(leak, question="Is it the mitochondria or the nucleus that is the powerhouse?")
    assert "answer_leak" not in fired(both)
    short = {"question": "Is the sky blue? Answer yes or no.", "choices": ["yes", "no"], "answer": 0}
    assert "answer_leak" not in fired(short)


def test_label_only_options():
    assert "label_only_options" in fired({"question": "Why? A. x B. y", "choices": ["A", "B", "(c)", "D."], "answer": 0})
    assert "label_only_options" not in fired({"question": "How many phases?", "choices": ["2", "3", "4", "5"],
                                              "answer": 3})  # numbers are answers
    assert "label_only_options" not in fired({"question": "Which vitamin?", "choices": ["A", "Iron", "Zinc", "Salt"],
                                              "answer": 0})  # one letter among real options is an answer


def test_key_length_giveaway():
    row = {"question": "Why?", "choices": ["heat", "light", "a combination of pressure and temperature changes",
                                           "wind"], "answer": 2}
    assert fired(row)["key_length_giveaway"].evidence["which"] == "longest"
    assert "key_length_giveaway" not in fired(dict(row, answer=0))


def test_option_count_mismatch_uses_the_dataset_mode():
    rows = [{"id": str(i), "question": "q?", "choices": ["a", "b", "c", "d"], "answer": 0} for i in range(5)]
    rows.append({"id": "short", "question": "q?", "choices": ["a", "b", "every option listed"], "answer": "n/a"})
    result = run_error_checks(rows)
    flagged = {i for i, ds in result.items() if any(d.flag and d.check == "error.option_count_mismatch" for d in ds)}
    assert flagged == {"short"}


def test_parse_answer_and_coerce():
    assert parse_answer("C") == 2 and parse_answer("2") == 2 and parse_answer(1) == 1 and parse_answer(3.0) == 3
    assert parse_answer("n/a") is None and parse_answer(True) is None and parse_answer(None) is None
    row = coerce_row({"question": "q", "choices": ["a", None], "answer": "b"}, index=7)
    assert row.id == "7" and row.choices == ["a", ""] and row.answer == 1


def test_panel_disagreement_drives_p_error_and_type():
    clean = combine_error_evidence("x", panel_answers=[0, 0, 0, 0], key=0)
    assert not clean.flag and clean.error_type == "ok" and clean.p_error < 0.01
    consensus = combine_error_evidence("x", panel_answers=[2, 2, 2, 2], key=0)
    assert consensus.flag and consensus.error_type == "wrong_groundtruth"
    assert consensus.panel["alternative"] == 2
    scattered = combine_error_evidence("x", panel_answers=[1, 2, 3, 1, 2], key=0)
    assert scattered.flag and scattered.error_type == "bad_question_clarity"
    # monotone in disagreement
    ps = [combine_error_evidence("x", panel_disagreement=d, panel_size=5).p_error for d in (0, 0.2, 0.6, 1.0)]
    assert ps == sorted(ps)
    with pytest.raises(ValueError, match="panel_disagreement"):
        combine_error_evidence("x", panel_disagreement=1.5, panel_size=3)


def test_validator_verdict_dominates_and_sets_type():
    wrong = Verdict(False, "the program's answer is no option", "pot", outcome="no_match", confidence=0.95)
    a = combine_error_evidence("x", panel_answers=[0, 0, 1], key=0, validator=validator_diagnostic("x", wrong))
    assert a.flag and a.error_type == "no_correct_answer" and "validator:pot" in a.contributions
    right = Verdict(True, "the program computed the key", "pot", outcome="match_key", confidence=0.99)
    ok = combine_error_evidence("x", panel_answers=[1, 1, 1], key=0, validator=validator_diagnostic("x", right))
    assert ok.p_error < combine_error_evidence("x", panel_answers=[1, 1, 1], key=0).p_error


def test_assessment_diagnostic_shape_and_custom_model():
    a = combine_error_evidence("x", panel_disagreement=1.0, panel_size=3, model=ErrorModel(threshold=0.99))
    d = a.to_diagnostic()
    assert d.check == "error" and d.score == pytest.approx(1 - a.p_error)
    assert d.flag is False and d.evidence["error_type"] == "ok"
    nothing = combine_error_evidence("x")
    assert nothing.p_error == pytest.approx(ErrorModel().prior)
