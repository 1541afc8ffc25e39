"""Read and write datasets. Strict: the first bad row raises `DataError` naming file, row and field.

Readers: our JSONL, the original MMLU CSV layout (no header; subject from the file name; one file
or a folder), ARC JSONL, other JSONL and `.json` arrays (read as records), a CSV with a header (columns
guessed from it, or a `columns` mapping; options written into the question split out; a choices cell as
JSON or as Python/numpy print a list), Parquet, Arrow, the text formats gzipped, a folder of one split's
files (a hub snapshot's shards, `save_to_disk`'s), one split of a folder of several (`split`), and in-memory
rows: a Hugging Face `datasets.Dataset`, a pandas DataFrame, a list of dicts. Every foreign
row goes through `_mapped` (usual names stand in for ours) and `_foreign_item`. `as_dataset` is the one
coercion the public API uses for all of them. Writers: JSONL and Parquet, atomically (temp file then
rename), so a failure never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import ValidationError

from refinelab.atomic import atomic_write, open_exclusive
from refinelab.errors import ConfigError, DataError, validation_problem
from refinelab.identifiers import skeleton
from refinelab.safeload import list_literal, loads_json
from refinelab.schema import LETTERS, MAX_FIELD_CHARS, Dataset, Provenance, QAItem, strip_option_labels

if TYPE_CHECKING:
    import datasets
    import pandas

# What `refine()`, `profile()` and `screen()` accept as data (see `as_dataset`).
DatasetInput: TypeAlias = ("str | os.PathLike[str] | Dataset | datasets.Dataset | datasets.IterableDataset"
                           " | pandas.DataFrame | Sequence[Mapping[str, Any]]")

_MMLU_SPLITS = re.compile(r"_(test|dev|val)$")
MAX_INFLATED_BYTES = 2**30  # what a .gz dataset may inflate to (1 GiB)


def _fail_from_validation(path: Path, row: int, exc: ValidationError) -> DataError:
    field, message = validation_problem(exc.errors()[0])
    return DataError(str(path), row, field or None, message)


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
    data.setdefault("provenance", {"source": str(path), "row": row})
    try:
        return QAItem.model_validate(data)
    except ValidationError as exc:
        raise _fail_from_validation(path, row, exc) from None


def _name(path: Path) -> str:
    """The file's name without its format suffix, or suffixes ("train.jsonl.gz" → "train"): ids and the
    dataset's name."""
    return Path(path.name.removesuffix(".gz")).stem


def _suffix(path: Path) -> str:
    """The format suffix, looking through a ".gz" ("train.jsonl.gz" → ".jsonl")."""
    return Path(path.name.removesuffix(".gz")).suffix


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, inflated when it ends in ".gz" (to at most MAX_INFLATED_BYTES: a small file must not
    fill memory); `limit` reads only the first bytes."""
    if path.suffix != ".gz":
        if limit is None:
            return path.read_bytes()
        with path.open("rb") as handle:
            return handle.read(limit)
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read((limit or MAX_INFLATED_BYTES) + 1)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(str(path), None, None, f"not a readable gzip file ({type(exc).__name__})") from None
    if limit is None and len(raw) > MAX_INFLATED_BYTES:
        raise DataError(str(path), None, None, f"inflates to more than {MAX_INFLATED_BYTES:,} bytes")
    return raw[:limit] if limit is not None else raw


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        raw = _read_bytes(path)
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

def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of an untrusted JSONL file (datasets, corpora): text
    checks of `_read_text` (missing, binary, bad UTF-8 with its line, empty), safeload per line, and a
    line that is not a JSON object refused, each a DataError naming file and line."""
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
        "id": str(row.get("id") or f"{_name(path)}-{line_no}"),
        "question": question.get("stem", ""),
        "choices": [str(c.get("text", "")) for c in choices],
        "answer": labels.index(key),
        "subject": _name(path).split("-")[0].lower() if "-" in _name(path) else "arc",
        "metadata": {"answer_label": key},
    })


def read_jsonl(path: str | Path, mapping: Mapping[str, Any] | None = None) -> Dataset:
    """Our JSONL (one QAItem per line), ARC's original JSONL, or another JSONL of questions, row by row. A row
    that names `question`, `choices` and `answer` is ours: its id is required and an unknown key refused
    (a typo must not vanish into metadata). Any other row is read as a record is (`_mapped`: usual names
    such as `query`/`options`/`gold`/`correct` stand in, other keys go to `metadata`, the id is FILE-LINE
    unless given), so OpenBookQA's and AQuA's files load. With `mapping` (our field → its key), every row
    is read as a record through it. A `.json` file holding one array is read element by element."""
    path = Path(path)
    items: list[QAItem] = []
    mapping = check_columns(mapping) if mapping else None

    def build(line_no: int, row: dict[str, Any]) -> QAItem:
        if mapping is not None:
            return _foreign_item(path, line_no, _mapped(row, mapping), _name(path))
        if _is_arc(row):
            return _from_arc(path, line_no, row)
        if not {"question", "choices", "answer"} <= row.keys():  # not ours: read as a record is
            return _foreign_item(path, line_no, _mapped(row, None), _name(path))
        if "id" not in row:
            raise DataError(str(path), line_no, "id", "missing; every item needs an id")
        if isinstance(row.get("answer"), str | bool):  # JSON true is no index: _answer_index refuses it
            n = len(row.get("choices") or [])
            row["answer"] = _answer_index(path, line_no, row["answer"], n)
        return _make_item(path, line_no, row)

    for line_no, row in _json_array_objects(path) if _is_json_array(path) else jsonl_objects(path):
        if (item := _collect(lambda: build(line_no, row))) is not None:  # noqa: B023
            items.append(item)
    return _checked(Dataset(items, name=_name(path)), path)


def _is_json_array(path: Path) -> bool:
    """A `.json` file that holds one JSON array (SciQ's, SVAMP's files) rather than JSON lines."""
    if _suffix(path) != ".json" or not path.is_file():
        return False  # a missing path or a folder gets `_read_text`'s one-line error
    return _read_bytes(path, limit=4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _json_array_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, object) for each element of a JSON array file; rows are counted from 1 like lines."""
    rows = loads_json(_read_text(path), str(path))
    if not isinstance(rows, list):
        raise DataError(str(path), None, None, "expected a JSON array of objects")
    for row_no, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(str(path), row_no, None, "expected a JSON object per element of the array")
        yield row_no, row


# ---------------------------------------------------------------- MMLU CSV layout

def _subject_from_name(path: Path) -> str:
    return _MMLU_SPLITS.sub("", path.stem)


_SHARD = re.compile(r"^(?P<split>.+)-\d{5}-of-(?P<total>\d{5})$")  # "train-00000-of-00003" (Hugging Face's)
#: What a folder's table files may be: Hugging Face's hub snapshots shard JSONL or Parquet; `save_to_disk`, Arrow.
_TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
#: `Dataset.save_to_disk`'s own files beside its Arrow shards (and `DatasetDict`'s index of its split folders).
_HF_FOLDER_FILES = frozenset({"dataset_info.json", "state.json", "dataset_dict.json"})
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _table_files(path: Path, with_csv: bool = False) -> list[Path]:
    """A folder's data files other than MMLU's headerless CSV (JSONL, JSON, Parquet, Arrow, gzipped or not;
    CSV files with a header when `with_csv`), sorted, leaving out `save_to_disk`'s own JSON files."""
    suffixes = _TABLE_SUFFIXES + ((".csv",) if with_csv else ())
    return sorted(f for f in path.iterdir()
                  if f.is_file() and _suffix(f) in suffixes and f.name not in _HF_FOLDER_FILES)


def _csv_folder_layout(path: Path, mapping: Mapping[str, Any] | None) -> str | None:
    """How a folder's CSV files are laid out: "mmlu" (no header: MMLU's question,A,B,C,D,answer files),
    "headered" (each names its columns, or `mapping` names them: ARC's CSV files), None without CSV files.
    A folder mixing the two is refused: which reader fits which file would be a guess."""
    files = sorted(f for f in path.iterdir() if f.is_file() and _suffix(f) == ".csv")
    if not files:
        return None
    if mapping:
        return "headered"
    headered = [f for f in files if _csv_has_header(f)]
    if headered and len(headered) < len(files):
        plain = next(f for f in files if f not in headered)
        raise DataError(str(path), None, None, f"mixes CSV files with a header ({headered[0].name}) and without "
                        f"one ({plain.name}, read as MMLU's layout); pass one file")
    return "headered" if headered else "mmlu"


#: The words that name a split in a file's name, as Hugging Face reads them, each with the split it means.
SPLIT_WORDS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test", "eval": "test",
               "evaluation": "test"}
_SPLIT_WORD = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(SPLIT_WORDS, key=len, reverse=True)) + r")(?![a-z0-9])")


def _split_word(file: Path) -> str:
    """The split a file's name says it holds, as written ("dev" in "ARC-Challenge-Dev.csv", "train" in
    "train-00000-of-00002.parquet"), or "" for a name that says none ("mmlu_astronomy.csv", save_to_disk's
    "data-00000-of-00001.arrow"): the parts of one set, read together."""
    shard = _SHARD.match(_name(file))
    found = _SPLIT_WORD.findall((shard["split"] if shard else _name(file)).lower())
    return found[-1] if found else ""


def _split_files(path: Path, split: str | None = None, with_csv: bool = False) -> list[Path]:
    """The files of a folder's one split, in order; [] when the folder has no such files. A name that says no
    split ("mmlu_astronomy.csv") is a part of the one set the folder holds; a name that does ("test.jsonl",
    "ARC-Challenge-Dev.csv", "train-00000-of-00002.parquet") belongs to that split, and `split` names it by
    the word or the split it means ("dev" or "validation"). A folder of several splits needs `split`:
    joining train and test would be silently wrong."""
    files = _table_files(path, with_csv)
    by_split: dict[str, list[Path]] = {}
    for file in files:
        by_split.setdefault(_split_word(file), []).append(file)
    if not by_split:
        return []
    named = sorted(word for word in by_split if word)
    if split is None:
        if len(by_split) > 1:
            parts = ", ".join(named[:8]) + (f" and files that name none ({by_split[''][0].name}, …)"
                                             if "" in by_split else "")
            raise DataError(str(path), None, None, f"holds {len(by_split)} splits ({parts}); choose one with "
                            "--split NAME (Python: split=)")
        name = next(iter(by_split))
    else:
        wanted = SPLIT_WORDS.get(split.lower(), split.lower())
        alike = [word for word in named if SPLIT_WORDS[word] == wanted]
        name = split.lower() if split.lower() in named else alike[0] if len(alike) == 1 else ""
        if len(alike) > 1 and not name:
            raise DataError(str(path), None, None, f"holds {' and '.join(alike)}, both {wanted}; choose one by name")
        if not name:
            raise DataError(str(path), None, None, f"has no split {split!r}; "
                            + (f"it holds {', '.join(named[:8])}" if named else "its file names name no split"))
    chosen = by_split[name]
    label = name or "its files"
    if len(formats := sorted({_suffix(f) for f in chosen})) > 1:
        raise DataError(str(path), None, None, f"holds {label} as {' and '.join(formats)}; pass one file")
    shards = [_SHARD.match(_name(f)) for f in chosen]
    if not any(shards):
        return chosen
    if not all(shards):
        raise DataError(str(path), None, None, f"holds {label} both as shards and as whole files; pass one file")
    totals = {int(match["total"]) for match in shards if match}
    if totals != {len(chosen)}:
        raise DataError(str(path), None, None, f"holds {len(chosen)} shard(s) of {label}, but their names count "
                        f"{'/'.join(str(t) for t in sorted(totals))}: a shard is missing or left over")
    return chosen


def _split_folder(path: Path, split: str) -> Path | None:
    """`path/split` when it is a folder (a `DatasetDict.save_to_disk` split, MMLU's dev/val/test), else None.
    The name is one plain path part: a split cannot lead out of the folder."""
    if not _SPLIT_NAME.fullmatch(split) or split in {".", ".."}:
        raise DataError(str(path), None, None, f"split {split!r} is not a plain name (letters, digits, _ . -)")
    folder = path / split
    return folder if folder.is_dir() and not folder.is_symlink() else None


def _sub_folders(path: Path) -> list[str]:
    return sorted(f.name for f in path.iterdir() if f.is_dir() and not f.name.startswith("."))


def _folder_holds(path: Path) -> str:
    """What else a folder read as MMLU holds, for the error that says it has no CSV files."""
    counts: dict[str, int] = {}
    for file in path.iterdir():
        if file.is_file() and file.suffix in _TABLE_SUFFIXES and file.name not in _HF_FOLDER_FILES:
            counts[file.suffix] = counts.get(file.suffix, 0) + 1
    held = ", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in sorted(counts.items()))
    if held:
        return f" (a folder is read as MMLU's CSV layout, but it holds {held}; pass one file)"
    folders = _sub_folders(path)
    if folders:
        return f" (it holds the folders {', '.join(folders[:8])}: choose one with --split NAME, Python: split=)"
    return ""


@contextlib.contextmanager
def _csv_problems(path: Path, reader: Any) -> Iterator[None]:
    """A CSV the parser cannot read (a field over its size limit, a stray quote in strict mode) is a one-line
    DataError naming the file and line, like any other bad input, not an unexpected csv.Error."""
    try:
        yield
    except csv.Error as exc:
        problem = str(exc)
        if "field larger than field limit" in problem:
            problem = (f"a field is longer than {csv.field_size_limit():,} characters (a question or an option may "
                       f"have at most {MAX_FIELD_CHARS:,})")
        line = getattr(getattr(reader, "reader", reader), "line_num", 0)  # a DictReader counts only rows it returned
        raise DataError(str(path), line or None, None, f"not readable as CSV: {problem}") from None


def read_mmlu_csv(path: str | Path) -> Dataset:
    """The original MMLU layout: no header, question,A,B,C,D,answer_letter; subject from the file name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise DataError(str(path), None, None, f"folder has no .csv files{_folder_holds(path)}")
        items = [item for file in files for item in read_mmlu_csv(file).items]
        return _checked(Dataset(items, name=path.name), path)
    subject = _subject_from_name(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    items = []
    with _csv_problems(path, reader):
        for row_no, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 4:
                raise DataError(str(path), row_no, None,
                                f"expected question, 2+ choices and an answer letter; got {len(row)} columns")
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

def read_csv(path: str | Path, mapping: Mapping[str, Any] | None = None) -> Dataset:
    """A CSV with a header. `mapping` names columns: question, choices (a list of columns, or one column
    holding a JSON list), answer, and optionally id, subject, domain, skill; without it the columns are
    guessed from the header (`guess_columns`), or a one-line error asks for `--columns`."""
    path = Path(path)
    text = _read_text(path)
    delimiter = _header_delimiter(path, text[:_HEADER_SNIFF_BYTES]) or ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    with _csv_problems(path, reader):
        header = reader.fieldnames or []
    if mapping is None:
        mapping = _mapping_from_header(path, header)
    mapping = check_columns(mapping)
    choice_columns = _as_list(mapping["choices"])
    wanted = [mapping["question"], *choice_columns, mapping["answer"]]
    wanted += [mapping[k] for k in ("id", "subject", "domain", "skill") if k in mapping]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(str(path), 1, missing[0], f"column missing from header {header}")
    items = []

    embedded = choice_columns == [mapping["question"]]  # the options are written into the question

    def build(row_no: int, row: dict[str, str | None]) -> QAItem:
        item: dict[str, Any] = {"id": row[mapping["id"]] if "id" in mapping else f"{_name(path)}-{row_no}"}
        if embedded:
            stem, choices, labels = _embedded_options(path, row_no, row[mapping["question"]] or "", mapping["question"])
            key = (row[mapping["answer"]] or "").strip()
            if key not in labels:
                raise DataError(str(path), row_no, mapping["answer"], f"{_short(key)} is not one of the option labels "
                                f"{labels}")
            item |= {"question": stem, "choices": choices, "answer": labels.index(key),
                     "metadata": {"answer_label": key}}
        else:
            choices = _csv_choices(path, row_no, row, choice_columns)
            item |= {"question": row[mapping["question"]] or "", "choices": choices,
                     "answer": _answer_index(path, row_no, row[mapping["answer"]], len(choices), mapping["answer"])}
        for key in ("subject", "domain", "skill"):
            if key in mapping:
                item[key] = row[mapping[key]] or ""
        return _make_item(path, row_no, item)

    with _csv_problems(path, reader):
        for row_no, row in enumerate(reader, start=2):
            if None in row:
                raise DataError(str(path), row_no, None, f"more cells than the {len(header)} header columns")
            if (item := _collect(lambda: build(row_no, row))) is not None:  # noqa: B023
                items.append(item)
    return _checked(Dataset(items, name=_name(path)), path)


COLUMN_FIELDS = ("question", "choices", "answer", "id", "subject", "domain", "skill")
_QUESTION_NAMES = ("question", "stem", "prompt", "query", "input")
_ANSWER_NAMES = ("answer", "answerkey", "answer_key", "answer_idx", "answer_index", "label", "correct", "target",
                 "key")
_CHOICE_LIST_NAMES = ("choices", "options", "answers_list")
_ID_NAMES = ("id", "questionid", "question_id")
_CHOICE_COLUMN = re.compile(r"^(?:choice|option|opt|ans)?[ _-]?([a-j]|[0-9])$", re.IGNORECASE)


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def check_columns(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A column mapping (our field → source column, `choices` → one column or a list) checked: the
    three required fields present, no unknown field. Raises `ConfigError` naming the problem."""
    unknown = [k for k in mapping if k not in COLUMN_FIELDS]
    if unknown:
        raise ConfigError(f"column mapping: unknown field {unknown[0]!r}; fields are {', '.join(COLUMN_FIELDS)}")
    missing = [k for k in ("question", "choices", "answer") if not mapping.get(k)]
    if missing:
        raise ConfigError(f"column mapping: {missing[0]!r} is required (question, choices, answer)")
    for key, value in mapping.items():
        ok = isinstance(value, str) if key != "choices" else (
            isinstance(value, str) or (isinstance(value, Sequence) and all(isinstance(v, str) for v in value)))
        if not ok:
            raise ConfigError(f"column mapping: {key!r} must name a column, got {_short(value)}")
    return dict(mapping)


def parse_columns(text: str) -> dict[str, str | list[str]]:
    """`question=Q,choices=A,B,C,D,answer=Key` (the CLI's `--columns`) as a mapping: a part without `=`
    continues the list of the field before it, so `choices=A,B,C,D` names four columns."""
    mapping: dict[str, str | list[str]] = {}
    last: str | None = None
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if sep:
            last = key.strip().lower()
            if last in mapping:
                raise ConfigError(f"--columns: {last!r} given twice")
            mapping[last] = value.strip() if last != "choices" else [value.strip()]
        elif last == "choices":
            mapping["choices"].append(part)  # type: ignore[union-attr]
        else:
            raise ConfigError(f"--columns: expected FIELD=COLUMN, got {part!r}")
    if isinstance(mapping.get("choices"), list) and len(mapping["choices"]) == 1:
        mapping["choices"] = mapping["choices"][0]  # one column holding the list
    return check_columns(mapping)


def guess_columns(header: Sequence[str]) -> dict[str, Any] | None:
    """The mapping a header implies (question/stem, A..D or choice_1.. or a `choices` list column,
    answer/label; id, subject, domain, skill when named so), or None when it names no question and answer."""
    lower = {h.strip().lower(): h for h in header}

    def first(names: Sequence[str]) -> str | None:
        return next((lower[n] for n in names if n in lower), None)

    question, answer = first(_QUESTION_NAMES), first(_ANSWER_NAMES)
    if question is None or answer is None:
        return None
    lists = first(_CHOICE_LIST_NAMES)
    columns = [h for h in header if h not in (question, answer) and _CHOICE_COLUMN.match(h.strip())]
    # no option columns: the options may be written into the question, as ARC's CSV files do ("… (A) x (B) y");
    # each row is then split, or refused naming the row
    choices: str | list[str] = lists or (columns if len(columns) >= 2 else question)
    mapping: dict[str, Any] = {"question": question, "choices": choices, "answer": answer}
    if (id_column := first(_ID_NAMES)) is not None:
        mapping["id"] = id_column
    for key in ("subject", "domain", "skill"):
        if key in lower:
            mapping[key] = lower[key]
    return mapping


_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .-]{0,39}$")


def _looks_like_header(first_row: Sequence[str]) -> bool:
    """A header names a question or answer column we know, or is a row of short distinct column names
    whose last cell is no answer (an MMLU row ends in its answer letter and starts with a question)."""
    cells = [cell.strip() for cell in first_row]
    if any(c.lower() in _QUESTION_NAMES or c.lower() in _ANSWER_NAMES for c in cells):
        return True
    last = cells[-1] if cells else ""
    answer_like = len(last) == 1 and last.upper() in LETTERS or last.isdigit()
    return (len(cells) >= 3 and not answer_like and len(set(cells)) == len(cells)
            and all(_IDENTIFIER.match(c) and " " not in c for c in cells))


def _mapping_from_header(path: Path, header: Sequence[str]) -> dict[str, Any]:
    mapping = guess_columns(header)
    if mapping is None:
        raise DataError(str(path), 1, None, f"cannot tell question, choices and answer from the header "
                        f"{list(header)[:12]}; pass --columns question=…,choices=…,answer=…")
    return mapping


_HEADER_SNIFF_BYTES = 8 * 2**20  # the first record, however long a headerless MMLU row's fields may be


#: Delimiters a headered CSV may use: Excel in many locales writes ";" (MMLU-Redux has nine such files).
_DELIMITERS = (",", ";", "\t")


def _header_delimiter(path: Path, head: str) -> str | None:
    """The delimiter under which the first record of `head` reads as a header, or None: no header, MMLU's
    comma-separated layout. A headerless file is never read with another delimiter."""
    for delimiter in _DELIMITERS:
        reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter)
        with _csv_problems(path, reader):
            first = next(reader, [])
        if _looks_like_header(first):
            return delimiter
    return None


def _csv_has_header(path: Path) -> bool:
    """Whether the first record is a header, read from the file's first bytes only: the reader chosen then
    reads the whole file (and reports its encoding or content problems) once, not twice."""
    head = _read_bytes(path, limit=_HEADER_SNIFF_BYTES).decode("utf-8", errors="replace").removeprefix("\ufeff")
    return _header_delimiter(path, head) is not None


# An option written into the question's text: "(A) text" or "(1) text" (ARC's CSV files)
_EMBEDDED_LABEL = re.compile(r"\(([A-J]|[1-9])\)\s")


def _embedded_options(path: Path, row_no: int, text: str, column: str) -> tuple[str, list[str], list[str]]:
    """(stem, options, labels) of a question whose options are written into it, "Which …? (A) x (B) y";
    a DataError naming the row when it holds fewer than two. Labels are taken in order, A, B, C, … (else
    1, 2, 3, …), so a parenthesis inside an option, "(F)" for fluorine after "(C)", stays part of its text."""
    cuts = _label_run(text, "A")
    if len(cuts) < 2:
        cuts = _label_run(text, "1")
    if len(cuts) < 2:
        raise DataError(str(path), row_no, column, "the question holds no options labelled (A), (B), … in order; "
                        "name the option columns with --columns question=…,choices=A,B,C,D,answer=…")
    ends = [m.start() for m in cuts[1:]] + [len(text)]
    options = [text[m.end():end].strip() for m, end in zip(cuts, ends, strict=True)]
    return text[:cuts[0].start()].strip(), options, [m[1] for m in cuts]


def _label_run(text: str, first: str) -> list[re.Match[str]]:
    """The labels `first`, the next, the next, … as they occur in `text`, each after the one before."""
    run: list[re.Match[str]] = []
    for match in _EMBEDDED_LABEL.finditer(text):
        if match[1] == (chr(ord(run[-1][1]) + 1) if run else first):
            run.append(match)
    return run


def _csv_choices(path: Path, row_no: int, row: Mapping[str, str | None], columns: list[str]) -> list[str]:
    if len(columns) > 1:
        return [row[c] or "" for c in columns]
    cell = row[columns[0]] or ""
    if not cell.strip().startswith("["):
        raise DataError(str(path), row_no, columns[0], "one choices column must hold a list of texts, e.g. "
                        "[\"a\", \"b\"]")
    try:
        value = loads_json(cell, str(path), row_no)
    except DataError:  # a list as Python or numpy prints it (pandas' to_csv, MMLU-Redux's files)
        return list_literal(cell, str(path), row_no, columns[0])
    if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
        raise DataError(str(path), row_no, columns[0], "one choices column must hold a list of texts, e.g. "
                        "[\"a\", \"b\"]")
    return [str(v) for v in value]


# ---------------------------------------------------------------- Parquet and Hugging Face

def _choice_list(path: Path, row_no: int, row: dict[str, Any]) -> None:
    """`row["choices"]` as a list of options, in place: a list as it is, Hugging Face's `{"text", "label"}`
    struct unpacked (an answer given as one of its labels becomes the index), TruthfulQA's `{"choices",
    "labels"}` with one option marked 1 (that option the answer, unless one is given), a JSON list written as text
    parsed. Anything else is refused: `list("Paris")` made five one-letter options, and a struct's keys
    ("text", "label") two, silently."""
    value = row["choices"]
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        labels = [str(label) for label in value.get("label") or []]
        answer = row.get("answer")
        if isinstance(answer, str) and answer.strip() in labels:
            row["answer"] = labels.index(answer.strip())
        value = value["text"]
    elif isinstance(value, dict) and isinstance(value.get("choices"), list) and isinstance(value.get("labels"), list):
        # TruthfulQA's {"choices": [...], "labels": [1, 0, 0]}: the one option marked 1 is the key, when no other
        # answer is given (or the mapping names the same column for both: answer=mc1_targets)
        marks = value["labels"]
        one_key = len(marks) == len(value["choices"]) and sorted(marks) == [0] * (len(marks) - 1) + [1]
        if ("answer" not in row or row["answer"] is value) and one_key:
            row["answer"] = marks.index(1)
        elif row.get("answer") is value:
            raise DataError(str(path), row_no, "answer", f"the options' labels {_short(marks)} mark "
                            f"{sum(1 for m in marks if m == 1)} right answers; a multiple-choice item needs one")
        value = value["choices"]
    elif isinstance(value, str) and value.lstrip().startswith("["):
        value = loads_json(value, str(path), row_no)
    if not isinstance(value, list | tuple):
        raise DataError(str(path), row_no, "choices", f"expected a list of options, got {_short(value)}")
    row["choices"] = list(value)


def _foreign_item(path: Path, row_no: int, row: dict[str, Any], name: str) -> QAItem:
    """The item of one row of a Parquet file or one mapped foreign row (`_mapped`): metadata given as JSON
    text parsed, choices made a list, a letter answer made an index, the id NAME-ROW unless given."""
    row = {k: v for k, v in row.items() if v is not None}
    for key in ("metadata", "provenance"):
        if isinstance(row.get(key), str):
            row[key] = loads_json(row[key], str(path), row_no)
    if "choices" in row:
        _choice_list(path, row_no, row)
    if "id" not in row:
        row["id"] = f"{name}-{row_no}"
    if isinstance(row.get("answer"), str | bool):  # JSON true is no index: _answer_index refuses it
        row["answer"] = _answer_from_text(path, row_no, row["answer"], row.get("choices") or [])
    return _make_item(path, row_no, row)


def _answer_from_text(path: Path, row_no: int, value: Any, choices: Sequence[Any]) -> int:
    """A foreign row's answer: a letter or index, else the text of exactly one option (SciQ's
    `correct_answer`, mapped as both an option and the answer)."""
    try:
        return _answer_index(path, row_no, value, len(choices))
    except DataError:
        matches = [i for i, c in enumerate(choices) if isinstance(value, str) and str(c).strip() == value.strip()]
        if len(matches) != 1:
            raise
        return matches[0]


def _rows_to_dataset(rows: Iterable[dict[str, Any]], source: str, name: str) -> Dataset:
    path = Path(source)
    items = []
    for row_no, row in enumerate(rows, start=1):
        if (item := _collect(lambda: _foreign_item(path, row_no, row, name))) is not None:  # noqa: B023
            items.append(item)
    return _checked(Dataset(items, name=name), path)


def _read_table(path: Path, kind: str) -> Any:
    """The Arrow table of a Parquet file, or of an Arrow IPC file (`save_to_disk` writes the stream form;
    `pyarrow.feather`/`ipc.new_file` the file form). Any reading problem is one DataError naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            return pq.read_table(path)
        with pa.OSFile(str(path)) as source:
            try:
                return pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_file(source).read_all()
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        name = "Parquet" if kind == "parquet" else "Arrow"
        raise DataError(str(path), None, None, f"not a readable {name} file: {exc}") from None


def read_parquet(path: str | Path) -> Dataset:
    """A Parquet file whose columns are QAItem fields."""
    return _read_columnar(Path(path), "parquet")


def read_arrow(path: str | Path) -> Dataset:
    """An Arrow IPC file (a shard of Hugging Face's `save_to_disk`) whose columns are QAItem fields."""
    return _read_columnar(Path(path), "arrow")


def _read_columnar(path: Path, kind: str) -> Dataset:
    table = _read_table(path, kind)
    missing = [c for c in ("question", "choices", "answer") if c not in table.column_names]
    if missing:
        raise DataError(str(path), None, missing[0], f"column missing; have {table.column_names}")
    return _rows_to_dataset(table.to_pylist(), str(path), _name(path))


def _columnar_mapped(path: Path, kind: str, mapping: Mapping[str, Any]) -> Dataset:
    """A Parquet or Arrow file whose columns are renamed by `mapping` (our field → column)."""
    table = _read_table(path, kind)
    return from_records(table.to_pylist(), columns=mapping, name=_name(path), source=str(path))


def from_hf(hf_dataset: Any, mapping: Mapping[str, str] | None = None, name: str = "hf") -> Dataset:
    """A Hugging Face `datasets.Dataset` whose columns (renamed by `mapping`) are QAItem fields."""
    mapping = dict(mapping or {})

    def rows() -> Iterator[dict[str, Any]]:
        for row in hf_dataset:
            yield {mapping.get(k, k): v for k, v in row.items() if mapping.get(k, k) in QAItem.model_fields}

    return _rows_to_dataset(rows(), f"<hf:{name}>", name)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (pandas, Arrow) as Python values; NaN (pandas' missing cell) as None."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _alias(row: Mapping[str, Any], names: Sequence[str], used: set[str]) -> str | None:
    lower = {k.lower(): k for k in row if k not in used}
    return next((lower[n] for n in names if n in lower), None)


def _mapped(row: Mapping[str, Any], columns: Mapping[str, Any] | None) -> dict[str, Any]:
    """One foreign record as QAItem fields: `columns` renames (our field → its column); our own field names
    are taken as they are; otherwise a usual name stands in (`stem`/`query`/`question_stem` for the question,
    `label`/`answerKey`/`gold` for the answer); Hugging Face's `{"text": [...], "label": [...]}` choices
    (ARC, CommonsenseQA, OpenBookQA) are unpacked by `_choice_list`. Any other column is kept in `metadata`."""
    row = {str(k): _plain(v) for k, v in row.items()}
    out: dict[str, Any] = {}
    used: set[str] = set()
    for key, source in (columns or {}).items():
        if key == "choices" and not isinstance(source, str):
            out["choices"] = [row.get(c) for c in source]
            used.update(source)
        elif source in row:
            out[key] = row[source]
            used.add(source)
    for key in QAItem.model_fields:
        if key not in out and key in row:
            out[key] = row[key]
            used.add(key)
    for key, names in (("question", _QUESTION_NAMES + ("question_stem",)), ("choices", _CHOICE_LIST_NAMES),
                       ("answer", _ANSWER_NAMES + ("gold",))):
        source = None if key in out else _alias(row, names, used)
        if source is not None:
            out[key] = row[source]
            used.add(source)
    # Hugging Face's {"text", "label"} choices are unpacked with every other row's, in `_choice_list`
    if isinstance(out.get("choices"), list) and all(isinstance(c, str) for c in out["choices"]):
        out["choices"] = strip_option_labels(out["choices"])  # "A)5", "B)6" (AQuA) when every option is labelled
    extra = {k: v for k, v in row.items() if k not in used and v is not None}
    if extra:
        given = out.get("metadata")
        if isinstance(given, str):
            given = loads_json(given, "metadata")
        out["metadata"] = {**(given if isinstance(given, dict) else {}), **extra}
    return out


def from_records(records: Iterable[Mapping[str, Any]], *, columns: Mapping[str, Any] | None = None,
                 name: str = "records", source: str | None = None) -> Dataset:
    """Rows as mappings (a list of dicts, a DataFrame's records, a Hugging Face split) as a Dataset:
    the same row checks as a file, errors naming `source`, the row (1-based) and the field."""
    columns = check_columns(columns) if columns else None
    where = source or f"<{name}>"

    def rows() -> Iterator[dict[str, Any]]:
        for number, row in enumerate(records, start=1):
            if not isinstance(row, Mapping):
                raise DataError(where, number, None, f"expected a mapping per row, got {type(row).__name__}")
            yield _mapped(row, columns)

    return _rows_to_dataset(rows(), where, name)


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
    `metadata`; `split` picks one split of a folder holding several (`load_dataset`). Bad input raises
    `DataError` naming the source, row and field; nothing is written."""
    if on_invalid not in {"error", "quarantine"}:
        raise ValueError(f"on_invalid must be 'error' or 'quarantine', got {on_invalid!r}")
    if split is not None and not isinstance(data, str | os.PathLike):
        raise DataError(f"<{_kind(data)}>", None, None, "split= picks a part of a folder on disk; pass the split itself")
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str | os.PathLike):
        return load_dataset(data, format=format, mapping=columns, on_invalid=on_invalid, split=split)
    kind = _kind(data)
    if kind in ("datasets.DatasetDict", "datasets.IterableDatasetDict"):
        splits = ", ".join(map(str, data.keys()))  # type: ignore[attr-defined]
        raise DataError(f"<{kind}>", None, None, f"holds several splits ({splits}); pass one, e.g. data['test']")
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
    token = _rejected.set(sink)
    try:
        dataset = from_records(records, columns=columns, name=label, source=f"<{label}>")
    finally:
        _rejected.reset(token)
    dataset.rejected = sink or []
    if not len(dataset) and not dataset.rejected:
        raise DataError(f"<{label}>", None, None, "no rows")
    return dataset


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
    split: str | None = None,
) -> Dataset:
    """Read any supported file or folder, choosing the reader from `format` or the file name.

    `on_invalid="error"` (default) raises on the first bad row. `"quarantine"` skips bad rows and
    lists them in `dataset.rejected`, for raw data whose defects (duplicate options, say) are what
    the user wants reported; file-level problems (encoding, missing columns) always raise.
    `split` picks one part of a folder holding several: its sub-folder of that name (a `DatasetDict`
    saved with `save_to_disk`, MMLU's dev/val/test) or its files of that split ("test.jsonl",
    "test-00000-of-00002.parquet"). A repository's `data/` beside its README is read as the repository."""
    if on_invalid not in {"error", "quarantine"}:
        raise ValueError(f"on_invalid must be 'error' or 'quarantine', got {on_invalid!r}")
    sink: list[DataError] | None = [] if on_invalid == "quarantine" else None
    token = _rejected.set(sink)
    try:
        dataset = _load(Path(path), format, mapping, split)
    finally:
        _rejected.reset(token)
    dataset.rejected = sink or []
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
    headered: one kind a folder), a dataset repository's data/, or else MMLU's layout."""
    if split is not None and (folder := _split_folder(path, split)) is not None:
        return _load(folder, format, mapping)
    if split is None and (path / "dataset_dict.json").is_file():
        raise DataError(str(path), None, None, "is a Hugging Face DatasetDict (save_to_disk) holding the splits "
                        f"{', '.join(_sub_folders(path)[:8])}; choose one with --split NAME (Python: split=)")
    if format != "mmlu":
        if files := _split_files(path, split, with_csv=_csv_folder_layout(path, mapping) is not None):
            items = [item for file in files for item in _load_file(file, format, mapping).items]
            return _checked(Dataset(items, name=path.name if split is None else split), path)
        hub_data = path / "data"  # a dataset repository as cloned: README.md beside data/
        if hub_data.is_dir() and not hub_data.is_symlink() and not _table_files(path):
            return _load(hub_data, format, mapping, split)
    if split is not None:
        held = _sub_folders(path)
        raise DataError(str(path), None, None, f"has no split {split!r}: no folder of that name"
                        + (f" (it holds {', '.join(held[:8])})" if held else "") + " and no files named for it")
    return _load_file(path, format or "mmlu", mapping)


def _load_file(path: Path, format: str | None, mapping: Mapping[str, Any] | None) -> Dataset:
    """One file (or a folder read as MMLU's layout) by `format`, else by its name."""
    readers: dict[str, Callable[[Path], Dataset]] = {
        "jsonl": read_jsonl, "arc": read_jsonl, "mmlu": read_mmlu_csv, "parquet": read_parquet, "arrow": read_arrow,
    }
    if format is None:
        if _suffix(path) in {".jsonl", ".json"}:
            format = "jsonl"
        elif path.suffix in {".parquet", ".arrow"}:
            format = path.suffix[1:]
        elif _suffix(path) == ".csv":
            format = "csv" if mapping or _csv_has_header(path) else "mmlu"
        else:
            raise DataError(str(path), None, None, f"unknown file type {path.suffix!r}; use --format (a .gz file is "
                            f"read as the .jsonl, .json or .csv it holds)")
    if format == "csv":
        if path.is_dir():
            raise DataError(str(path), None, None, "--format csv reads one file; a folder is read as MMLU")
        return read_csv(path, mapping)
    if mapping and format in {"parquet", "arrow"}:
        return _columnar_mapped(path, format, mapping)
    if mapping and format == "jsonl":
        return read_jsonl(path, mapping)
    if mapping:
        raise DataError(str(path), None, None, f"a column mapping applies to CSV, JSONL, Parquet and Arrow, not {format}")
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


__all__ = ["DatasetInput", "Provenance", "as_dataset", "check_columns", "from_hf", "from_records", "guess_columns",
           "jsonl_objects", "load_dataset", "parse_columns", "read_arrow", "read_csv", "read_jsonl", "read_mmlu_csv", "read_parquet",
           "require_items", "write_jsonl", "write_parquet"]
