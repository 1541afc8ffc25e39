"""Read and write datasets. Strict: the first bad row raises `DataError` naming file, row and field.

Readers: our JSONL, the original MMLU CSV layout (no header; subject from the file name; one file
or a folder), ARC JSONL, generic CSV with a column mapping, Parquet, and a Hugging Face
`datasets.Dataset`. Writers: JSONL and Parquet, atomically (temp file then rename), so a failure
never leaves a half-written file.
"""

from __future__ import annotations

import contextvars
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from refinelab.atomic import atomic_write, open_exclusive
from refinelab.errors import DataError
from refinelab.identifiers import skeleton
from refinelab.safeload import loads_json
from refinelab.schema import LETTERS, Dataset, Provenance, QAItem

MAX_FIELD_CHARS = 100_000  # a single question or choice longer than this is junk, not data
_MMLU_SPLITS = re.compile(r"_(test|dev|val)$")


def _fail_from_validation(path: Path, row: int, exc: ValidationError) -> DataError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    message = err["msg"].removeprefix("Value error, ")
    return DataError(str(path), row, field, message)


# When set (on_invalid="quarantine"), row-level errors are collected here instead of raised.
_rejected: contextvars.ContextVar[list[DataError] | None] = contextvars.ContextVar("rejected", default=None)


def _collect(build: Callable[[], QAItem | None]) -> QAItem | None:
    """Run a row builder; in quarantine mode a bad row is recorded and skipped, else it raises."""
    try:
        return build()
    except DataError as exc:
        sink = _rejected.get()
        if sink is None or exc.row is None:
            raise
        sink.append(exc)
        return None


def _make_item(path: Path, row: int, data: dict[str, Any]) -> QAItem:
    for key in ("question",):
        value = data.get(key)
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise DataError(str(path), row, key, f"longer than {MAX_FIELD_CHARS} characters")
    for index, choice in enumerate(data.get("choices") or []):
        if isinstance(choice, str) and len(choice) > MAX_FIELD_CHARS:
            raise DataError(str(path), row, f"choices.{index}", f"longer than {MAX_FIELD_CHARS} characters")
    data.setdefault("provenance", {"source": str(path), "row": row})
    try:
        return QAItem.model_validate(data)
    except ValidationError as exc:
        raise _fail_from_validation(path, row, exc) from None


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a directory, expected a file") from None
    if b"\x00" in raw[:8192]:
        raise DataError(str(path), None, None, "binary content (NUL bytes); expected a text file")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(str(path), line, None, f"not valid {encoding} text at byte {exc.start}") from None
    if not text.strip():
        raise DataError(str(path), None, None, "file is empty")
    return text.removeprefix("\ufeff")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _answer_index(path: Path, row: int, value: Any, n_choices: int, field: str = "answer") -> int:
    """Accept a 0-based int, a digit string, or a letter A-J; anything else is an error."""
    if isinstance(value, bool) or value is None or value == "":
        raise DataError(str(path), row, field, f"expected an answer letter or 0-based index, got {_short(value)}")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().upper() in LETTERS[:n_choices] and len(value.strip()) == 1:
        index = LETTERS.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
        index = int(value.strip())
    else:
        raise DataError(str(path), row, field, f"expected an answer letter or 0-based index, got {_short(value)}")
    if not 0 <= index < n_choices:
        raise DataError(str(path), row, field, f"answer {_short(value)} out of range for {n_choices} choices")
    return index


# ---------------------------------------------------------------- JSONL (ours and ARC)

def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        row = loads_json(line, str(path), line_no)
        if not isinstance(row, dict):
            raise DataError(str(path), line_no, None, "expected a JSON object per line")
        yield line_no, row


def _is_arc(row: Mapping[str, Any]) -> bool:
    return isinstance(row.get("question"), dict) and "answerKey" in row


def _from_arc(path: Path, line_no: int, row: dict[str, Any]) -> QAItem:
    question = row["question"]
    choices = question.get("choices")
    if not isinstance(choices, list) or not choices:
        raise DataError(str(path), line_no, "question.choices", "expected a non-empty list of choices")
    labels = [str(c.get("label", "")) for c in choices]
    key = str(row.get("answerKey", ""))
    if key not in labels:
        raise DataError(str(path), line_no, "answerKey", f"{key!r} is not one of the choice labels {labels}")
    return _make_item(path, line_no, {
        "id": str(row.get("id") or f"{path.stem}-{line_no}"),
        "question": question.get("stem", ""),
        "choices": [str(c.get("text", "")) for c in choices],
        "answer": labels.index(key),
        "subject": path.stem.split("-")[0].lower() if "-" in path.stem else "arc",
        "metadata": {"answer_label": key},
    })


def read_jsonl(path: str | Path) -> Dataset:
    """Our JSONL (one QAItem per line) or ARC's original JSONL, detected from the first row."""
    path = Path(path)
    items: list[QAItem] = []

    def build(line_no: int, row: dict[str, Any]) -> QAItem:
        if _is_arc(row):
            return _from_arc(path, line_no, row)
        if "id" not in row:
            raise DataError(str(path), line_no, "id", "missing; every item needs an id")
        if isinstance(row.get("answer"), str):
            n = len(row.get("choices") or [])
            row["answer"] = _answer_index(path, line_no, row["answer"], n)
        return _make_item(path, line_no, row)

    for line_no, row in _jsonl_rows(path):
        if (item := _collect(lambda: build(line_no, row))) is not None:  # noqa: B023
            items.append(item)
    return _checked(Dataset(items, name=path.stem), path)


# ---------------------------------------------------------------- MMLU CSV layout

def _subject_from_name(path: Path) -> str:
    return _MMLU_SPLITS.sub("", path.stem)


def read_mmlu_csv(path: str | Path) -> Dataset:
    """The original MMLU layout: no header, question,A,B,C,D,answer_letter; subject from the file name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise DataError(str(path), None, None, "folder has no .csv files")
        items = [item for file in files for item in read_mmlu_csv(file).items]
        return _checked(Dataset(items, name=path.name), path)
    subject = _subject_from_name(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    items = []
    for row_no, row in enumerate(reader, start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 4:
            raise DataError(str(path), row_no, None, f"expected question, 2+ choices and an answer letter; got {len(row)} columns")
        question, choices, letter = row[0], row[1:-1], row[-1]

        def build(row_no: int = row_no, question: str = question, choices: list[str] = choices,
                  letter: str = letter, width: int = len(row)) -> QAItem:
            answer = _answer_index(path, row_no, letter, len(choices), field=f"column {width} (answer)")
            return _make_item(path, row_no, {
                "id": f"{subject}-{row_no}", "question": question, "choices": choices, "answer": answer,
                "subject": subject,
            })

        if (item := _collect(build)) is not None:
            items.append(item)
    return _checked(Dataset(items, name=subject), path)


# ---------------------------------------------------------------- generic CSV

def read_csv(path: str | Path, mapping: Mapping[str, Any]) -> Dataset:
    """A CSV with a header. `mapping` names columns: question, choices (list of columns), answer,
    and optionally id, subject, domain, skill."""
    path = Path(path)
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    wanted = [mapping["question"], *mapping["choices"], mapping["answer"]]
    wanted += [mapping[k] for k in ("id", "subject", "domain", "skill") if k in mapping]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(str(path), 1, missing[0], f"column missing from header {header}")
    items = []

    def build(row_no: int, row: dict[str, str | None]) -> QAItem:
        choices = [row[c] or "" for c in mapping["choices"]]
        item: dict[str, Any] = {
            "id": row[mapping["id"]] if "id" in mapping else f"{path.stem}-{row_no}",
            "question": row[mapping["question"]] or "",
            "choices": choices,
            "answer": _answer_index(path, row_no, row[mapping["answer"]], len(choices), mapping["answer"]),
        }
        for key in ("subject", "domain", "skill"):
            if key in mapping:
                item[key] = row[mapping[key]] or ""
        return _make_item(path, row_no, item)

    for row_no, row in enumerate(reader, start=2):
        if None in row:
            raise DataError(str(path), row_no, None, f"more cells than the {len(header)} header columns")
        if (item := _collect(lambda: build(row_no, row))) is not None:  # noqa: B023
            items.append(item)
    return _checked(Dataset(items, name=path.stem), path)


# ---------------------------------------------------------------- Parquet and Hugging Face

def _rows_to_dataset(rows: Iterable[dict[str, Any]], source: str, name: str) -> Dataset:
    path = Path(source)
    items = []

    def build(row_no: int, row: dict[str, Any]) -> QAItem:
        row = {k: v for k, v in row.items() if v is not None}
        for key in ("metadata", "provenance"):
            if isinstance(row.get(key), str):
                row[key] = loads_json(row[key], str(path), row_no)
        if "choices" in row:
            row["choices"] = list(row["choices"])
        if "id" not in row:
            row["id"] = f"{name}-{row_no}"
        if isinstance(row.get("answer"), str):
            row["answer"] = _answer_index(path, row_no, row["answer"], len(row.get("choices") or []))
        return _make_item(path, row_no, row)

    for row_no, row in enumerate(rows, start=1):
        if (item := _collect(lambda: build(row_no, row))) is not None:  # noqa: B023
            items.append(item)
    return _checked(Dataset(items, name=name), path)


def read_parquet(path: str | Path) -> Dataset:
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(str(path), None, None, f"not a readable Parquet file: {exc}") from None
    missing = [c for c in ("question", "choices", "answer") if c not in table.column_names]
    if missing:
        raise DataError(str(path), None, missing[0], f"column missing; have {table.column_names}")
    return _rows_to_dataset(table.to_pylist(), str(path), path.stem)


def from_hf(hf_dataset: Any, mapping: Mapping[str, str] | None = None, name: str = "hf") -> Dataset:
    """A Hugging Face `datasets.Dataset` whose columns (renamed by `mapping`) are QAItem fields."""
    mapping = dict(mapping or {})

    def rows() -> Iterator[dict[str, Any]]:
        for row in hf_dataset:
            yield {mapping.get(k, k): v for k, v in row.items() if mapping.get(k, k) in QAItem.model_fields}

    return _rows_to_dataset(rows(), f"<hf:{name}>", name)


# ---------------------------------------------------------------- dispatch and checks

def _checked(dataset: Dataset, path: Path) -> Dataset:
    report = dataset.duplicates()
    if report.duplicate_ids:
        first = report.duplicate_ids[0]
        same = [i for i in dataset if skeleton(i.id) == skeleton(first)]
        rows = [i.provenance.row for i in same]
        distinct = list(dict.fromkeys(i.id for i in same))
        what = (f"duplicate id {first!r}" if len(distinct) == 1 else
                f"look-alike ids {' and '.join(ascii(i) for i in distinct[:2])} (they print the same)")
        raise DataError(str(path), rows[1] if len(rows) > 1 else None, "id",
                        f"{what} ({len({skeleton(i) for i in report.duplicate_ids})} duplicated ids in all)")
    return dataset


def load_dataset(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    on_invalid: str = "error",
) -> Dataset:
    """Read any supported file or folder, choosing the reader from `format` or the file name.

    `on_invalid="error"` (default) raises on the first bad row. `"quarantine"` skips bad rows and
    lists them in `dataset.rejected`, for raw data whose defects (duplicate options, say) are what
    the user wants reported; file-level problems (encoding, missing columns) always raise.
    """
    if on_invalid not in {"error", "quarantine"}:
        raise ValueError(f"on_invalid must be 'error' or 'quarantine', got {on_invalid!r}")
    sink: list[DataError] | None = [] if on_invalid == "quarantine" else None
    token = _rejected.set(sink)
    try:
        dataset = _load(Path(path), format, mapping)
    finally:
        _rejected.reset(token)
    dataset.rejected = sink or []
    return dataset


def _load(path: Path, format: str | None, mapping: Mapping[str, Any] | None) -> Dataset:
    if not path.exists():
        raise DataError(str(path), None, None, "no such file or folder")
    readers: dict[str, Callable[[Path], Dataset]] = {
        "jsonl": read_jsonl, "arc": read_jsonl, "mmlu": read_mmlu_csv, "parquet": read_parquet,
    }
    if format is None:
        if path.is_dir():
            format = "mmlu"
        elif path.suffix in {".jsonl", ".json"}:
            format = "jsonl"
        elif path.suffix == ".parquet":
            format = "parquet"
        elif path.suffix == ".csv":
            format = "csv" if mapping else "mmlu"
        else:
            raise DataError(str(path), None, None, f"unknown file type {path.suffix!r}; use --format")
    if format == "csv":
        if not mapping:
            raise DataError(str(path), None, None, "generic CSV needs a column mapping")
        return read_csv(path, mapping)
    if format not in readers:
        raise DataError(str(path), None, None, f"unknown format {format!r}; known: csv, {', '.join(readers)}")
    return readers[format](path)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    atomic_write(path, write)  # private temp folder, no link followed (refinelab/atomic.py)


def write_jsonl(dataset: Iterable[QAItem], path: str | Path) -> Path:
    path = Path(path)

    def write(tmp: Path) -> None:
        with open_exclusive(tmp) as handle:
            for item in dataset:
                handle.write(item.model_dump_json() + "\n")

    _atomic_write(path, write)
    return path


def write_parquet(dataset: Iterable[QAItem], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    rows = []
    for item in dataset:
        row = item.model_dump()
        row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
        row["provenance"] = json.dumps(row["provenance"], ensure_ascii=False)
        rows.append(row)
    _atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows), tmp))
    return path


__all__ = ["Provenance", "load_dataset", "read_csv", "read_jsonl", "read_mmlu_csv", "read_parquet",
           "from_hf", "write_jsonl", "write_parquet"]
