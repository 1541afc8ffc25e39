"""JSONL: our own rows, ARC's, and foreign rows read as records; `.json` arrays element by element.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from refinelab.errors import DataError
from refinelab.io.columns import check_columns
from refinelab.io.reading import (
    SplitIds,
    answer_index,
    build_or_quarantine,
    checked_whole,
    file_stem,
    format_suffix,
    make_item,
    read_file_bytes,
    read_file_text,
)
from refinelab.io.records import foreign_item, mapped_record
from refinelab.safeload import loads_json
from refinelab.schema import Dataset, QAItem


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of an untrusted JSONL file (datasets, corpora): text
    checks of `read_file_text` (missing, binary, bad UTF-8 with its line, empty), safeload per line, and a
    line that is not a JSON object refused, each a DataError naming file and line."""
    for line_no, line in enumerate(read_file_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        row = loads_json(line, str(path), line_no)
        if not isinstance(row, dict):
            raise DataError(str(path), line_no, None, "expected a JSON object per line")
        yield line_no, row


def _is_arc(row: Mapping[str, Any]) -> bool:
    return isinstance(row.get("question"), dict) and "answerKey" in row


def _from_arc(path: Path, line_no: int, row: dict[str, Any], default_id: str) -> QAItem:
    question = row["question"]
    choices = question.get("choices")
    if not isinstance(choices, list) or not choices:
        raise DataError(str(path), line_no, "question.choices", "expected a non-empty list of choices")
    labels = [str(c.get("label", "")) for c in choices]
    key = str(row.get("answerKey", ""))
    if key not in labels:
        raise DataError(str(path), line_no, "answerKey", f"{key!r} is not one of the choice labels {labels}")
    return make_item(path, line_no, {
        "id": str(row.get("id") or default_id),
        "question": question.get("stem", ""),
        "choices": [str(c.get("text", "")) for c in choices],
        "answer": labels.index(key),
        "subject": file_stem(path).split("-")[0].lower() if "-" in file_stem(path) else "arc",
        "metadata": {"answer_label": key},
    })


def read_jsonl(path: str | Path, mapping: Mapping[str, Any] | None = None, *, ids: SplitIds | None = None) -> Dataset:
    """Our JSONL (one QAItem per line), ARC's original JSONL, or another JSONL of questions, row by row. A row
    that names `question`, `choices` and `answer` is ours: its id is required and an unknown key refused
    (a typo must not vanish into metadata). Any other row is read as a record is (`mapped_record`: usual names
    such as `query`/`options`/`gold`/`correct` stand in, other keys go to `metadata`, the id is FILE-LINE
    unless given), so OpenBookQA's and AQuA's files load. With `mapping` (our field → its key), every row
    is read as a record through it. A `.json` file holding one array is read element by element. `ids`
    numbers a shard's default ids across its split (`reading.SplitIds`) instead of FILE-LINE."""
    path = Path(path)
    items: list[QAItem] = []
    mapping = check_columns(mapping) if mapping else None

    def build(line_no: int, row: dict[str, Any], default_id: str) -> QAItem:
        if mapping is not None:
            record = mapped_record(row, mapping, str(path), line_no)
            return foreign_item(path, line_no, record, file_stem(path), default_id)
        if _is_arc(row):
            return _from_arc(path, line_no, row, default_id)
        if not {"question", "choices", "answer"} <= row.keys():  # not ours: read as a record is
            return foreign_item(path, line_no, mapped_record(row, None), file_stem(path), default_id)
        if "id" not in row:
            raise DataError(str(path), line_no, "id", "missing; every item needs an id")
        # JSON true is no index: answer_index refuses it; a number is read there too, so a key one past the
        # options is told apart (`reading.AnswerPastOptions`: a file counted from 1 is refused whole)
        if isinstance(row.get("answer"), str | bool) or (
                isinstance(row.get("answer"), int) and isinstance(row.get("choices"), list) and row["choices"]):
            n = len(row.get("choices") or [])
            row["answer"] = answer_index(path, line_no, row["answer"], n)
        return make_item(path, line_no, row)

    for line_no, row in _json_array_objects(path) if _is_json_array(path) else jsonl_objects(path):
        default_id = ids.next_id() if ids else f"{file_stem(path)}-{line_no}"  # drawn by every row, valid or not
        if (item := build_or_quarantine(lambda: build(line_no, row, default_id))) is not None:  # noqa: B023
            items.append(item)
    return checked_whole(Dataset(items, name=file_stem(path)), path)


def _is_json_array(path: Path) -> bool:
    """A `.json` file that holds one JSON array (SciQ's, SVAMP's files) rather than JSON lines."""
    if format_suffix(path) != ".json" or not path.is_file():
        return False  # a missing path or a folder gets `read_file_text`'s one-line error
    return read_file_bytes(path, limit=4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _json_array_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, object) for each element of a JSON array file; rows are counted from 1 like lines."""
    rows = loads_json(read_file_text(path), str(path))
    if not isinstance(rows, list):
        raise DataError(str(path), None, None, "expected a JSON array of objects")
    for row_no, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(str(path), row_no, None, "expected a JSON object per element of the array")
        yield row_no, row
