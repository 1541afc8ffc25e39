"""MMLU-Redux dev and corruption-test reader: quirks of the published files."""

from pathlib import Path

import pytest

from evals.redux import (
    DEFAULT_ROOT,
    normalise_label,
    parse_choices,
    read_corruption_tests,
    read_redux_dev,
    read_redux_file,
)
from refinelab.metrics.error_checks import ERROR_TYPES

needs_data = pytest.mark.skipif(not (DEFAULT_ROOT / "dev").is_dir(), reason="shared MMLU-Redux data not present")


@pytest.mark.parametrize("raw, expected", [
    ("Wrong Groundtruth", "wrong_groundtruth"), ("wrong_groundtruth ", "wrong_groundtruth"),
    ("wronggroundtruth", "wrong_groundtruth"), ("OK ", "ok"), ("Ok", "ok"), ("Expert", "expert"),
    ("Bad Options Clarity", "bad_options_clarity"), ("multiple correct answers", "multiple_correct_answers"),
    ("no_correct_answer", "no_correct_answer"), ("Bad question clarity", "bad_question_clarity"),
])
def test_normalise_label(raw, expected):
    assert normalise_label(raw) == expected


def test_unknown_label_raises():
    with pytest.raises(ValueError, match="unknown MMLU-Redux error label"):
        normalise_label("maybe wrong")


def test_parse_choices_python_and_numpy_reprs():
    assert parse_choices("['a', 'b, c', \"it's\"]") == ["a", "b, c", "it's"]
    assert parse_choices('["x","y"]') == ["x", "y"]
    assert parse_choices("['leg muscle'\n 'a bacterial population' \"it's\"]") == [
        "leg muscle", "a bacterial population", "it's"]
    assert parse_choices("['-\\\\frac{7}{12}', '-7']") == ["-\\frac{7}{12}", "-7"]
    assert parse_choices("[1, 2.5]") == ["1", "2.5"]
    with pytest.raises(ValueError, match="not a list"):
        parse_choices("a, b")
    assert parse_choices("[-1, 2]") == ["-1", "2"]
    for hostile in ("[-]", "[1, -]", "[[1]]", "[x]", "['a' + 'b']", "[__import__('os')]", "[b'x']"):
        with pytest.raises(ValueError, match="not a list of texts or numbers"):
            parse_choices(hostile)


def test_semicolon_cp1252_and_column_order(tmp_path: Path):
    path = tmp_path / "mmlu_moral_scenarios.csv"
    text = ("choices;question;error_type;answer;correct_answer;source;potential_reason;\r\n"
            "['Wrong, Wrong', 'Not wrong, Wrong'];I said \u201cno\u201d to my friend;Wrong Groundtruth;1;0;;;\r\n")
    path.write_bytes(text.encode("cp1252"))
    (item,) = read_redux_file(path)
    assert item.subject == "moral_scenarios" and item.id == "redux:moral_scenarios:001"
    assert item.question == "I said \u201cno\u201d to my friend"
    assert item.choices == ["Wrong, Wrong", "Not wrong, Wrong"] and item.answer == 1
    assert item.error_type == "wrong_groundtruth" and item.is_error and item.correct_answer == "0"


@needs_data
def test_dev_split_reads_2000_labelled_items():
    items = read_redux_dev()
    assert len(items) == 2000
    assert len({i.subject for i in items}) == 20
    assert all(len(i.choices) == 4 and i.answer in (0, 1, 2, 3) for i in items)
    labels = {i.error_type for i in items}
    assert labels <= {"ok", "expert", *ERROR_TYPES}
    assert sum(i.is_error for i in items) > 150
    astronomy = read_redux_dev(subjects=["astronomy"])  # `;`-delimited, CRLF
    assert len(astronomy) == 100 and astronomy[0].question.startswith("Why is the Mars Exploration Rover")
    ml = read_redux_dev(subjects=["machine_learning", "moral_disputes"])  # different column orders
    assert all(i.error_type in labels for i in ml) and len(ml) == 200
    valid = [i.to_qaitem() for i in items]
    assert sum(v is not None for v in valid) >= 1990  # a few published rows have duplicate options
    with pytest.raises(ValueError, match="subjects not in"):
        read_redux_dev(subjects=["anatomy_holdout_does_not_exist"])


@needs_data
def test_corruption_tests():
    items = read_corruption_tests()
    assert len(items) == 500
    by_type = {t: [i for i in items if i.error_type == t] for t in ERROR_TYPES}
    assert all(len(v) == 100 for v in by_type.values())
    assert all(i.is_error and i.split == "corruption" for i in items)
    assert all(i.answer is None and len(i.choices) == 3 for i in by_type["no_correct_answer"])
    assert all(len(i.choices) == 4 for i in by_type["wrong_groundtruth"])  # numpy repr parsed, not concatenated
    wg = by_type["wrong_groundtruth"][0]
    assert "original_grountruth" in wg.extra  # upstream spelling kept
    assert by_type["bad_question_clarity"][0].to_row()["question"]
