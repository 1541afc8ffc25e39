"""Rows as mappings (a Parquet or Arrow table's, a list of dicts, a DataFrame's, a Hugging Face split's):
usual names stand in for ours (`mapped_record`), Hugging Face's choice structs are unpacked, and each row is
built like a file's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinelab.errors import DataError
from refinelab.io.columns import (
    ANSWER_NAMES,
    CHOICE_LIST_NAMES,
    LIST_FIELDS,
    QUESTION_NAMES,
    check_columns,
    column_list,
    guess_columns,
)
from refinelab.io.reading import (
    SplitIds,
    answer_index,
    build_or_quarantine,
    checked_whole,
    make_item,
    options_from_key,
    short_repr,
)
from refinelab.safeload import loads_json
from refinelab.schema import Dataset, QAItem, strip_option_labels


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
            raise DataError(str(path), row_no, "answer", f"the options' labels {short_repr(marks)} mark "
                            f"{sum(1 for m in marks if m == 1)} right answers; a multiple-choice item needs one")
        value = value["choices"]
    elif isinstance(value, str) and value.lstrip().startswith("["):
        value = loads_json(value, str(path), row_no)
    if not isinstance(value, list | tuple):
        raise DataError(str(path), row_no, "choices", f"expected a list of options, got {short_repr(value)}")
    row["choices"] = list(value)


def foreign_item(path: Path, row_no: int, row: dict[str, Any], name: str, default_id: str | None = None) -> QAItem:
    """The item of one row of a Parquet file or one mapped foreign row (`mapped_record`): metadata given as JSON
    text parsed, choices made a list, a letter answer made an index, the id `default_id` or NAME-ROW unless
    given."""
    row = {k: v for k, v in row.items() if v is not None}
    for key in ("metadata", "provenance"):
        if isinstance(row.get(key), str):
            row[key] = loads_json(row[key], str(path), row_no)
    if "wrong" in row:  # the right answer's text and the wrong answers apart (a generation set)
        row["choices"], row["answer"] = options_from_key(path, row_no, row.get("question"), row.get("answer"),
                                                         row.pop("wrong"))
    elif "choices" in row:
        _choice_list(path, row_no, row)
    if "id" not in row:
        row["id"] = default_id or f"{name}-{row_no}"
    answer = row.get("answer")  # JSON true is no index: answer_index refuses it; a number is read there too
    if isinstance(answer, str | bool) or (isinstance(answer, int) and isinstance(row.get("choices"), list) and row["choices"]):
        row["answer"] = _answer_from_text(path, row_no, answer, row.get("choices") or [])
    return make_item(path, row_no, row)


def _answer_from_text(path: Path, row_no: int, value: Any, choices: Sequence[Any]) -> int:
    """A foreign row's answer: a letter or index, else the text of exactly one option (SciQ's
    `correct_answer`, mapped as both an option and the answer)."""
    try:
        return answer_index(path, row_no, value, len(choices))
    except DataError:
        matches = [i for i, c in enumerate(choices) if isinstance(value, str) and str(c).strip() == value.strip()]
        if len(matches) != 1:
            raise
        return matches[0]


def rows_to_dataset(rows: Iterable[dict[str, Any]], source: str, name: str, ids: SplitIds | None = None) -> Dataset:
    """The rows as items, each named by its source and row in errors; their default ids drawn from `ids`
    (a shard's rows, numbered across its split) instead of NAME-ROW."""
    path = Path(source)
    items = []
    for row_no, row in enumerate(rows, start=1):
        default = ids.next_id() if ids else None
        item = build_or_quarantine(lambda: foreign_item(path, row_no, row, name, default))  # noqa: B023
        if item is not None:
            items.append(item)
    return checked_whole(Dataset(items, name=name), path)


def from_hf(hf_dataset: Any, mapping: Mapping[str, str] | None = None, name: str = "hf") -> Dataset:
    """A Hugging Face `datasets.Dataset` whose columns (renamed by `mapping`) are QAItem fields."""
    mapping = dict(mapping or {})

    def rows() -> Iterator[dict[str, Any]]:
        for row in hf_dataset:
            yield {mapping.get(k, k): v for k, v in row.items() if mapping.get(k, k) in QAItem.model_fields}

    return rows_to_dataset(rows(), f"<hf:{name}>", name)


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


def require_columns(where: str, row_no: int | None, columns: Mapping[str, Any], have: Sequence[str]) -> None:
    """A DataError when `columns` (our field → its column, or columns) names one that is not among `have`, the
    row's keys (or a table's column names, checked once per file): a mapped column must exist, as a CSV's must
    be in its header, the optional ones (id, subject, domain, skill) too. Falling back silently to the row's
    own `answer` or `question`, as it did, read another column than the one the user named."""
    present = set(have)
    for key, source in columns.items():
        for column in column_list(source):
            if column not in present:
                shown = ", ".join(list(have)[:8]) + (", …" if len(have) > 8 else "")
                holder = "the row has" if row_no is not None else "the file has"
                raise DataError(where, row_no, column, f"no such column (the column mapping names it for {key}); "
                                f"{holder} {shown or 'none'}")


def mapped_record(row: Mapping[str, Any], columns: Mapping[str, Any] | None, where: str = "<records>",
            row_no: int | None = None) -> dict[str, Any]:
    """One foreign record as QAItem fields: `columns` renames (our field → its column; every column it names
    must be in the row, `require_columns`, errors naming `where` and `row_no`); our own field names are taken
    as they are; otherwise a usual name stands in (`stem`/`query`/`question_stem` for the question,
    `label`/`answerKey`/`gold` for the answer); Hugging Face's `{"text": [...], "label": [...]}` choices
    (ARC, CommonsenseQA, OpenBookQA) are unpacked by `_choice_list`. Any other column is kept in `metadata`."""
    row = {str(k): _plain(v) for k, v in row.items()}
    out: dict[str, Any] = {}
    used: set[str] = set()
    if columns:
        require_columns(where, row_no, columns, list(row))
    for key, source in (columns or {}).items():
        if key in LIST_FIELDS and not isinstance(source, str):
            out[key] = [row[c] for c in source]
            used.update(source)
        else:
            out[key] = row[source]
            used.add(source)
    for key in QAItem.model_fields:
        if key not in out and key in row:
            out[key] = row[key]
            used.add(key)
    for key, names in (("question", QUESTION_NAMES + ("question_stem",)), ("choices", CHOICE_LIST_NAMES),
                       ("answer", ANSWER_NAMES + ("gold",))):
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


_GIVES_OPTIONS = {*CHOICE_LIST_NAMES, "wrong"}


def guessed_columns(keys: Sequence[str]) -> dict[str, Any] | None:
    """The mapping a row's keys imply when they hold no options list: option columns (A..D, choice_1..) or a
    right answer with wrong answers, guessed as a CSV header is (`columns.guess_columns`), so a DataFrame reads
    as the CSV file it was loaded from. None when the row names a list of options itself (`mapped_record` takes it)
    or the guess finds no option columns: a guess that leaves the options in the question text (ARC's CSV
    layout) is for a file's rows, not a record's."""
    if any(str(k).strip().lower() in _GIVES_OPTIONS for k in keys):
        return None
    guess = guess_columns([str(k) for k in keys])
    if guess is None or not (isinstance(guess.get("choices"), list) or "wrong" in guess):
        return None
    return guess


def _no_options(where: str, number: int, keys: Sequence[str]) -> DataError:
    """The error for a row with no options at all: said as such, not as an answer 'beyond the 0 options'."""
    shown = ", ".join(str(k) for k in list(keys)[:8]) + (", …" if len(keys) > 8 else "")
    return DataError(where, number, "choices", f"no options column; the row has {shown or 'no columns'} — pass "
                     "columns={'question': …, 'choices': [the option columns], 'answer': …}")


def from_records(records: Iterable[Mapping[str, Any]], *, columns: Mapping[str, Any] | str | None = None,
                 name: str = "records", source: str | None = None) -> Dataset:
    """Rows as mappings (a list of dicts, a DataFrame's records, a Hugging Face split) as a Dataset:
    the same row checks as a file, errors naming `source`, the row (1-based) and the field.

    Without `columns`, rows with no options list have their columns guessed as a CSV header's are
    (`guessed_columns`): the DataFrame `pd.read_csv` made of a file with Stem, A, B, C, D, Key reads as that
    file does. A first row still without options is refused as such (`_no_options`), whatever `on_invalid`
    says: it is the table's columns that are wrong. A later row without options is that row's problem, as in a
    file. `columns` may be the CLI's `--columns` text."""
    columns = check_columns(columns) if columns else None
    where = source or f"<{name}>"
    guesses: dict[tuple[str, ...], dict[str, Any] | None] = {}  # per set of keys: a DataFrame's rows share one

    def rows() -> Iterator[dict[str, Any]]:
        for number, row in enumerate(records, start=1):
            if not isinstance(row, Mapping):
                raise DataError(where, number, None, f"expected a mapping per row, got {type(row).__name__}")
            mapping = columns
            if mapping is None:
                keys = tuple(str(k) for k in row)
                if keys not in guesses:
                    guesses[keys] = guessed_columns(keys)
                mapping = guesses[keys]
            out = mapped_record(row, mapping, where, number)
            if number == 1 and "choices" not in out and "wrong" not in out:
                raise _no_options(where, number, [str(k) for k in row])  # the table's columns, not a row
            yield out  # a later row without options is that row's problem (quarantined or refused by on_invalid)

    return rows_to_dataset(rows(), where, name)
