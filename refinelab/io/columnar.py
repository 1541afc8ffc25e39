"""Parquet and Arrow files (Arrow as `Dataset.save_to_disk` writes its shards, or Feather), read by pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from refinelab.errors import DataError
from refinelab.io.columns import check_columns
from refinelab.io.reading import SplitIds, file_stem
from refinelab.io.records import mapped_record, require_columns, rows_to_dataset
from refinelab.schema import Dataset


def _read_table(path: Path, kind: str) -> Any:
    """The Arrow table of a Parquet file, or of an Arrow IPC file (`save_to_disk` writes the stream form;
    `pyarrow.feather`/`ipc.new_file` the file form), validated in full. Any reading problem is one DataError
    naming the file: a damaged file that pyarrow reads (offsets past the data, strings that are not UTF-8)
    raised SystemError or UnicodeDecodeError when its rows were turned into Python values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            table = pq.read_table(path)
        else:
            with pa.OSFile(str(path)) as source:
                try:
                    table = pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = pa.ipc.open_file(source).read_all()
        table.validate(full=True)
        return table
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        name = "Parquet" if kind == "parquet" else "Arrow"
        raise DataError(str(path), None, None, f"not a readable {name} file: {exc}") from None


def read_parquet(path: str | Path, *, ids: SplitIds | None = None) -> Dataset:
    """A Parquet file whose columns are QAItem fields; `ids` numbers a shard's rows across its split."""
    return read_columnar(Path(path), "parquet", ids=ids)


def read_arrow(path: str | Path, *, ids: SplitIds | None = None) -> Dataset:
    """An Arrow IPC file (a shard of Hugging Face's `save_to_disk`) whose columns are QAItem fields; `ids`
    numbers a shard's rows across its split."""
    return read_columnar(Path(path), "arrow", ids=ids)


def read_columnar(path: Path, kind: str, mapping: Mapping[str, Any] | None = None, *,
                   ids: SplitIds | None = None) -> Dataset:
    """A Parquet or Arrow (`kind`) file as items, its columns QAItem fields or named by `mapping`."""
    return _table_dataset(_read_table(path, kind), path, ids=ids, mapping=mapping)


def _table_dataset(table: Any, path: Path, ids: SplitIds | None = None,
                   mapping: Mapping[str, Any] | None = None) -> Dataset:
    """A table as items: its columns are QAItem fields, or `mapping` (our field → column) names them
    (`records.mapped_record`); `ids`: see `reading.SplitIds`."""
    if mapping:
        columns = check_columns(mapping)
        require_columns(str(path), None, columns, table.column_names)  # once: every row has the table's columns
        rows: Iterable[dict[str, Any]] = (mapped_record(row, columns, str(path), number)
                                          for number, row in enumerate(table.to_pylist(), start=1))
    else:
        missing = [c for c in ("question", "choices", "answer") if c not in table.column_names]
        if missing:
            raise DataError(str(path), None, missing[0], f"column missing; have {table.column_names}")
        rows = table.to_pylist()
    return rows_to_dataset(rows, str(path), file_stem(path), ids)
