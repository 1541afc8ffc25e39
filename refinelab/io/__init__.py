"""Read and write datasets. Strict: the first bad row raises `DataError` naming file, row and field.

Readers: our JSONL, the original MMLU CSV layout (no header; subject from the file name; one file
or a folder), ARC JSONL, other JSONL and `.json` arrays (read as records), a CSV with a header (columns
guessed from it, or a `columns` mapping; options written into the question split out; a choices cell as
JSON or as Python/numpy print a list), Parquet, Arrow, the text formats gzipped, a folder of one split's
files (a hub snapshot's shards, `save_to_disk`'s), one split of a folder of several (`split`), and in-memory
rows: a Hugging Face `datasets.Dataset`, a pandas DataFrame, a list of dicts. Every foreign
row goes through `mapped_record` (usual names stand in for ours) and `foreign_item`. `as_dataset` is the one
coercion the public API uses for all of them. Writers: JSONL and Parquet, atomically (temp file then
rename), so a failure never leaves a half-written file.

One job a module: `reading` (bytes, text, one row to an item or a DataError, quarantine), `columns`
(mappings and the usual names), `folders` (splits), `jsonl`, `csv_files`, `records` (rows as mappings),
`columnar` (Parquet, Arrow), `load` (`load_dataset`, `as_dataset`), `write`.
"""

from __future__ import annotations

from refinelab.io.columnar import read_arrow, read_parquet
from refinelab.io.columns import check_columns, guess_columns, parse_columns
from refinelab.io.csv_files import read_csv, read_mmlu_csv
from refinelab.io.jsonl import jsonl_objects, read_jsonl
from refinelab.io.load import DatasetInput, as_dataset, load_dataset, require_items
from refinelab.io.records import from_hf, from_records
from refinelab.io.write import write_jsonl, write_parquet
from refinelab.schema import Provenance

__all__ = [
    "DatasetInput",
    "Provenance",
    "as_dataset",
    "check_columns",
    "from_hf",
    "from_records",
    "guess_columns",
    "jsonl_objects",
    "load_dataset",
    "parse_columns",
    "read_arrow",
    "read_csv",
    "read_jsonl",
    "read_mmlu_csv",
    "read_parquet",
    "require_items",
    "write_jsonl",
    "write_parquet",
]
