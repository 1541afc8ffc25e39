"""The file and row primitives every reader shares: bytes through gzip with a cap, text with its
encoding checked, one row built into a `QAItem` or a `DataError` naming file, row and field, and quarantine
(`on_invalid="quarantine"` collects bad rows instead of raising).
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from refinelab.errors import DataError, validation_problem
from refinelab.identifiers import skeleton
from refinelab.safeload import loads_json
from refinelab.schema import LETTERS, MAX_CHOICES, Dataset, QAItem, normalise_text

MAX_INFLATED_BYTES = 2**30  # what a .gz dataset may inflate to (1 GiB)


def _fail_from_validation(path: Path, row: int, exc: ValidationError) -> DataError:
    error = exc.errors()[0]
    field, message = validation_problem(error)
    return DataError(str(path), row, field or None, _row_problem(error, message))


#: What a row of our own layout may hold; any other key is refused (`_row_problem` names them).
_OUR_FIELDS = ", ".join(QAItem.model_fields)


def _row_problem(error: Mapping[str, Any], message: str) -> str:
    """A file row's problem in words that say what to do, where pydantic's say only what it checked: an unknown
    key of our layout (refused so that a typo such as `anwser` cannot vanish into metadata) names our fields and
    the two ways to keep it; a required field not given is "missing"; options that read the same are named by
    their letters (the schema's own message leaves them out on purpose: it is also a model's retry feedback)."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and len(loc) == 1:
        return (f"not a field of RefineLab's layout ({_OUR_FIELDS}); put extra keys under `metadata`, or read "
                "the file as records with --columns question=…,choices=…,answer=… (Python: columns=), which "
                "keeps them in metadata")
    if error.get("type") == "missing":
        return "missing"
    value = error.get("input")
    if loc == ("choices",) and "not distinct" in message and isinstance(value, list):
        groups: dict[str, list[str]] = {}
        for letter, text in zip(LETTERS, value, strict=False):
            groups.setdefault(normalise_text(str(text)), []).append(letter)
        same = next((letters for letters in groups.values() if len(letters) > 1), None)
        if same:
            return f"choices are not distinct after normalisation: {', '.join(same[:-1])} and {same[-1]} are the same"
    return message


# When set (on_invalid="quarantine"), row-level errors are collected here instead of raised.
rejected_rows: contextvars.ContextVar[list[DataError] | None] = contextvars.ContextVar("rejected", default=None)


def build_or_quarantine(build: Callable[[], QAItem | None]) -> QAItem | None:
    """Run a row builder; in quarantine mode a bad row is recorded and skipped, else it raises."""
    try:
        return build()
    except DataError as exc:
        sink = rejected_rows.get()
        if sink is None or exc.row is None:
            raise
        sink.append(exc)
        return None


def make_item(path: Path, row: int, data: dict[str, Any]) -> QAItem:
    """One row's fields as a `QAItem`, its provenance the file and row unless given; a field the schema refuses
    is a DataError naming file, row and field, in words that say what to do (`_row_problem`)."""
    data.setdefault("provenance", {"source": str(path), "row": row})
    try:
        return QAItem.model_validate(data)
    except ValidationError as exc:
        raise _fail_from_validation(path, row, exc) from None


class SplitIds:
    """The default ids of one split's shards (Hugging Face's `train-00000-of-00002.*`, any format), PREFIX-1,
    PREFIX-2, … numbered across the split in the order its rows are read, not per shard: an item's id must not
    change with the number of shards the split was saved in, nor with their format. Every row draws its number,
    one that carries its own id or is refused too, so that no other row's id moves with it. Every reader takes
    one (`ids=`) and draws each row's default id from it; without one a row's default id is its file's own
    (NAME-ROW)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.drawn = 0

    def next_id(self) -> str:
        """The next row's default id."""
        self.drawn += 1
        return f"{self.prefix}-{self.drawn}"


def file_stem(path: Path) -> str:
    """The file's name without its format suffix, or suffixes ("train.jsonl.gz" → "train"): ids and the
    dataset's name."""
    return Path(path.name.removesuffix(".gz")).stem


def format_suffix(path: Path) -> str:
    """The format suffix, looking through a ".gz" ("train.jsonl.gz" → ".jsonl")."""
    return Path(path.name.removesuffix(".gz")).suffix


def read_file_bytes(path: Path, limit: int | None = None) -> bytes:
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


def read_file_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of an untrusted file (inflated when gzipped, `read_file_bytes`), less a UTF-8 byte-order mark;
    a missing file, a folder, UTF-16, binary content, bad `encoding` (with its line) or an empty file is a
    one-line DataError naming the file, not a traceback."""
    try:
        raw = read_file_bytes(path)
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a directory, expected a file") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" and Windows tools write UTF-16
        raise DataError(str(path), None, None, "UTF-16 text (its byte-order mark); save it as UTF-8")
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


def short_repr(value: Any, limit: int = 60) -> str:
    """`value` as an error message quotes it: its repr, cut at `limit` characters with the full length said, so
    that a whole document pasted into a cell does not flood the message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def answer_index(path: Path, row: int, value: Any, n_choices: int, field: str = "answer") -> int:
    """Accept a 0-based int, a digit string, or a letter A-J; anything else is an error."""
    if isinstance(value, bool) or value is None or value == "":
        raise DataError(str(path), row, field, f"expected an answer letter or 0-based index, got {short_repr(value)}")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().upper() in LETTERS[:n_choices] and len(value.strip()) == 1:
        index = LETTERS.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
        index = int(value.strip())
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        if not n_choices:  # "'D' is beyond the 0 options none" hid that the options themselves are missing
            raise DataError(str(path), row, field, f"{value.strip()!r} names an option, but the row has no options")
        span = f"A-{LETTERS[n_choices - 1]}" if n_choices > 1 else "A"
        raise DataError(str(path), row, field, f"{value.strip()!r} is beyond the {n_choices} options {span}")
    else:
        raise DataError(str(path), row, field, f"expected an answer letter or 0-based index, got {short_repr(value)}")
    if index == n_choices and n_choices:  # one past the last option: the mark of an answer counted from 1
        raise AnswerPastOptions(str(path), row, field, f"answer {short_repr(value)} out of range for {n_choices} "
                                "choices (an index is 0-based: 0 is the first option; or give a letter)")
    if not 0 <= index < n_choices:
        raise DataError(str(path), row, field, f"answer {short_repr(value)} out of range for {n_choices} choices")
    return index


class AnswerPastOptions(DataError):
    """A numeric answer equal to the number of options: 0-based it is out of range, 1-based it is the last
    option. One such row is a bad row; such rows with no answer 0 anywhere are a file counted from 1
    (`checked_whole` refuses it whole rather than keep its other rows each one option off)."""


def _looks_one_based(dataset: Dataset, path: Path) -> AnswerPastOptions | None:
    """The first row of the file at `path` whose answer is one past the options (rows set aside so far by
    quarantine, `rejected_rows`), when there are such rows and no item keyed to its first option: answers
    counted from 1, which read as 0-based put every other key one option late."""
    past = [e for e in rejected_rows.get() or [] if isinstance(e, AnswerPastOptions) and e.path == str(path)]
    if past and not any(item.answer == 0 for item in dataset.items):
        return past[0]
    return None


def options_from_key(path: Path, row: int, question: Any, answer: Any, wrong: Any,
                     fields: tuple[str, str] = ("answer", "wrong")) -> tuple[list[str], int]:
    """The options and key of a row that gives the right answer's text and the wrong answers apart (a
    generation set such as TruthfulQA's CSV: `Best Answer`, `Incorrect Answers`), mapped as `answer` and
    `wrong`. `wrong` is a list (several columns, or a list column) or one text of answers joined by `;`. The
    key goes among the wrong options at a place drawn from the question's text, so that its place carries no
    signal (TruthfulQA's own multiple-choice form puts it first) and the same file always reads the same.
    `fields` name the columns for errors. A JSON list written as text (a CSV or Parquet cell) is a list, read
    the same whichever reader met it."""
    answer_field, wrong_field = fields
    if not isinstance(answer, str) or not answer.strip():
        raise DataError(str(path), row, answer_field, f"expected the right answer's text, got {short_repr(answer)}")
    if isinstance(wrong, str):
        wrong = loads_json(wrong, str(path), row) if wrong.lstrip().startswith("[") else wrong.split(";")
    if not isinstance(wrong, list | tuple):
        raise DataError(str(path), row, wrong_field, f"expected wrong answers (a list, or texts joined by ';'), "
                        f"got {short_repr(wrong)}")
    options = [str(w).strip() for w in wrong if w is not None and str(w).strip()]
    if not options:
        raise DataError(str(path), row, wrong_field, "no wrong answers: an item needs at least one")
    if len(options) > MAX_CHOICES - 1:
        raise DataError(str(path), row, wrong_field, f"{len(options)} wrong answers; an item holds at most "
                        f"{MAX_CHOICES - 1} beside the right one")
    place = int(hashlib.sha256(str(question).encode("utf-8")).hexdigest()[:8], 16) % (len(options) + 1)
    return [*options[:place], answer.strip(), *options[place:]], place


def one_failure(rejected: Sequence[DataError]) -> DataError | None:
    """The one error that stands for `rejected` when a load kept no item and every row failed on the same
    field with the same problem (SciQ's JSON read without --columns: 1,000 rows each "field 'choices':
    missing"), else None: the first row, the count, and for a missing question, choices or answer how to map
    the file's own columns. A listing of a thousand identical lines hid the one thing to do."""
    if len(rejected) < 2 or len({(e.field, e.problem) for e in rejected}) > 1:
        return None
    first = rejected[0]
    files = len({e.path for e in rejected})
    hint = ("; map the file's columns with --columns question=…,choices=…,answer=… (Python: columns=)"
            if first.problem == "missing" and first.field in ("question", "choices", "answer") else "")
    where = f"all {len(rejected):,} rows" + (f" of {files} files" if files > 1 else "")
    return DataError(first.path, first.row, first.field, f"{first.problem} (the same in {where}; none is valid){hint}")


def checked_whole(dataset: Dataset, path: Path) -> Dataset:
    """A file's items as read, refused whole when its rows cannot be trusted one by one: answers counted
    from 1 (`_looks_one_based`), or an id used twice."""
    if (past := _looks_one_based(dataset, path)) is not None:
        count = sum(isinstance(e, AnswerPastOptions) and e.path == str(path) for e in rejected_rows.get() or [])
        raise DataError(str(path), past.row, past.field, f"the answers look counted from 1: {count} row(s) give "
                        "the number of options as the answer and no row gives 0, so every other key would be "
                        "read one option late; RefineLab reads a number as a 0-based index (0 = the first "
                        "option): subtract 1 from the answers, or give letters")
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
