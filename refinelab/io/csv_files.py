"""CSV: MMLU's headerless layout (subject from the file name) and CSV files with a header (columns guessed
or mapped; `,`, `;` or tab delimited; options written into the question split out).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinelab.errors import DataError, SplitNeeded
from refinelab.io.columns import ANSWER_NAMES, QUESTION_NAMES, check_columns, column_list, guess_columns
from refinelab.io.folders import other_data_files_note, sub_folder_names, without_split_word
from refinelab.io.reading import (
    SplitIds,
    answer_index,
    build_or_quarantine,
    checked_whole,
    file_stem,
    format_suffix,
    make_item,
    options_from_key,
    read_file_bytes,
    read_file_text,
    short_repr,
)
from refinelab.safeload import list_literal, loads_json
from refinelab.schema import LETTERS, MAX_FIELD_CHARS, Dataset, QAItem


def csv_folder_layout(path: Path, mapping: Mapping[str, Any] | None) -> str | None:
    """How a folder's CSV files are laid out: "mmlu" (no header: MMLU's question,A,B,C,D,answer files),
    "headered" (each names its columns, or `mapping` names them: ARC's CSV files), None without CSV files.
    A folder mixing the two is refused: which reader fits which file would be a guess."""
    files = sorted(f for f in path.iterdir() if f.is_file() and format_suffix(f) == ".csv")
    if not files:
        return None
    if mapping:
        return "headered"
    headered = [f for f in files if csv_has_header(f)]
    if headered and len(headered) < len(files):
        plain = next(f for f in files if f not in headered)
        raise DataError(str(path), None, None, f"mixes CSV files with a header ({headered[0].name}) and without "
                        f"one ({plain.name}, read as MMLU's layout); pass one file")
    return "headered" if headered else "mmlu"


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


def read_mmlu_csv(path: str | Path, *, ids: SplitIds | None = None) -> Dataset:
    """The original MMLU layout: no header, question,A,B,C,D,answer_letter; subject from the file name, and
    the id SUBJECT-ROW unless `ids` numbers a shard's rows across its split (`reading.SplitIds`)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            if not other_data_files_note(path) and (folders := sub_folder_names(path)):
                raise SplitNeeded(str(path), f"folder has no .csv files; it holds the folders {', '.join(folders[:8])}")
            raise DataError(str(path), None, None, f"folder has no .csv files{other_data_files_note(path)}")
        items = [item for file in files for item in read_mmlu_csv(file).items]
        return checked_whole(Dataset(items, name=path.name), path)
    subject = without_split_word(path)
    reader = csv.reader(io.StringIO(read_file_text(path), newline=""))
    items = []
    with _csv_problems(path, reader):
        for row_no, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 4:
                raise DataError(str(path), row_no, None,
                                f"expected question, 2+ choices and an answer letter; got {len(row)} columns")
            question, choices, letter = row[0], row[1:-1], row[-1]
            default_id = ids.next_id() if ids else f"{subject}-{row_no}"

            def build(row_no: int = row_no, question: str = question, choices: list[str] = choices,
                      letter: str = letter, width: int = len(row), default_id: str = default_id) -> QAItem:
                answer = answer_index(path, row_no, letter, len(choices), field=f"column {width} (answer)")
                return make_item(path, row_no, {
                    "id": default_id, "question": question, "choices": choices, "answer": answer,
                    "subject": subject,
                })

            if (item := build_or_quarantine(build)) is not None:
                items.append(item)
    return checked_whole(Dataset(items, name=subject), path)


def read_csv(path: str | Path, mapping: Mapping[str, Any] | None = None, *, ids: SplitIds | None = None) -> Dataset:
    """A CSV with a header. `mapping` names columns: question, choices (a list of columns, or one column
    holding a JSON list), answer, and optionally id, subject, domain, skill; or, for a generation set, answer
    (the right answer's text) and wrong (the wrong answers: columns, or one column joined by ';'). Without it
    the columns are guessed from the header (`guess_columns`), or a one-line error asks for `--columns`. A row
    without an id column is FILE-ROW, or numbered across its split when `ids` is a shard's (`reading.SplitIds`)."""
    path = Path(path)
    text = read_file_text(path)
    delimiter = _header_delimiter(path, text[:_HEADER_SNIFF_BYTES]) or ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    with _csv_problems(path, reader):
        header = reader.fieldnames or []
    if mapping is None:
        mapping = _mapping_from_header(path, header)
    mapping = check_columns(mapping)
    wrong_columns = column_list(mapping["wrong"]) if "wrong" in mapping else []
    choice_columns = column_list(mapping["choices"]) if "choices" in mapping else []
    wanted = [mapping["question"], *choice_columns, *wrong_columns, mapping["answer"]]
    wanted += [mapping[k] for k in ("id", "subject", "domain", "skill") if k in mapping]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(str(path), 1, missing[0], f"column missing from header {header}")
    items = []

    embedded = choice_columns == [mapping["question"]]  # the options are written into the question

    def build(row_no: int, row: dict[str, str | None], default_id: str) -> QAItem:
        if None in row:  # the csv module keys a long row's extra cells by None: an unquoted comma, most often
            raise DataError(str(path), row_no, None, f"more cells than the {len(header)} header columns "
                            "(a comma inside an unquoted cell?)")
        cut = next((c for c in wanted if row.get(c) is None), None)  # the csv module's filler for a short row
        if cut is not None:
            cells = sum(value is not None for value in row.values())
            raise DataError(str(path), row_no, cut, f"{cells} cells, the header has {len(header)}")
        item: dict[str, Any] = {"id": row[mapping["id"]] if "id" in mapping else default_id}
        if wrong_columns:  # the right answer's text and the wrong answers apart (TruthfulQA's CSV)
            wrong: Any = row[wrong_columns[0]] or "" if len(wrong_columns) == 1 else [row[c] for c in wrong_columns]
            choices, key = options_from_key(path, row_no, row[mapping["question"]], row[mapping["answer"]], wrong,
                                            (mapping["answer"], ", ".join(wrong_columns)))
            item |= {"question": row[mapping["question"]] or "", "choices": choices, "answer": key}
        elif embedded:
            stem, choices, labels = _embedded_options(path, row_no, row[mapping["question"]] or "", mapping["question"])
            key = (row[mapping["answer"]] or "").strip()
            if key not in labels:
                raise DataError(str(path), row_no, mapping["answer"],
                                f"{short_repr(key)} is not one of the option labels {labels}")
            item |= {"question": stem, "choices": choices, "answer": labels.index(key),
                     "metadata": {"answer_label": key}}
        else:
            choices = _csv_choices(path, row_no, row, choice_columns)
            item |= {"question": row[mapping["question"]] or "", "choices": choices,
                     "answer": answer_index(path, row_no, row[mapping["answer"]], len(choices), mapping["answer"])}
        for key in ("subject", "domain", "skill"):
            if key in mapping:
                item[key] = row[mapping[key]] or ""
        return make_item(path, row_no, item)

    with _csv_problems(path, reader):
        for row_no, row in enumerate(reader, start=2):
            default_id = ids.next_id() if ids else f"{file_stem(path)}-{row_no}"  # drawn by every row, valid or not
            if (item := build_or_quarantine(lambda: build(row_no, row, default_id))) is not None:  # noqa: B023
                items.append(item)
    return checked_whole(Dataset(items, name=file_stem(path)), path)


_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .-]{0,39}$")


def _looks_like_header(first_row: Sequence[str]) -> bool:
    """A header names a question or answer column we know, or is a row of short distinct column names
    whose last cell is no answer (an MMLU row ends in its answer letter and starts with a question)."""
    cells = [cell.strip() for cell in first_row]
    if any(c.lower() in QUESTION_NAMES or c.lower() in ANSWER_NAMES for c in cells):
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


def csv_has_header(path: Path) -> bool:
    """Whether the first record is a header, read from the file's first bytes only: the reader chosen then
    reads the whole file (and reports its encoding or content problems) once, not twice."""
    head = read_file_bytes(path, limit=_HEADER_SNIFF_BYTES).decode("utf-8", errors="replace").removeprefix("\ufeff")
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
