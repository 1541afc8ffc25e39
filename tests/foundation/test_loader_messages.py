"""What a loader says about a bad file, found in a user audit: a mapped column the rows lack (silently read
another column), an extra key of our layout (pydantic's words, no way out), a file whose every row fails alike
(the same line a thousand times) and CSV rows whose message said `None`, `expected an answer letter` or not
which options repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.errors import DataError
from refinelab.io import as_dataset, load_dataset

ROWS = [{"question": "Largest planet?", "choices": ["Mars", "Jupiter"], "answer": 1},
        {"question": "Symbol of sodium?", "choices": ["Na", "So"], "answer": 0}]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# 1. a mapped column the row lacks


def test_a_mapped_column_a_jsonl_row_lacks_is_refused_naming_the_row_the_column_and_the_rows_columns(
        tmp_path: Path) -> None:
    """`answer=key` on rows without `key` read the row's own `answer`, and `question=nope` its `question`,
    silently. A mapped column must be in the row, as in a CSV's header; an optional one (subject) too."""
    path = _jsonl(tmp_path / "trail.jsonl", ROWS)
    cases = [({"question": "question", "choices": "choices", "answer": "key"}, "key", "answer"),
             ({"question": "nope", "choices": "choices", "answer": "answer"}, "nope", "question"),
             ({"question": "question", "choices": ["choices", "more"], "answer": "answer"}, "more", "choices"),
             ({"question": "question", "choices": "choices", "answer": "answer", "subject": "topic"}, "topic",
              "subject")]
    for mapping, column, field in cases:
        with pytest.raises(DataError, match=rf"trail.jsonl, row 1, field '{column}': no such column \(the column "
                                            rf"mapping names it for {field}\); the row has question, choices, answer"):
            load_dataset(path, mapping=mapping)
    rows = [*ROWS, {"question": "Sides of a hexagon?", "choices": ["5", "6"], "key": 1}]
    quarantined = load_dataset(_jsonl(tmp_path / "mixed.jsonl", rows), on_invalid="quarantine",
                               mapping={"question": "question", "choices": "choices", "answer": "key"})
    assert [i.question for i in quarantined] == ["Sides of a hexagon?"]  # each row answers for its own columns
    assert [(e.row, e.field) for e in quarantined.rejected] == [(1, "key"), (2, "key")]


def test_a_mapped_column_a_table_or_a_record_lacks_is_refused(tmp_path: Path) -> None:
    """A Parquet file's columns are checked once, for the file; a list of dicts row by row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "t.parquet")
    mapping = {"question": "question", "choices": "choices", "answer": "key"}
    with pytest.raises(DataError, match=r"t.parquet, field 'key': no such column .*for answer\); the file has "
                                        r"question, choices, answer$"):
        load_dataset(tmp_path / "t.parquet", mapping=mapping)
    with pytest.raises(DataError, match=r"<records>, row 1, field 'key': no such column"):
        as_dataset(ROWS, columns=mapping)
    assert len(as_dataset([{**row, "key": row["answer"]} for row in ROWS], columns=mapping)) == 2


# 2. extra keys of our own layout


def test_an_extra_key_of_our_layout_says_where_to_put_it_and_mapped_columns_keep_it(tmp_path: Path) -> None:
    rows = [{"id": f"q{n}", **row, "source": "web"} for n, row in enumerate(ROWS)]
    path = _jsonl(tmp_path / "extra.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert ("extra.jsonl, row 1, field 'source': not a field of RefineLab's layout (id, question, choices, answer, "
            "subject, ") in message, message
    assert "put extra keys under `metadata`, or read the file as records with --columns" in message
    assert "Extra inputs" not in message
    dataset = load_dataset(path, mapping={"question": "question", "choices": "choices", "answer": "answer"})
    assert [i.id for i in dataset] == ["q0", "q1"] and dataset[0].metadata == {"source": "web"}


def test_an_lm_eval_export_reads_back_as_records_with_its_extra_keys_in_metadata(tmp_path: Path) -> None:
    """`export --lm-eval` adds `letters` and `created_by` to each row: refused as our layout (a typo must not
    vanish), read back with the plain mapping, those two kept in metadata."""
    from refinelab.api.export_lmeval import export_lm_eval

    run = tmp_path / "run"
    run.mkdir()
    _jsonl(run / "refined.jsonl", [{"id": f"q{n}", **row, "subject": "sci"} for n, row in enumerate(ROWS)])
    task = export_lm_eval(run, tmp_path / "tasks", task_name="t").with_suffix(".jsonl")
    with pytest.raises(DataError, match="field 'letters': not a field of RefineLab's layout"):
        load_dataset(task)
    back = load_dataset(task, mapping={"question": "question", "choices": "choices", "answer": "answer"})
    assert [(i.id, i.question, i.choices, i.answer, i.subject) for i in back] == [
        (f"q{n}", row["question"], row["choices"], row["answer"], "sci") for n, row in enumerate(ROWS)]
    assert back[0].metadata == {"letters": ["A", "B"], "created_by": "original"}


# 3. every row failing alike


def _sciq(path: Path, n: int) -> Path:
    path.write_text(json.dumps([{"question": f"Q{r}?", "distractor1": "a", "distractor2": "b", "distractor3": "c",
                                 "correct_answer": "d", "support": ""} for r in range(n)]))
    return path


def test_a_file_whose_every_row_fails_alike_is_one_line_with_the_count_and_a_hint(tmp_path: Path) -> None:
    """SciQ's JSON without --columns: `data validate` listed "field 'choices': Field required" once per row."""
    from refinelab.cli.app import app

    path = _sciq(tmp_path / "sciq.json", 7)
    with pytest.raises(DataError, match=r"sciq.json, row 1, field 'choices': missing \(the same in all 7 rows; none "
                                        r"is valid\); map the file's columns with --columns question=…,choices=…,"):
        load_dataset(path, on_invalid="quarantine")
    result = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 2 and result.output.count("sciq.json") == 1, result.output
    mapped = "question=question,choices=distractor1,distractor2,distractor3,correct_answer,answer=correct_answer"
    assert CliRunner().invoke(app, ["data", "validate", str(path), "--columns", mapped]).exit_code == 0


def test_partly_bad_files_and_unlike_failures_are_still_listed_row_by_row(tmp_path: Path) -> None:
    bad = [{"id": "b1", "question": "Q1?", "choices": ["x", "x"], "answer": 0},
           {"id": "b2", "question": "Q2?", "choices": ["y", "y"], "answer": 0}]
    partly = load_dataset(_jsonl(tmp_path / "partly.jsonl", [{"id": "ok", **ROWS[0]}, *bad]), on_invalid="quarantine")
    assert [i.id for i in partly] == ["ok"] and [e.row for e in partly.rejected] == [2, 3]
    unlike = [bad[0], {**bad[1], "choices": ["y", "z"], "answer": 5}]
    dataset = load_dataset(_jsonl(tmp_path / "unlike.jsonl", unlike), on_invalid="quarantine")
    assert not len(dataset) and [e.row for e in dataset.rejected] == [1, 2]
    one = load_dataset(_jsonl(tmp_path / "one.jsonl", bad[:1]), on_invalid="quarantine")
    assert not len(one) and len(one.rejected) == 1  # one row: its own line already says it


# 4. CSV messages


def test_csv_rows_say_how_short_they_are_which_letter_is_past_the_options_and_which_options_repeat(
        tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("question,A,B,C,D,answer\nq1?,a,b,c,d,E\nq2?,a,b,B.,d,A\nq3?,a,b\nq4?,a,b,c,d,B\n")
    dataset = load_dataset(path, on_invalid="quarantine")
    assert [i.question for i in dataset] == ["q4?"]
    assert [e.problem for e in dataset.rejected] == [
        "'E' is beyond the 4 options A-D",
        "choices are not distinct after normalisation: B and C are the same",
        "3 cells, the header has 6"]
    assert [(e.row, e.field) for e in dataset.rejected] == [(2, "answer"), (3, "choices"), (4, "C")]


# 6. answers counted from 1


@pytest.mark.parametrize("layout", ["csv", "jsonl", "records"])
def test_a_file_whose_answers_are_counted_from_1_is_refused_whole(tmp_path: Path, layout: str) -> None:
    """Answers 1-4 over four options: the rows answering 4 were refused as out of range and the others kept,
    each key one option late, with no word that anything was off. Such rows and no answer 0 anywhere mark a
    file counted from 1: it is refused whole, saying so."""
    answers = [1, 4, 2, 3, 4]
    rows = [{"id": f"r{i}", "question": f"Q{i}?", "choices": ["a", "b", "c", "d"], "answer": a}
            for i, a in enumerate(answers)]
    if layout == "csv":
        path = tmp_path / "one.csv"
        path.write_text("question,A,B,C,D,answer\n" + "".join(f"Q{i}?,a,b,c,d,{a}\n" for i, a in enumerate(answers)))
    elif layout == "jsonl":
        path = _jsonl(tmp_path / "one.jsonl", rows)
    else:  # records: the foreign layout (options/label) read through `mapped_record`
        path = _jsonl(tmp_path / "one.jsonl", [{"query": r["question"], "options": r["choices"], "label": r["answer"]}
                                               for r in rows])
    with pytest.raises(DataError) as caught:
        load_dataset(path, on_invalid="quarantine")
    message = str(caught.value)
    assert "one." in message and ("field 'answer'" in message or "field 'label'" in message)
    assert "the answers look counted from 1: 2 row(s) give the number of options" in message
    with pytest.raises(DataError, match=r"out of range for 4 choices \(an index is 0-based"):
        load_dataset(path)  # strict: the first such row, with how answers are read


def test_a_0_based_file_with_one_answer_past_the_options_keeps_its_other_rows(tmp_path: Path) -> None:
    path = tmp_path / "zero.csv"
    path.write_text("question,A,B,C,D,answer\nQ0?,a,b,c,d,0\nQ1?,a,b,c,d,4\nQ2?,a,b,c,d,2\n")
    dataset = load_dataset(path, on_invalid="quarantine")
    assert [i.answer for i in dataset.items] == [0, 2] and len(dataset.rejected) == 1


def test_a_utf16_file_is_named_as_utf16_not_binary(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("question,A,B,answer\nQ?,a,b,A\n".encode("utf-16"))
    with pytest.raises(DataError, match="excel.csv: UTF-16 text .*save it as UTF-8"):
        load_dataset(path)


def test_a_csv_row_with_too_many_cells_is_one_bad_row_not_the_whole_file(tmp_path: Path) -> None:
    """An unquoted comma in one cell stopped the whole file, even under quarantine (`data validate`, which
    promises every bad row, showed only that one); it is that row's problem now."""
    path = tmp_path / "long.csv"
    path.write_text("question,A,B,answer\nQ1?,a,b,A\nQ2?,a, b,c,B\nQ3?,a,b,B\n")
    dataset = load_dataset(path, on_invalid="quarantine")
    assert [i.question for i in dataset.items] == ["Q1?", "Q3?"]
    (problem,) = dataset.rejected
    assert "long.csv, row 3: more cells than the 4 header columns" in str(problem)
    with pytest.raises(DataError, match="row 3: more cells than the 4 header columns"):
        load_dataset(path)
