"""The doors: `load_dataset` picks the reader for a file or folder, `as_dataset` is the one coercion the
public API uses for every input, `require_items` refuses a set with nothing valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from refinelab.errors import DataError, SplitNeeded
from refinelab.io.columnar import read_arrow, read_columnar, read_parquet
from refinelab.io.csv_files import csv_folder_layout, csv_has_header, read_csv, read_mmlu_csv
from refinelab.io.folders import files_of_split, folder_of_split, split_ids, sub_folder_names, table_files
from refinelab.io.jsonl import read_jsonl
from refinelab.io.reading import SplitIds, checked_whole, format_suffix, one_failure, rejected_rows
from refinelab.io.records import from_records
from refinelab.schema import Dataset

if TYPE_CHECKING:
    import datasets
    import pandas


# What `refine()`, `profile()` and `screen()` accept as data (see `as_dataset`).
DatasetInput: TypeAlias = ("str | os.PathLike[str] | Dataset | datasets.Dataset | datasets.IterableDataset"
                           " | pandas.DataFrame | Sequence[Mapping[str, Any]]")


def _kind(data: object) -> str:
    module = type(data).__module__.split(".")[0]
    return f"{module}.{type(data).__name__}"


def require_items(dataset: Dataset, purpose: str) -> Dataset:
    """`dataset`, or a DataError naming its first invalid row when none of its rows is a valid item: a command
    with nothing to `purpose` ("refine", "screen", …) says why before it makes any folder."""
    if not len(dataset):
        first = f"; first problem: {dataset.rejected[0]}" if dataset.rejected else ""
        raise DataError(dataset.name, None, None,
                        f"no valid items to {purpose} ({len(dataset.rejected)} invalid row(s){first})")
    return dataset


def as_dataset(data: DatasetInput, *, format: str | None = None, columns: Mapping[str, Any] | None = None,
               name: str | None = None, on_invalid: str = "error", split: str | None = None) -> Dataset:
    """The one coercion of what the API accepts into our `Dataset`: a path (any `load_dataset` format), a
    `Dataset`, a Hugging Face `datasets.Dataset` (or IterableDataset), a pandas DataFrame, or a list of
    dicts. `columns` maps our fields to the input's columns (our field → column); unknown columns go to
    `metadata`; `split` picks one split of a folder holding several (`load_dataset`) or of a Hugging Face
    `DatasetDict`. Bad input raises `DataError` naming the source, row and field; nothing is written."""
    if on_invalid not in {"error", "quarantine"}:
        raise ValueError(f"on_invalid must be 'error' or 'quarantine', got {on_invalid!r}")
    if isinstance(data, str | os.PathLike):
        return load_dataset(data, format=format, mapping=columns, on_invalid=on_invalid, split=split)
    kind = _kind(data)
    if kind in ("datasets.DatasetDict", "datasets.IterableDatasetDict"):
        splits = [str(key) for key in data]  # type: ignore[attr-defined]
        if split is None:
            raise DataError(f"<{kind}>", None, None, f"holds several splits ({', '.join(splits)}); choose one with "
                            "split=, or pass data['test']")
        if split not in splits:
            raise DataError(f"<{kind}>", None, None, f"has no split {split!r}; it holds {', '.join(splits)}")
        data, kind, split = data[split], _kind(data[split]), None  # type: ignore[index]
    if split is not None:
        raise DataError(f"<{kind}>", None, None, "split= picks a part of a folder or a DatasetDict; pass the split "
                        "itself")
    if isinstance(data, Dataset):
        return data
    if kind == "pandas.DataFrame":
        records: Iterable[Mapping[str, Any]] = data.to_dict(orient="records")  # type: ignore[union-attr]
        label = name or "dataframe"
    elif kind in ("datasets.Dataset", "datasets.IterableDataset"):
        records = data  # type: ignore[assignment]
        info = getattr(data, "info", None)
        label = name or getattr(info, "dataset_name", None) or getattr(data, "split", None) or "hf"
        label = str(label)
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        records, label = data, name or "records"  # type: ignore[assignment]
    else:
        raise DataError(f"<{type(data).__name__}>", None, None, "expected a path, a refinelab Dataset, a Hugging "
                        "Face datasets.Dataset, a pandas DataFrame or a list of dicts")
    sink: list[DataError] | None = [] if on_invalid == "quarantine" else None
    token = rejected_rows.set(sink)
    try:
        dataset = from_records(records, columns=columns, name=label, source=f"<{label}>")
    finally:
        rejected_rows.reset(token)
    dataset.rejected = sink or []
    if not len(dataset) and not dataset.rejected:
        raise DataError(f"<{label}>", None, None, "no rows")
    return dataset


def load_dataset(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    on_invalid: str = "error",
    split: str | None = None,
) -> Dataset:
    """Read any supported file or folder, choosing the reader from `format` or the file name.

    `on_invalid="error"` (default) raises on the first bad row. `"quarantine"` skips bad rows and
    lists them in `dataset.rejected`, for raw data whose defects (duplicate options, say) are what
    the user wants reported; file-level problems (encoding, missing columns) always raise, and so does a
    file none of whose rows is valid when every row failed alike (`reading.one_failure`: one line, counted).
    `split` picks one part of a folder holding several: its sub-folder of that name (a `DatasetDict`
    saved with `save_to_disk`, MMLU's dev/val/test) or its files of that split ("test.jsonl",
    "test-00000-of-00002.parquet"). A repository's `data/` beside its README is read as the repository."""
    if on_invalid not in {"error", "quarantine"}:
        raise ValueError(f"on_invalid must be 'error' or 'quarantine', got {on_invalid!r}")
    sink: list[DataError] | None = [] if on_invalid == "quarantine" else None
    token = rejected_rows.set(sink)
    try:
        dataset = _load(Path(path), format, mapping, split)
    finally:
        rejected_rows.reset(token)
    dataset.rejected = sink or []
    if not len(dataset) and (error := one_failure(dataset.rejected)) is not None:
        raise error  # every row failed alike: one line with the count, not the same line per row
    return dataset


def _load(path: Path, format: str | None, mapping: Mapping[str, Any] | None, split: str | None = None) -> Dataset:
    if not path.exists():
        raise DataError(str(path), None, None, "no such file or folder")
    if path.is_dir():
        return _load_folder(path, format, mapping, split)
    if split is not None:
        raise DataError(str(path), None, None, f"split {split!r} picks a part of a folder; this is a file")
    return _load_file(path, format, mapping)


def _load_folder(path: Path, format: str | None, mapping: Mapping[str, Any] | None, split: str | None) -> Dataset:
    """A folder: its split's sub-folder, its split's files (CSV files too, each read as MMLU's layout or as
    headered: one kind a folder; a split's shards numbering its default ids across it, `folders.split_ids`), a
    dataset repository's data/, or else MMLU's layout."""
    if split is not None and (folder := folder_of_split(path, split)) is not None:
        return _load(folder, format, mapping)
    if split is None and (path / "dataset_dict.json").is_file():
        raise SplitNeeded(str(path), "is a Hugging Face DatasetDict (save_to_disk) holding the splits "
                          f"{', '.join(sub_folder_names(path)[:8])}")
    if format != "mmlu":
        layout = csv_folder_layout(path, mapping)  # each CSV file's header read once, here
        if files := files_of_split(path, split, with_csv=layout is not None):
            csv_format = "csv" if layout == "headered" else "mmlu"
            ids = split_ids(path, files)
            items = [item for file in files for item in _load_file(
                file, format or (csv_format if format_suffix(file) == ".csv" else None), mapping, ids).items]
            return checked_whole(Dataset(items, name=path.name if split is None else split), path)
        hub_data = path / "data"  # a dataset repository as cloned: README.md beside data/
        if hub_data.is_dir() and not hub_data.is_symlink() and not table_files(path):
            return _load(hub_data, format, mapping, split)
    if split is not None:
        held = sub_folder_names(path)
        raise DataError(str(path), None, None, f"has no split {split!r}: no folder of that name"
                        + (f" (it holds {', '.join(held[:8])})" if held else "") + " and no files named for it")
    return _load_file(path, format or "mmlu", mapping)


class _Reader(Protocol):
    """A reader of one file by its format (`read_jsonl`, `read_parquet`, …): every one numbers a shard's rows by
    its split's `ids`."""

    def __call__(self, path: Path, /, *, ids: SplitIds | None = None) -> Dataset: ...


def _load_file(path: Path, format: str | None, mapping: Mapping[str, Any] | None,
               ids: SplitIds | None = None) -> Dataset:
    """One file (or a folder read as MMLU's layout) by `format`, else by its name; `ids` when it is a shard of a
    split whose default ids are numbered across it (`reading.SplitIds`)."""
    readers: dict[str, _Reader] = {
        "jsonl": read_jsonl, "arc": read_jsonl, "mmlu": read_mmlu_csv, "parquet": read_parquet, "arrow": read_arrow,
    }
    if format is None:
        if format_suffix(path) in {".jsonl", ".json"}:
            format = "jsonl"
        elif path.suffix in {".parquet", ".arrow"}:
            format = path.suffix[1:]
        elif format_suffix(path) == ".csv":
            format = "csv" if mapping or csv_has_header(path) else "mmlu"
        else:
            raise DataError(str(path), None, None, f"unknown file type {path.suffix!r}; use --format (a .gz file is "
                            f"read as the .jsonl, .json or .csv it holds)")
    if format == "csv":
        if path.is_dir():
            raise DataError(str(path), None, None, "--format csv reads one file; a folder is read as MMLU")
        return read_csv(path, mapping, ids=ids)
    if mapping and format in {"parquet", "arrow"}:
        return read_columnar(path, format, mapping, ids=ids)
    if mapping and format == "jsonl":
        return read_jsonl(path, mapping, ids=ids)
    if mapping:
        raise DataError(str(path), None, None, f"a column mapping applies to CSV, JSONL, Parquet and Arrow, not {format}")
    if format not in readers:
        raise DataError(str(path), None, None, f"unknown format {format!r}; known: csv, {', '.join(readers)}")
    return readers[format](path, ids=ids)
