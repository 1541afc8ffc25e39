"""Loaders on the real shared data, and malformed inputs that must name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.errors import DataError
from refinelab.io import load_dataset, read_jsonl, read_mmlu_csv, write_jsonl, write_parquet
from refinelab.schema import QAItem


def test_mmlu_csv_folder_loads_all_subjects(data_root: Path) -> None:
    dataset = load_dataset(data_root / "mmlu" / "dev", on_invalid="quarantine")
    assert len(dataset) + len(dataset.rejected) == 285
    assert [e.row for e in dataset.rejected] == [3]  # high_school_biology dev row 3 repeats an option
    assert len(dataset.subjects()) == 57
    item = dataset.by_id()["astronomy-1"]
    assert item.subject == "astronomy" and len(item.choices) == 4 and 0 <= item.answer < 4


def test_mmlu_test_folder_quarantines_real_duplicate_options(data_root: Path) -> None:
    dataset = load_dataset(data_root / "mmlu" / "test", on_invalid="quarantine")
    assert len(dataset) + len(dataset.rejected) == 14042
    assert dataset.rejected, "real MMLU has items with duplicate options"
    assert all("not distinct" in str(e) or "empty" in str(e) for e in dataset.rejected)
    with pytest.raises(DataError, match="business_ethics_test.csv, row 3, field 'choices'"):
        read_mmlu_csv(data_root / "mmlu" / "test" / "business_ethics_test.csv")


def test_mmlu_single_file_answer_letters(data_root: Path) -> None:
    dataset = read_mmlu_csv(data_root / "mmlu" / "val" / "virology_val.csv")
    assert dataset[0].subject == "virology"
    assert {i.answer for i in dataset} <= {0, 1, 2, 3}


def test_arc_jsonl(data_root: Path) -> None:
    dataset = load_dataset(data_root / "arc" / "ARC-Easy" / "ARC-Easy-Dev.jsonl")
    assert len(dataset) == 570
    assert all(i.choices[i.answer] for i in dataset)
    assert {len(i.choices) for i in dataset} >= {3, 4}  # ARC mixes 3-, 4- and 5-option items


def test_round_trip_jsonl_and_parquet(tmp_path: Path, data_root: Path) -> None:
    dataset = load_dataset(data_root / "mmlu" / "dev", on_invalid="quarantine")
    write_jsonl(dataset, tmp_path / "a.jsonl")
    write_parquet(dataset, tmp_path / "a.parquet")
    again = load_dataset(tmp_path / "a.jsonl")
    again_pq = load_dataset(tmp_path / "a.parquet")
    assert [i.model_dump() for i in again] == [i.model_dump() for i in dataset]
    assert [i.model_dump() for i in again_pq] == [i.model_dump() for i in dataset]


def test_generic_csv_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("qid,stem,o1,o2,o3,key,topic\nq1,What is 1+1?,1,2,3,B,math\n")
    mapping = {"id": "qid", "question": "stem", "choices": ["o1", "o2", "o3"], "answer": "key", "subject": "topic"}
    dataset = load_dataset(path, mapping=mapping)
    assert dataset[0].answer == 1 and dataset[0].subject == "math"


def test_hugging_face_dataset() -> None:
    datasets = pytest.importorskip("datasets")
    hf = datasets.Dataset.from_list([{"uid": "x1", "question": "2+2?", "choices": ["3", "4"], "label": 1}])
    from refinelab.io import from_hf

    dataset = from_hf(hf, mapping={"uid": "id", "label": "answer"})
    assert dataset[0].id == "x1" and dataset[0].answer_text == "4"


def test_duplicates_are_reported() -> None:
    from refinelab.schema import Dataset

    a = QAItem(id="a", question="What is X?", choices=["1", "2"], answer=0)
    b = QAItem(id="b", question="what is  x?", choices=["2", "1"], answer=1)
    report = Dataset([a, b]).duplicates()
    assert report.duplicate_questions == [["a", "b"]]


GOOD = {"id": "q1", "question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}

# (name, file name, content, expected fragment of the message)
MALFORMED: list[tuple[str, str, bytes, str]] = [
    ("empty file", "a.jsonl", b"", "file is empty"),
    ("whitespace only", "a.jsonl", b"  \n\n", "file is empty"),
    ("not json", "a.jsonl", b"{oops\n", "row 1: not valid JSON"),
    ("json array line", "a.jsonl", b"[1,2]\n", "row 1: expected a JSON object"),
    ("missing id", "a.jsonl", json.dumps({k: v for k, v in GOOD.items() if k != "id"}).encode(), "field 'id'"),
    ("missing question", "a.jsonl", json.dumps({k: v for k, v in GOOD.items() if k != "question"}).encode(), "field 'question'"),
    ("blank question", "a.jsonl", json.dumps({**GOOD, "question": "   "}).encode(), "question is blank"),
    ("one choice", "a.jsonl", json.dumps({**GOOD, "choices": ["a"], "answer": 0}).encode(), "expected 2-10 choices"),
    ("eleven choices", "a.jsonl", json.dumps({**GOOD, "choices": [str(i) for i in range(11)]}).encode(), "expected 2-10 choices"),
    ("empty choice", "a.jsonl", json.dumps({**GOOD, "choices": ["a", "", "c"]}).encode(), "choice B is empty"),
    ("duplicate choices", "a.jsonl", json.dumps({**GOOD, "choices": ["Paris", "paris.", "c"]}).encode(), "not distinct"),
    ("answer out of range", "a.jsonl", json.dumps({**GOOD, "answer": 7}).encode(), "out of range"),
    ("answer letter out of range", "a.jsonl", json.dumps({**GOOD, "answer": "F"}).encode(), "field 'answer'"),
    ("answer wrong type", "a.jsonl", json.dumps({**GOOD, "answer": [1]}).encode(), "field 'answer'"),
    # JSON true is not option B: a boolean key is a column mix-up (an "is correct" flag), not an index
    ("answer boolean", "a.jsonl", json.dumps({**GOOD, "answer": True}).encode(), "field 'answer': expected an answer letter"),
    ("unknown field", "a.jsonl", json.dumps({**GOOD, "colour": "red"}).encode(), "field 'colour'"),
    ("difficulty out of range", "a.jsonl", json.dumps({**GOOD, "difficulty": 3}).encode(), "difficulty must be in [0, 1]"),
    ("duplicate ids", "a.jsonl", (json.dumps(GOOD) + "\n" + json.dumps(GOOD)).encode(), "row 2, field 'id': duplicate id"),
    ("wrong encoding", "a.jsonl", json.dumps(GOOD).encode().replace(b"Q?", b"Q\xe9?"), "row 1: not valid utf-8"),
    ("binary junk", "a.jsonl", b"\x00\x01\x02PK\x03\x04" * 50, "binary content"),
    ("mmlu too few columns", "x_test.csv", b"What?,A,B\n", "row 1: expected question, 2+ choices"),
    ("mmlu bad letter", "x_test.csv", b"What?,a,b,c,d,Z\n", "row 1, field 'column 6 (answer)'"),
    ("mmlu letter past choices", "x_test.csv", b"What?,a,b,c,E\n", "column 5 (answer)"),
    # over the csv module's field limit: an unexpected csv.Error (exit 1) before
    ("csv field over the parser's limit", "a.csv", b"question,A,B,answer\n" + b"q" * 200_000 + b",a,b,A\n",
     "row 2: not readable as CSV: a field is longer than 131,072 characters"),
    ("mmlu field over the parser's limit", "x_test.csv", b"q" * 200_000 + b",a,b,A\n",
     "row 1: not readable as CSV: a field is longer"),
    ("huge row", "a.jsonl", json.dumps({**GOOD, "question": "x" * 200_000}).encode(), "longer than 100000"),
    ("unknown extension", "a.txt", b"hello", "unknown file type"),
    ("corrupt parquet", "a.parquet", b"PAR1garbagePAR1", "not a readable Parquet"),
    ("arc bad key", "a.jsonl", json.dumps({"id": "1", "question": {"stem": "S", "choices": [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}, "answerKey": "C"}).encode(), "field 'answerKey'"),
]


@pytest.mark.parametrize(("name", "file_name", "content", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_names_the_problem(tmp_path: Path, name: str, file_name: str, content: bytes, expected: str) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message, message


def test_a_folder_without_mmlu_csv_files_says_what_it_holds(tmp_path: Path) -> None:
    """A folder of CSV files is read as MMLU's layout; one of JSONL files named for splits is refused naming
    them, so the user knows to choose one (`--split`) rather than wonder why "no .csv files" when the folder is
    full of data; a folder with nothing to read says so."""
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match=r"holds 2 splits \(test, train\); choose one with --split NAME"):
        load_dataset(tmp_path)
    assert [i.id for i in load_dataset(tmp_path, split="test")] == ["q1"]
    with pytest.raises(DataError, match=r"read as MMLU's CSV layout, but it holds 2 \.jsonl files; pass one file"):
        load_dataset(tmp_path, format="mmlu")
    (tmp_path / "train.jsonl").unlink()
    (tmp_path / "test.jsonl").unlink()
    with pytest.raises(DataError, match="folder has no .csv files"):
        load_dataset(tmp_path)


def test_generic_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("stem,o1,o2,key\nQ,1,2,A\n")
    with pytest.raises(DataError, match="row 1, field 'o3': column missing"):
        load_dataset(path, mapping={"question": "stem", "choices": ["o1", "o2", "o3"], "answer": "key"})


def test_reading_never_writes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n{bad\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataError):
        read_jsonl(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_writer_is_atomic_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"

    def broken():  # an iterable that fails half way
        yield QAItem(**GOOD)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(broken(), target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_limited_selection_counts_only_the_invalid_rows_it_read(tmp_path: Path) -> None:
    rows = [f'"Question {n}?","a{n}","b{n}","c{n}","d{n}",A' for n in range(1, 7)]
    rows[1] = '"Question 2?","same","same","c","d",A'  # row 2: repeated option
    rows[4] = '"Question 5?","same","same","c","d",A'  # row 5: repeated option
    folder = tmp_path / "mmlu"
    folder.mkdir()
    (folder / "demo_test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    everything = load_dataset(folder, on_invalid="quarantine")
    assert [e.row for e in everything.rejected] == [2, 5]
    first_two = everything.filter(limit=2)  # rows 1 and 3: read past row 2, never reached row 5
    assert [i.provenance.row for i in first_two] == [1, 3]
    assert [e.row for e in first_two.rejected] == [2]
    assert [e.row for e in everything.filter(limit=4).rejected] == [2, 5]
    assert [e.row for e in everything.filter(subjects=["demo"]).rejected] == [2, 5]
    (folder / "demo_test.csv").write_text("\n".join(rows[:4] + [rows[4].replace("Question 5", "Question 7")])
                                          + "\n", encoding="utf-8")  # the file's last row is the invalid one
    ends_invalid = load_dataset(folder, on_invalid="quarantine")
    assert [e.row for e in ends_invalid.filter(limit=3).rejected] == [2, 5]  # every valid item taken: all read
    assert [e.row for e in ends_invalid.filter(limit=2).rejected] == [2]


def test_parquet_choices_are_a_list_a_hugging_face_struct_or_refused(tmp_path: Path) -> None:
    """Choices held as text were split into one-letter options ("Paris" -> P, a, r, i, s) and Hugging Face's
    `{"text", "label"}` struct became the options "text" and "label", silently; now the struct is unpacked
    (an answer given as one of its labels is mapped to its index) and text is refused naming the row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    struct = tmp_path / "struct.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "question": ["Q1?", "Q2?"],
                             "choices": [{"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
                                         {"text": ["u", "v"], "label": ["A", "B"]}],
                             "answer": ["3", "A"]}), struct)
    assert [(i.choices, i.answer) for i in load_dataset(struct).items] == [(["x", "y", "z"], 2), (["u", "v"], 0)]
    text = tmp_path / "text.parquet"
    pq.write_table(pa.table({"id": ["a"], "question": ["Q?"], "choices": ["Paris"], "answer": [0]}), text)
    with pytest.raises(DataError, match=r"text.parquet, row 1, field 'choices': expected a list of options, got 'Paris'"):
        load_dataset(text)


def test_metadata_is_plain_json_or_refused_at_load(tmp_path: Path) -> None:
    """Records, Hugging Face datasets and Parquet can carry what JSON cannot. A date in `metadata` made
    `write_parquet` raise a TypeError, bytes that are not UTF-8 made `write_jsonl` raise, NaN was written as
    `NaN` in the Parquet export and nesting past the loaders' depth was written out: a run paid for its work
    and then failed writing it, or wrote a file its own loader refused. Now an item's metadata is made plain
    JSON when the item is built, or refused naming row, field and key."""
    import datetime
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from refinelab.io import from_records

    item = {"question": "Q?", "choices": ["a", "b"], "answer": 0}
    odd = from_records([{**item, "when": datetime.date(2020, 1, 2), "price": decimal.Decimal("1.5"),
                         "tags": {"y", "x"}, "by_year": {2020: 1}, "metadata": {"score": float("nan")}}])
    assert odd.items[0].metadata == {"score": None, "when": "2020-01-02", "price": 1.5, "tags": ["x", "y"],
                                     "by_year": {"2020": 1}}
    for writer, name in ((write_jsonl, "out.jsonl"), (write_parquet, "out.parquet")):
        written = writer(odd.items, tmp_path / name)
        assert load_dataset(written).items[0].metadata == odd.items[0].metadata  # reads back as written

    for extra, expected in (({"raw": b"\xff"}, "raw: bytes that are not UTF-8 text"),
                            ({"big": 10**200}, "big: integer longer than 100 digits"),
                            ({"handle": object()}, "handle: a value of type object cannot be written as JSON")):
        with pytest.raises(DataError, match=rf"<records>, row 1, field 'metadata': {expected}"):
            from_records([{**item, **extra}])

    deep: dict[str, object] = {"x": 1}
    for _ in range(70):
        deep = {"x": deep}
    nested = tmp_path / "deep.parquet"
    pq.write_table(pa.table({"question": ["Q?"], "choices": [["a", "b"]], "answer": [0], "metadata": [deep]}), nested)
    with pytest.raises(DataError, match=r"deep.parquet, row 1, field 'metadata': .*nested deeper than 63 levels"):
        load_dataset(nested)


def test_the_field_length_limit_holds_for_items_built_in_a_run(tmp_path: Path) -> None:
    """The 100,000-character limit on a question or option was checked only by the file loaders, so an item a
    model wrote (a writer's draft, a distractor) could exceed it and make the refined set unreadable by the
    same loaders. The limit is now the item's own."""
    from pydantic import ValidationError

    from refinelab.schema import MAX_FIELD_CHARS

    with pytest.raises(ValidationError, match="choice B is longer than 100000 characters"):
        QAItem(id="r1-expand-1", question="Which?", choices=["a", "b" * (MAX_FIELD_CHARS + 1)], answer=0)
    with pytest.raises(ValidationError, match="longer than 100000 characters"):
        QAItem(id="r1-expand-1", question="q" * (MAX_FIELD_CHARS + 1), choices=["a", "b"], answer=0)
    longest = QAItem(id="x", question="q" * MAX_FIELD_CHARS, choices=["a" * MAX_FIELD_CHARS, "b"], answer=0)
    assert load_dataset(write_jsonl([longest], tmp_path / "out.jsonl")).items == [longest]


def test_a_jsonl_of_another_layout_is_read_as_records(tmp_path: Path, data_root: Path) -> None:
    """A JSONL that does not use our names (OpenBookQA's `query`/`choices`/`gold`, AQuA's
    `question`/`options`/`correct` with "A)5" options) was refused row by row as "id: missing". It is now
    read as a record is; a row that uses our names keeps the strict contract (id required, no unknown key)."""
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"query": "Predators eat", "choices": ["lions", "bunnies"], "gold": 1}) + "\n" +
                    json.dumps({"question": "2+2?", "options": ["A)3", "B)4", "C)5"], "correct": "B",
                                "rationale": "adds"}) + "\n")
    items = load_dataset(path).items
    assert [(i.id, i.question, i.choices, i.answer, i.metadata) for i in items] == [
        ("other-1", "Predators eat", ["lions", "bunnies"], 1, {}),
        ("other-2", "2+2?", ["3", "4", "5"], 1, {"rationale": "adds"}),
    ]
    openbook = load_dataset(data_root / "openbookqa" / "openbook_qa.jsonl")
    assert len(openbook) == 500 and openbook[0].choices[1] == "quit eating lunch out" and openbook[0].answer == 1
    ours = tmp_path / "ours.jsonl"
    ours.write_text(json.dumps({**GOOD, "colour": "red"}) + "\n")
    with pytest.raises(DataError, match="field 'colour'"):
        load_dataset(ours)


def test_a_json_array_file_and_a_mapped_jsonl(tmp_path: Path) -> None:
    """A `.json` file holding one array (SciQ's, SVAMP's) was read as JSON lines and refused at row 1 as "not
    valid JSON"; a column mapping was refused for JSONL. SciQ's layout (the right option in its own key, no
    index) now loads with a mapping that names it as an option and as the answer."""
    from refinelab.io import parse_columns

    path = tmp_path / "sciq.json"
    rows = [{"question": "What do plants make?", "distractor1": "salt", "distractor2": "iron",
             "correct_answer": "sugar", "support": "Photosynthesis makes sugar."},
            {"question": "Odd one?", "distractor1": "x", "distractor2": "x", "correct_answer": "x", "support": ""}]
    path.write_text(json.dumps(rows, indent=2))
    with pytest.raises(DataError, match=r"sciq.json, row 1, field 'choices'"):  # no options under a usual name
        load_dataset(path)
    mapping = parse_columns("question=question,choices=correct_answer,distractor1,distractor2,answer=correct_answer")
    dataset = load_dataset(path, mapping=mapping, on_invalid="quarantine")
    assert [(i.id, i.choices, i.answer, i.metadata) for i in dataset] == [
        ("sciq-1", ["sugar", "salt", "iron"], 0, {"support": "Photosynthesis makes sugar."})]
    assert [(e.row, e.field) for e in dataset.rejected] == [(2, "answer")]  # "x" is three options: no single match
    (tmp_path / "list.json").write_text('{"question": "not an array"}')
    with pytest.raises(DataError, match="list.json, row 1, field 'choices'"):  # one object: read as one JSON line
        load_dataset(tmp_path / "list.json")
    (tmp_path / "mixed.json").write_text('[{"query": "Q?", "choices": ["a", "b"], "gold": 0}, 5]')
    with pytest.raises(DataError, match="mixed.json, row 2: expected a JSON object per element of the array"):
        load_dataset(tmp_path / "mixed.json")


def test_gzip_compressed_files_are_read_within_a_size_limit(tmp_path: Path, data_root: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`.jsonl.gz` / `.csv.gz` (how CommonsenseQA's train split ships) were "unknown file type '.gz'". They
    are read as the format inside; what they inflate to is capped, so a small file cannot fill memory."""
    import gzip

    from refinelab.io import reading as loaders  # where the cap is read

    train = load_dataset(data_root / "commonsenseqa" / "train_rand_split.jsonl.gz", on_invalid="quarantine")
    assert len(train) > 9000 and train[0].choices and train.name == "train_rand_split"
    path = tmp_path / "quiz.csv.gz"
    path.write_bytes(gzip.compress(b"question,A,B,answer\nWhich is even?,3,4,B\n"))
    assert [(i.choices, i.answer) for i in load_dataset(path)] == [(["3", "4"], 1)]
    mmlu = tmp_path / "astronomy_test.csv.gz"  # MMLU's layout gzipped: the subject is the name less split and suffixes
    mmlu.write_bytes(gzip.compress((data_root / "mmlu" / "test" / "astronomy_test.csv").read_bytes()))
    assert {(i.subject, i.id.rsplit("-", 1)[0]) for i in load_dataset(mmlu)} == {("astronomy", "astronomy")}
    monkeypatch.setattr(loaders, "MAX_INFLATED_BYTES", 1000)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b" " * 100_000))
    with pytest.raises(DataError, match="bomb.jsonl.gz: inflates to more than 1,000 bytes"):
        load_dataset(bomb)
    (tmp_path / "broken.jsonl.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataError, match="broken.jsonl.gz: not a readable gzip file"):
        load_dataset(tmp_path / "broken.jsonl.gz")


def test_a_folder_of_one_splits_shards_is_read_in_order(tmp_path: Path) -> None:
    """Hugging Face ships a large split as "train-00000-of-00002.parquet", … A folder of one split's shards
    is read whole, in order; shards of several splits, or a shard missing, are refused by name (joining
    train and test, or reading 2 of 3 shards, would be silently wrong)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    for index in range(2):
        rows = [{"question": f"Q{index}-{r}?", "choices": ["a", "b"], "answer": r % 2} for r in range(3)]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"train-0000{index}-of-00002.parquet")
    dataset = load_dataset(folder)
    assert dataset.name == "data" and [i.question for i in dataset][:4] == ["Q0-0?", "Q0-1?", "Q0-2?", "Q1-0?"]
    # ids numbered across the split, so they do not change with the number of shards it was saved in
    assert [i.id for i in dataset] == [f"train-{n}" for n in range(1, 7)]
    assert [i.provenance.row for i in dataset][2:4] == [3, 1]  # errors still name the shard's own row
    (folder / "train-00001-of-00002.parquet").rename(folder / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"holds 2 splits \(test, train\); choose one with --split"):
        load_dataset(folder)
    (folder / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(DataError, match="holds 1 shard\\(s\\) of train, but their names count 2"):
        load_dataset(folder)
