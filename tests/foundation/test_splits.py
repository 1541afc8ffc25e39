"""Folders holding several splits, as users have them from Hugging Face: `save_to_disk` folders (Arrow
shards, a `DatasetDict`'s split sub-folders), hub snapshots sharding every split into one folder, and
MMLU's dev/val/test. `split` picks one; without it a folder of several is refused naming them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from refinelab.errors import DataError
from refinelab.io import as_dataset, load_dataset
from refinelab.schema import QAItem


def _rows(tag: str, n: int) -> dict[str, list]:
    return {"question": [f"{tag} question {r}?" for r in range(n)],
            "choices": [[f"{tag} a{r}", f"{tag} b{r}", f"{tag} c{r}"] for r in range(n)],
            "answer": [r % 3 for r in range(n)]}


def test_a_save_to_disk_dataset_is_read_from_its_arrow_shards(tmp_path: Path) -> None:
    """`Dataset.save_to_disk` writes Arrow stream shards beside dataset_info.json and state.json; the folder
    reads as the dataset it saved, in order, and a shard on its own reads too."""
    import datasets

    datasets.Dataset.from_dict(_rows("solo", 5)).save_to_disk(str(tmp_path / "saved"), num_shards=2)
    dataset = load_dataset(tmp_path / "saved")
    assert [i.question for i in dataset] == [f"solo question {r}?" for r in range(5)]
    assert [i.answer for i in dataset] == [0, 1, 2, 0, 1] and dataset[4].choices == ["solo a4", "solo b4", "solo c4"]
    assert [i.id for i in dataset] == [f"saved-{n}" for n in range(1, 6)]  # the folder's name, across shards
    shard = load_dataset(tmp_path / "saved" / "data-00001-of-00002.arrow")
    assert [i.question for i in shard] == [f"solo question {r}?" for r in range(3, 5)]


def test_a_saved_dataset_dict_needs_a_split_and_reads_the_one_named(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(_rows("train", 4)),
                          "test": datasets.Dataset.from_dict(_rows("test", 2))}).save_to_disk(str(folder))
    with pytest.raises(DataError, match=r"DatasetDict \(save_to_disk\) holding the splits test, train; choose one "
                                        r"with --split NAME"):
        load_dataset(folder)
    test = load_dataset(folder, split="test")
    assert test.name == "test" and [i.question for i in test] == ["test question 0?", "test question 1?"]
    assert [i.id for i in test] == ["test-1", "test-2"]  # not data-00000-of-00001-1, as train's would be too
    assert len(as_dataset(folder, split="train")) == 4  # the API's coercion passes it on
    with pytest.raises(DataError, match=r"has no split 'validation': no folder of that name \(it holds test, train\)"):
        load_dataset(folder, split="validation")


def test_a_folder_sharding_several_splits_reads_the_named_ones_shards(tmp_path: Path) -> None:
    """A hub snapshot's data/ holds train-00000-of-00002.parquet, train-00001-…, test-00000-of-00001.parquet:
    without a split it is refused (joining train and test would be silently wrong), with one its shards are
    read in order, and a split missing a shard is refused as before."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    for index in range(2):
        pq.write_table(pa.table(_rows(f"train{index}", 2)), folder / f"train-0000{index}-of-00002.parquet")
    pq.write_table(pa.table(_rows("test", 3)), folder / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"holds 2 splits \(test, train\); choose one with --split"):
        load_dataset(folder)
    train = load_dataset(folder, split="train")
    assert [i.question for i in train] == ["train0 question 0?", "train0 question 1?",
                                           "train1 question 0?", "train1 question 1?"]
    assert len(load_dataset(folder, split="test")) == 3
    with pytest.raises(DataError, match="has no split 'dev'; it holds test, train"):
        load_dataset(folder, split="dev")
    (folder / "train-00001-of-00002.parquet").unlink()
    with pytest.raises(DataError, match="holds 1 shard\\(s\\) of train, but their names count 2"):
        load_dataset(folder, split="train")
    renamed = tmp_path / "renamed"  # a column mapping keeps the split's numbering
    renamed.mkdir()
    for index in range(2):
        table = pa.table({"stem": [f"Q{index}-{r}?" for r in range(2)], "options": [["a", "b"]] * 2, "key": [0, 1]})
        pq.write_table(table, renamed / f"test-0000{index}-of-00002.parquet")
    mapped = load_dataset(renamed, mapping={"question": "stem", "choices": "options", "answer": "key"})
    assert [i.id for i in mapped] == ["test-1", "test-2", "test-3", "test-4"] and mapped[2].question == "Q1-0?"


def test_a_hub_snapshot_reads_its_data_folder_by_split(tmp_path: Path) -> None:
    """A dataset repository as cloned: README.md beside data/, whose files are named for their splits
    (data/test.jsonl, data/train-00000-of-00001.parquet). The folder reads through data/; one file alone in a
    folder is that folder's data; a split held both as shards and as one file is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("---\nlicense: mit\n---\n")
    pq.write_table(pa.table(_rows("train", 3)), repo / "data" / "train-00000-of-00001.parquet")
    rows = _rows("test", 2)
    (repo / "data" / "test.jsonl").write_text("".join(
        json.dumps({"id": f"t{n}", "question": q, "choices": c, "answer": a}) + "\n"
        for n, (q, c, a) in enumerate(zip(rows["question"], rows["choices"], rows["answer"], strict=True))))
    with pytest.raises(DataError, match=r"data: holds 2 splits \(test, train\)"):
        load_dataset(repo)
    assert [i.question for i in load_dataset(repo, split="test")] == ["test question 0?", "test question 1?"]
    assert len(load_dataset(repo, split="train")) == 3
    (repo / "data" / "train-00000-of-00001.parquet").unlink()
    assert len(load_dataset(repo)) == 2  # one split left: the folder is it
    (repo / "data" / "test-00000-of-00001.jsonl").write_text((repo / "data" / "test.jsonl").read_text())
    with pytest.raises(DataError, match="holds test both as shards and as whole files; pass one file"):
        load_dataset(repo)


def test_a_folder_of_csv_files_with_headers_is_not_read_as_mmlu(tmp_path: Path, data_root: Path) -> None:
    """ARC ships each split as a CSV with a header (and again as JSONL). Its folder was read as MMLU's
    headerless layout: 2,590 rows refused one by one, 0 read. Headered CSV files are files of splits now,
    like JSONL; the same split in two formats asks for one file, and a folder mixing headered and headerless
    CSV files is refused rather than read by a guess."""
    arc = data_root / "arc" / "ARC-Challenge"
    with pytest.raises(DataError, match=r"holds 3 splits \(dev, test, train\)"):
        load_dataset(arc)
    with pytest.raises(DataError, match="holds test as .csv and .jsonl; pass one file"):
        load_dataset(arc, split="test")
    folder = tmp_path / "arc"
    folder.mkdir()
    for name in ("ARC-Challenge-Dev.csv", "ARC-Challenge-Test.csv"):
        (folder / name).write_bytes((arc / name).read_bytes())
    dev = load_dataset(folder, split="validation", on_invalid="quarantine")  # "Dev" in the name means it
    assert [i.model_dump(exclude={"provenance", "metadata"}) for i in dev] == [
        i.model_dump(exclude={"provenance", "metadata"})
        for i in load_dataset(arc / "ARC-Challenge-Dev.csv", on_invalid="quarantine")]
    assert len(dev) == 298
    (folder / "ARC-Challenge-Test.csv").unlink()
    (folder / "astronomy_test.csv").write_bytes((data_root / "mmlu" / "test" / "astronomy_test.csv").read_bytes())
    with pytest.raises(DataError, match=r"mixes CSV files with a header \(ARC-Challenge-Dev.csv\) and without one "
                                        r"\(astronomy_test.csv, read as MMLU's layout\)"):
        load_dataset(folder)


def test_files_that_name_no_split_are_parts_of_one_set(tmp_path: Path, data_root: Path) -> None:
    """MMLU-Redux ships one headered CSV per subject ("mmlu_astronomy.csv"): their names say no split, so the
    folder is one set, read whole (it was 2,000 rows refused as MMLU's headerless layout). Beside files that
    do name a split, such a file is named in the refusal, and `--split` leaves it out."""
    redux = load_dataset(data_root / "mmlu_redux" / "dev", on_invalid="quarantine")
    assert len(redux) + len(redux.rejected) == 2000 and len(redux) > 1900
    assert len({i.id.rsplit("-", 1)[0] for i in redux}) == 20  # one id prefix per subject file
    folder = tmp_path / "mixed"
    folder.mkdir()
    line = json.dumps({"question": "q?", "choices": ["a", "b"], "answer": 0})
    (folder / "notes.jsonl").write_text(line + "\n")
    (folder / "test.jsonl").write_text(line.replace("{", '{"id": "t1", ', 1) + "\n")
    with pytest.raises(DataError, match=r"holds 2 splits \(test and files that name none \(notes.jsonl, …\)\)"):
        load_dataset(folder)
    assert [i.id for i in load_dataset(folder, split="test")] == ["t1"]
    with pytest.raises(DataError, match="has no split 'train'; it holds test"):
        load_dataset(folder, split="train")


def test_mmlu_files_of_several_splits_in_one_folder(tmp_path: Path, data_root: Path) -> None:
    """MMLU's headerless files name their split ("astronomy_dev.csv", "astronomy_val.csv"): flattened into
    one folder they were joined silently; now the split is chosen, by its word or by what it means, and two
    words meaning one split ask for the word."""
    folder = tmp_path / "flat"
    folder.mkdir()
    for split in ("dev", "val"):
        name = f"astronomy_{split}.csv"
        (folder / name).write_bytes((data_root / "mmlu" / split / name).read_bytes())
    with pytest.raises(DataError, match=r"holds 2 splits \(dev, val\)"):
        load_dataset(folder)
    assert len(load_dataset(folder, split="dev")) == 5 and len(load_dataset(folder, split="val")) == 16
    assert load_dataset(folder, split="val")[0].subject == "astronomy"
    with pytest.raises(DataError, match="holds dev and val, both validation; choose one by name"):
        load_dataset(folder, split="validation")
    (folder / "astronomy_dev.csv").unlink()
    assert len(load_dataset(folder, split="validation")) == 16


def test_mmlus_folder_of_splits(data_root: Path) -> None:
    with pytest.raises(DataError, match="it holds the folders dev, test, val; choose one with --split NAME"):
        load_dataset(data_root / "mmlu")
    from refinelab.api.decontamination import find_contamination

    with pytest.raises(DataError, match="choose one with --decontaminate-split NAME .Python: decontaminate_split=."):
        find_contamination(load_dataset(data_root / "mmlu" / "dev", on_invalid="quarantine"), [data_root / "mmlu"])
    dev = load_dataset(data_root / "mmlu", split="dev", on_invalid="quarantine")
    assert len(dev) + len(dev.rejected) == 285


def test_a_split_is_a_plain_name_of_a_folder_on_disk(tmp_path: Path) -> None:
    """The split is joined to a user's path: it may not climb out of the folder or name a link; it picks a part
    of a folder, so it is refused for a file or for data in memory instead of being ignored."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.jsonl").write_text(json.dumps({"question": "q?", "choices": ["a", "b"],
                                                               "answer": 0}) + "\n")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "linked").symlink_to(tmp_path / "outside")
    for bad in ("../outside", "/etc", "a/b", "..", ""):
        with pytest.raises(DataError, match="is not a plain name"):
            load_dataset(folder, split=bad)
    with pytest.raises(DataError, match="has no split 'linked'"):
        load_dataset(folder, split="linked")
    with pytest.raises(DataError, match="x.jsonl: split 'test' picks a part of a folder; this is a file"):
        load_dataset(tmp_path / "outside" / "x.jsonl", split="test")
    with pytest.raises(DataError, match="picks a part of a folder or a DatasetDict"):
        as_dataset([{"question": "q?", "choices": ["a", "b"], "answer": 0}], split="test")


def test_a_damaged_arrow_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"ARROW1" + b"\x00" * 40)
    with pytest.raises(DataError, match="bad.arrow: not a readable Arrow file"):
        load_dataset(bad)


def test_arrow_file_form_and_a_column_mapping(tmp_path: Path) -> None:
    """Arrow's file form (Feather v2) reads like the stream form `save_to_disk` writes, and `columns`
    renames an Arrow table's columns as it does a Parquet file's."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.table({"stem": ["Which is a prime?"], "options": [["4", "6", "7"]], "key": [2]})
    feather.write_feather(table, tmp_path / "items.arrow", compression="uncompressed")
    dataset = load_dataset(tmp_path / "items.arrow", mapping={"question": "stem", "choices": "options",
                                                              "answer": "key"})
    assert (dataset[0].question, dataset[0].choices, dataset[0].answer) == ("Which is a prime?", ["4", "6", "7"], 2)


def test_data_validate_takes_a_split(tmp_path: Path) -> None:
    import datasets
    from typer.testing import CliRunner

    from refinelab.cli.app import app

    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(_rows("train", 4)),
                          "test": datasets.Dataset.from_dict(_rows("test", 2))}).save_to_disk(str(folder))
    refused = CliRunner().invoke(app, ["data", "validate", str(folder)], env={"COLUMNS": "300"})
    assert refused.exit_code == 2 and "choose one with --split NAME" in refused.output
    assert "Traceback" not in refused.output
    shown = CliRunner().invoke(app, ["data", "validate", str(folder), "--split", "test", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["items"] == 2 and report["first_item"]["question"] == "test question 0?"


def test_a_dataset_dict_in_memory_takes_a_split_too() -> None:
    """`refine(dd, split="test")` as HF users write `load_dataset(..., split="test")`: the same choice on a
    DatasetDict in memory as on one saved to disk; without it, or with a split it lacks, one line names them."""
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(_rows("train", 4)),
                               "test": datasets.Dataset.from_dict(_rows("test", 2))})
    test = as_dataset(dd, split="test")
    assert [i.question for i in test] == ["test question 0?", "test question 1?"]
    with pytest.raises(DataError, match=r"holds several splits \(train, test\); choose one with split="):
        as_dataset(dd)
    with pytest.raises(DataError, match="has no split 'dev'; it holds train, test"):
        as_dataset(dd, split="dev")


def _parquet_split(folder: Path, rows: list[dict], shards: int) -> Path:
    """`rows` written as one split of `shards` Parquet shards (as the hub would shard them), in our columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    size = -(-len(rows) // shards)
    for index in range(shards):
        part = [{"question": r["question"], "choices": r["options"], "answer": r["answer"]}
                for r in rows[index * size:(index + 1) * size]]
        pq.write_table(pa.Table.from_pylist(part), folder / f"train-{index:05d}-of-{shards:05d}.parquet")
    return folder


def _text_split(folder: Path, rows: list[dict], shards: int, kind: str) -> Path:
    """`rows` written as one split of `shards` text shards: JSONL lines or a JSON array of a foreign layout
    (question, options, answer: no id, so each row gets a default one), a CSV with a header (question, A, B,
    C, answer), or MMLU's headerless CSV ("mmlu")."""
    folder.mkdir()
    size = -(-len(rows) // shards)
    for index in range(shards):
        part = rows[index * size:(index + 1) * size]
        if kind == "jsonl":
            text = "".join(json.dumps(row) + "\n" for row in part)
        elif kind == "json":
            text = json.dumps(part)
        else:
            text = ("question,A,B,C,answer\n" if kind == "csv" else "") + "".join(
                f"{r['question']},{','.join(r['options'])},{'ABC'[r['answer']]}\n" for r in part)
        suffix = "csv" if kind == "mmlu" else kind
        (folder / f"train-{index:05d}-of-{shards:05d}.{suffix}").write_text(text)
    return folder


def _foreign_rows(n: int) -> list[dict]:
    return [{"question": f"Q{r}?", "options": [f"a{r}", f"b{r}", f"c{r}"], "answer": r % 3} for r in range(n)]


def _read(dataset: Iterable[QAItem]) -> list[tuple[str, str, list[str], int]]:
    return [(i.id, i.question, i.choices, i.answer) for i in dataset]


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "mmlu"])
def test_text_shards_number_default_ids_across_the_split_as_parquet_shards_do(tmp_path: Path, kind: str) -> None:
    """A hub snapshot shards JSONL, JSON and CSV splits as it does Parquet (train-00000-of-00002.jsonl, …). Their
    rows without an id were numbered per file from its name (train-00001-of-00002-1): an item's id changed with
    the number of shards the split was saved in, and differed from the id the same rows got as Parquet. Now
    they are numbered across the split, train-1, train-2, …, as Parquet shards are."""
    rows = _foreign_rows(5)
    as_parquet = _read(load_dataset(_parquet_split(tmp_path / "parquet", rows, shards=2)))
    assert [row[0] for row in as_parquet] == [f"train-{n}" for n in range(1, 6)]
    two = _read(load_dataset(_text_split(tmp_path / "two", rows, 2, kind)))
    one = _read(load_dataset(_text_split(tmp_path / "one", rows, 1, kind)))
    assert two == as_parquet and one == as_parquet
    assert [i.provenance.row for i in load_dataset(tmp_path / "two")] == (
        [2, 3, 4, 2, 3] if kind == "csv" else [1, 2, 3, 1, 2])  # each shard's own row, for errors


def test_a_text_shards_own_ids_are_kept(tmp_path: Path) -> None:
    """A row that carries its id keeps it, and its number is drawn all the same: the rows after it keep theirs."""
    folder = tmp_path / "data"
    folder.mkdir()
    rows = _foreign_rows(4)
    rows[2]["id"] = "kept"
    for index in range(2):
        (folder / f"test-{index:05d}-of-00002.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows[index * 2:index * 2 + 2]))
    assert [i.id for i in load_dataset(folder)] == ["test-1", "test-2", "kept", "test-4"]


def test_an_invalid_row_in_a_later_text_shard_names_that_shard_and_its_row(tmp_path: Path) -> None:
    """Numbered across the split, a row is still reported by its own file and row: the second shard's second
    line, not the split's fifth row. Quarantined, it keeps its number: the rows after it keep their ids."""
    rows = _foreign_rows(6)
    rows[4]["answer"] = "Z"  # the second shard's second row
    folder = _text_split(tmp_path / "data", rows, 2, "jsonl")
    with pytest.raises(DataError, match=r"train-00001-of-00002\.jsonl, row 2, field 'answer': expected an answer letter"):
        load_dataset(folder)
    quarantined = load_dataset(folder, on_invalid="quarantine")
    assert [i.id for i in quarantined] == ["train-1", "train-2", "train-3", "train-4", "train-6"]
    [error] = quarantined.rejected
    assert (Path(error.path).name, error.row, error.field) == ("train-00001-of-00002.jsonl", 2, "answer")


def test_shards_that_name_no_split_number_ids_by_their_own_prefix_not_the_folders(tmp_path: Path) -> None:
    """`foo/mmlu-00000-of-00001.jsonl` numbered its rows foo-1, foo-2: renaming or copying the folder changed
    every id. The shards' own prefix names them (mmlu-1); only `save_to_disk`'s generic `data-…` shards take
    the folder's name (test_a_save_to_disk_dataset_is_read_from_its_arrow_shards)."""
    rows = _foreign_rows(3)
    folder = tmp_path / "foo"
    folder.mkdir()
    for index in range(2):
        (folder / f"mmlu-{index:05d}-of-00002.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows[index * 2:index * 2 + 2]))
    assert [i.id for i in load_dataset(folder)] == ["mmlu-1", "mmlu-2", "mmlu-3"]
    folder.rename(tmp_path / "renamed")
    assert [i.id for i in load_dataset(tmp_path / "renamed")] == ["mmlu-1", "mmlu-2", "mmlu-3"]
