"""CSV with a header: detected, columns guessed or mapped with --columns; MMLU files stay headerless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.errors import ConfigError, DataError
from refinelab.io import guess_columns, load_dataset, parse_columns


@pytest.mark.parametrize(("header", "expected"), [
    ("question,A,B,C,D,answer", {"question": "question", "choices": ["A", "B", "C", "D"], "answer": "answer"}),
    ("Stem,Opt1,Opt2,Key,Subject", {"question": "Stem", "choices": ["Opt1", "Opt2"], "answer": "Key",
                                    "subject": "Subject"}),
    ("id,question,choices,label", {"question": "question", "choices": "choices", "answer": "label", "id": "id"}),
    ("question,option_a,option_b,correct", {"question": "question", "choices": ["option_a", "option_b"],
                                            "answer": "correct"}),
])
def test_guessed_columns(header: str, expected: dict) -> None:
    assert guess_columns(header.split(",")) == expected


def test_headered_csv_is_detected_and_read(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    path.write_text('Stem,Opt1,Opt2,Opt3,Key\n"What is 2+2?",3,4,5,B\n"Capital of France?",Paris,Rome,Oslo,A\n')
    dataset = load_dataset(path)
    assert [i.answer for i in dataset] == [1, 0] and dataset[0].choices == ["3", "4", "5"]
    assert dataset[0].provenance.row == 2  # the header is row 1


def test_json_list_choices_column(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('question,choices,answer\n"Pick one","[""x"", ""y"", ""z""]",2\n"Bad",not a list,0\n')
    with pytest.raises(DataError, match=r"list.csv, row 3, field 'choices': one choices column must hold a list of texts"):
        load_dataset(path)
    dataset = load_dataset(path, on_invalid="quarantine")
    assert dataset[0].choices == ["x", "y", "z"] and len(dataset.rejected) == 1


def test_headerless_mmlu_file_is_still_mmlu(tmp_path: Path) -> None:
    path = tmp_path / "astronomy_test.csv"
    path.write_text("What is the Sun?,A star,A planet,A moon,A comet,A\nWhich is red?,Mars,Venus,Earth,Moon,A\n")
    dataset = load_dataset(path)
    assert len(dataset) == 2 and dataset[0].subject == "astronomy" and dataset[0].provenance.row == 1


def test_parse_columns() -> None:
    assert parse_columns("question=Q, choices=A,B,C ,answer=K,subject=S") == {
        "question": "Q", "choices": ["A", "B", "C"], "answer": "K", "subject": "S"}
    assert parse_columns("question=Q,choices=opts,answer=K")["choices"] == "opts"
    for bad, fragment in (("question=Q,choices=A,B", "'answer' is required"), ("colour=red", "unknown field"),
                          ("question=Q,question=R,choices=A,answer=K", "given twice"), ("Q,choices=A", "FIELD=COLUMN")):
        with pytest.raises(ConfigError, match=fragment):
            parse_columns(bad)


def test_mapping_on_parquet_and_jsonl_and_refused_on_an_mmlu_folder(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"stem": "Q1?", "o1": "a", "o2": "b", "key": "B", "extra": 7}]),
                   tmp_path / "x.parquet")
    dataset = load_dataset(tmp_path / "x.parquet", mapping=parse_columns("question=stem,choices=o1,o2,answer=key"))
    assert dataset[0].answer == 1 and dataset[0].metadata == {"extra": 7}
    (tmp_path / "x.jsonl").write_text('{"q": "Q?", "a": "x", "b": "y", "k": 1}\n')
    dataset = load_dataset(tmp_path / "x.jsonl", mapping=parse_columns("question=q,choices=a,b,answer=k"))
    assert (dataset[0].id, dataset[0].choices, dataset[0].answer) == ("x-1", ["x", "y"], 1)
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "mmlu" / "s_test.csv").write_text("Q?,a,b,c,d,A\n")
    with pytest.raises(DataError, match="applies to CSV, JSONL, Parquet and Arrow, not mmlu"):
        load_dataset(tmp_path / "mmlu", format="mmlu", mapping=parse_columns("question=q,choices=a,b,answer=k"))
    # a mapping names columns, so a folder's CSV files are read as headered, as one file's are
    with pytest.raises(DataError, match=r"s_test.csv, row 1, field 'q': column missing from header"):
        load_dataset(tmp_path / "mmlu", mapping=parse_columns("question=q,choices=a,b,answer=k"))
    (tmp_path / "mmlu" / "s_test.csv").write_text("q,a,b,k\nQ?,x,y,1\n")
    mapped = load_dataset(tmp_path / "mmlu", mapping=parse_columns("question=q,choices=a,b,answer=k"))
    assert (mapped[0].question, mapped[0].choices, mapped[0].answer) == ("Q?", ["x", "y"], 1)


def test_arc_csv_reads_as_its_jsonl(data_root: Path) -> None:
    """ARC's CSV files write the options into the question ("… (A) x (B) y"); they were refused with "cannot
    tell question, choices and answer from the header". Read now, each item equal to the JSONL's."""
    folder = data_root / "arc" / "ARC-Challenge"
    from_csv = load_dataset(folder / "ARC-Challenge-Dev.csv", on_invalid="quarantine")
    from_jsonl = load_dataset(folder / "ARC-Challenge-Dev.jsonl", on_invalid="quarantine")
    assert len(from_csv) == len(from_jsonl) > 250 and len(from_csv.rejected) == len(from_jsonl.rejected)
    assert [(i.id, i.question, i.choices, i.answer, i.metadata) for i in from_csv] == \
        [(i.id, i.question, i.choices, i.answer, i.metadata) for i in from_jsonl]


def test_options_written_into_the_question(tmp_path: Path) -> None:
    path = tmp_path / "embedded.csv"
    path.write_text(
        "id,question,answerKey\n"
        'a,"Which element has one more proton than chlorine (Cl)? (A) sulfur (S) (B) argon (Ar) (C) fluorine (F) '
        '(D) bromine (Br)",B\n'
        'b,"Which points north?(A) heat (B) magnetism",B\n'
        'c,"Statements (1) and (2) hold. Which follows? (A) both (B) neither (C) only (1)",A\n'
        'd,"How many legs has a spider? (1) six (2) eight (3) ten",2\n'
        'e,"No options here at all",A\n'
        'f,"Pick one (A) x (B) y",C\n')
    dataset = load_dataset(path, on_invalid="quarantine")
    assert [(i.question, i.choices, i.answer) for i in dataset] == [
        ("Which element has one more proton than chlorine (Cl)?", ["sulfur (S)", "argon (Ar)", "fluorine (F)",
                                                                    "bromine (Br)"], 1),
        ("Which points north?", ["heat", "magnetism"], 1),
        ("Statements (1) and (2) hold. Which follows?", ["both", "neither", "only (1)"], 0),
        ("How many legs has a spider?", ["six", "eight", "ten"], 1),
    ]
    assert [str(e) for e in dataset.rejected] == [
        f"{path}, row 6, field 'question': the question holds no options labelled (A), (B), … in order; name the "
        "option columns with --columns question=…,choices=A,B,C,D,answer=…",
        f"{path}, row 7, field 'answerKey': 'C' is not one of the option labels ['A', 'B']",
    ]
    explicit = load_dataset(path, mapping=parse_columns("question=question,choices=question,answer=answerKey"),
                            on_invalid="quarantine")
    assert [i.choices for i in explicit] == [i.choices for i in dataset]


def test_a_choices_cell_as_python_or_numpy_prints_a_list(tmp_path: Path, data_root: Path) -> None:
    """pandas writes a list column to CSV as Python's repr (`['a', 'b']`) and MMLU-Redux's files hold numpy's
    (`['a' 'b']`, no commas); both were refused as "not valid JSON". They are read token by token: only
    text and number literals, so nothing in the cell is evaluated."""
    path = tmp_path / "repr.csv"
    path.write_text('question,choices,answer\n'
                    '"Pick one","[\'a\', \'b, c\', ""it\'s""]",1\n'
                    '"Numpy wrote this","[\'leg muscle\'\n \'a bacterial population\']",0\n'
                    '"Numbers","[1, -2.5, 3]",2\n'
                    '"Code","[__import__(\'os\').system(\'true\')]",0\n'
                    '"Nested","[[1], [2]]",0\n')
    dataset = load_dataset(path, on_invalid="quarantine")
    assert [i.choices for i in dataset] == [["a", "b, c", "it's"], ["leg muscle", "a bacterial population"],
                                           ["1", "-2.5", "3"]]
    assert [(e.row, e.field) for e in dataset.rejected] == [(5, "choices"), (6, "choices")]
    assert "unexpected '__import__'" in str(dataset.rejected[0])
    redux = data_root / "mmlu_redux" / "retriever_evaluation"
    virology = load_dataset(next(redux.glob("*virology*.csv")))  # MMLU-Redux's own layout, every row valid
    assert len(virology) == 100 and all(len(i.choices) == 4 for i in virology)


def test_data_validate_shows_the_first_item_as_read(tmp_path: Path) -> None:
    """Guessed columns and split options are the reader's interpretation; `data validate` shows the first item
    as read, with its key marked, so a user sees at once whether the question, options and key are right."""
    from typer.testing import CliRunner

    from refinelab.cli.app import app

    path = tmp_path / "embedded.csv"
    path.write_text('questionID,question,AnswerKey\nq7,"Which gas do plants take in? (A) oxygen (B) carbon dioxide",B\n')
    shown = CliRunner().invoke(app, ["data", "validate", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "first item as read (q7): Which gas do plants take in?" in shown.output
    assert "  A. oxygen\n" in shown.output and "  B. carbon dioxide  <- key" in shown.output
    as_json = CliRunner().invoke(app, ["data", "validate", str(path), "--json"])
    first = json.loads(as_json.output)["first_item"]
    assert (first["id"], first["choices"], first["answer"]) == ("q7", ["oxygen", "carbon dioxide"], 1)


def test_a_headered_csv_delimited_by_semicolons_or_tabs(tmp_path: Path, data_root: Path) -> None:
    """Excel in many locales writes ";" between fields: nine MMLU-Redux files do, and each was refused as
    "expected question, 2+ choices and an answer letter; got 1 columns". The header tells the delimiter; a
    headerless file stays MMLU's comma-separated layout."""
    from evals.redux import read_redux_file

    path = data_root / "mmlu_redux" / "dev" / "mmlu_astronomy.csv"
    dataset = load_dataset(path, on_invalid="quarantine")
    expected = read_redux_file(path, "astronomy")
    assert len(dataset) == len(expected) == 100
    assert [(i.question, i.choices, i.answer) for i in dataset] == [(e.question, e.choices, e.answer) for e in expected]
    tsv = tmp_path / "items.csv"
    tsv.write_text("question\tA\tB\tanswer\nWhich is even?\t3\t4\tB\n")
    item = load_dataset(tsv)[0]
    assert (item.question, item.choices, item.answer) == ("Which is even?", ["3", "4"], 1)
    headerless = tmp_path / "s_test.csv"
    headerless.write_text("Which; of these; is even?,3,4,5,6,B\n")
    assert load_dataset(headerless)[0].question == "Which; of these; is even?"


def test_truthfulqa_csv_reads_with_its_right_and_wrong_answers_apart(data_root: Path) -> None:
    """TruthfulQA's CSV gives the right answer's text and the wrong answers joined by ';' (no option columns):
    the header is guessed as answer + wrong, the key placed among the wrong answers at a place drawn from the
    question (the same on every read, spread over the positions), Category as the subject."""
    import csv
    from collections import Counter

    path = data_root / "truthfulqa" / "TruthfulQA.csv"
    with open(path, encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert guess_columns(list(rows[0])) == {"question": "Question", "answer": "Best Answer",
                                            "wrong": "Incorrect Answers", "subject": "Category"}
    dataset = load_dataset(path, on_invalid="quarantine")
    assert len(dataset) == 802 and len(dataset.rejected) == 15  # 14 with over 9 wrong answers, 1 repeating one
    assert any("12 wrong answers; an item holds at most 9" in str(r) for r in dataset.rejected)
    first, row = dataset.by_id()["TruthfulQA-2"], rows[0]
    assert first.answer_text == row["Best Answer"] and first.subject == "Misconceptions"
    assert sorted(first.choices) == sorted([row["Best Answer"], *(w.strip() for w in row["Incorrect Answers"].split(";"))])
    places = Counter(item.answer for item in dataset)
    assert len(places) >= 6 and max(places.values()) < 0.4 * len(dataset)  # not always first, as the source has it
    assert [i.answer for i in load_dataset(path, on_invalid="quarantine")] == [i.answer for i in dataset]


def test_wrong_answers_mapped_from_columns_a_list_or_joined_text(tmp_path: Path) -> None:
    csv_path = tmp_path / "gen.csv"
    csv_path.write_text("Q,Right,W1,W2\nWhat is 2+2?,4,3,5\n")
    mapped = load_dataset(csv_path, mapping=parse_columns("question=Q,answer=Right,wrong=W1,W2"))
    assert sorted(mapped[0].choices) == ["3", "4", "5"] and mapped[0].answer_text == "4"
    jsonl = tmp_path / "gen.jsonl"
    jsonl.write_text(json.dumps({"q": "Capital of France?", "best": "Paris", "bad": ["Rome", "Oslo"]}) + "\n"
                     + json.dumps({"q": "Largest planet?", "best": "Jupiter", "bad": "Mars; Venus;"}) + "\n")
    items = load_dataset(jsonl, mapping={"question": "q", "answer": "best", "wrong": "bad"})
    assert [i.answer_text for i in items] == ["Paris", "Jupiter"]
    assert sorted(items[1].choices) == ["Jupiter", "Mars", "Venus"]
    with pytest.raises(ConfigError, match="not both"):
        parse_columns("question=Q,choices=A,B,answer=Right,wrong=W1")
    listed = tmp_path / "listed.csv"  # a JSON list in one CSV cell reads as the JSONL reader reads it
    listed.write_text('Q,Right,Bad\nCapital of France?,Paris,"[""Rome"", ""Oslo; Bergen""]"\n')
    cell = load_dataset(listed, mapping=parse_columns("question=Q,answer=Right,wrong=Bad"))
    assert sorted(cell[0].choices) == ["Oslo; Bergen", "Paris", "Rome"]
    empty = tmp_path / "empty.csv"
    empty.write_text("Q,Right,W1\nWhat is 2+2?,4,\n")
    with pytest.raises(DataError, match=r"row 2, field 'W1': no wrong answers"):
        load_dataset(empty, mapping=parse_columns("question=Q,answer=Right,wrong=W1"))
