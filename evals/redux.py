"""Reader for MMLU-Redux's human-labelled error CSVs and its injected-error (corruption) sets.

The files are read as published, so this module absorbs their quirks (see shared/data/SOURCES.md):
`;` or `,` delimiters (decided from the header line; csv.Sniffer guesses wrong on long quoted rows),
one cp1252 file, columns in different orders (read by name), an extra empty column, label spellings
that vary (`Wrong Groundtruth`, `wrong_groundtruth `, `OK`), and — in the corruption sets — choices
written as numpy array reprs (`['a' 'b'\\n 'c']`, no commas) and keys such as `n/a`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refinelab.errors import DataError
from refinelab.metrics.error_checks import ERROR_TYPES, parse_answer
from refinelab.safeload import list_literal
from refinelab.schema import QAItem

# ../shared/data/mmlu_redux next to the repository; REFINELAB_MMLU_REDUX points elsewhere
DEFAULT_ROOT = Path(os.environ.get("REFINELAB_MMLU_REDUX", Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu_redux"))
EXPERT = "expert"  # MMLU-Redux label: needs expert knowledge to judge; not one of the five error types

_LABELS = {re.sub(r"[\s_]+", "", t): t for t in ERROR_TYPES} | {"ok": "ok", EXPERT: EXPERT}
_LABELS["wronggroundtruth"] = "wrong_groundtruth"
CORRUPTION_CODES = {"BOC": "bad_options_clarity", "BQC": "bad_question_clarity", "MCA": "multiple_correct_answers",
                    "NCA": "no_correct_answer", "WG": "wrong_groundtruth"}


def normalise_label(raw: str | None) -> str:
    """Canonical error type id: 'Wrong Groundtruth', 'wrong_groundtruth ', 'wronggroundtruth' → 'wrong_groundtruth'."""
    key = re.sub(r"[\s_]+", "", (raw or "").strip().lower())
    if key not in _LABELS:
        raise ValueError(f"unknown MMLU-Redux error label {raw!r}")
    return _LABELS[key]


def parse_choices(text: str) -> list[str]:
    """Choices from a Python list repr (`['a', 'b']`, `["a","b"]`) or a numpy array repr (`['a' 'b']`): the
    product's reader of such cells (`safeload.list_literal`, which CSV choices columns use), with a ValueError."""
    try:
        return list_literal(text, "choices")
    except DataError as exc:
        raise ValueError(str(exc)) from None


@dataclass
class ReduxItem:
    """One labelled row. `answer` is None when the file's key is not an index (e.g. `n/a`)."""

    id: str
    subject: str
    question: str
    choices: list[str]
    answer: int | None
    error_type: str  # "ok", one of ERROR_TYPES, or "expert"
    origin: str  # file path
    row: int  # 1-based data row in the file (header excluded)
    split: str  # "dev" | "corruption"
    correct_answer: str = ""  # annotator's proposed answer (dev) as written
    source: str = ""
    potential_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        """Gold binary label: one of the five error types ("expert" and "ok" are not errors)."""
        return self.error_type in ERROR_TYPES

    def to_row(self) -> dict[str, Any]:
        """Raw row for `error_checks.check_row`, which must also cope with broken items."""
        return {"id": self.id, "question": self.question, "choices": list(self.choices), "answer": self.answer}

    def to_qaitem(self) -> QAItem | None:
        """A validated QAItem, or None when the row is not a valid item (duplicate options, no key, ...)."""
        try:
            return QAItem(id=self.id, question=self.question, choices=self.choices, answer=self.answer,
                          subject=self.subject, metadata={"redux_error_type": self.error_type})
        except ValueError:
            return None


def read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows keyed by lower-cased header name, whatever the delimiter, encoding or column order."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for number, record in enumerate(reader, start=1):
        yield number, {(k or "").strip().lower(): (v or "") for k, v in record.items() if k and k.strip()}


def read_redux_file(path: str | Path, subject: str | None = None) -> list[ReduxItem]:
    """One `mmlu_<subject>.csv` file of human labels."""
    path = Path(path)
    subject = subject or path.stem.removeprefix("mmlu_")
    items = []
    for number, rec in read_csv_rows(path):
        for column in ("question", "choices", "answer", "error_type"):
            if column not in rec:
                raise ValueError(f"{path}: missing column {column!r} (have {sorted(rec)})")
        try:
            choices = parse_choices(rec["choices"])
            label = normalise_label(rec["error_type"])
        except ValueError as exc:
            raise ValueError(f"{path}: row {number}: {exc}") from exc
        known = {"question", "choices", "answer", "error_type", "correct_answer", "source", "potential_reason"}
        items.append(ReduxItem(
            id=f"redux:{subject}:{number:03d}", subject=subject, question=rec["question"], choices=choices,
            answer=parse_answer(rec["answer"], len(choices)), error_type=label, origin=str(path), row=number,
            split="dev", correct_answer=rec.get("correct_answer", "").strip(), source=rec.get("source", "").strip(),
            potential_reason=rec.get("potential_reason", "").strip(),
            extra={k: v for k, v in rec.items() if k not in known and v},
        ))
    return items


def read_redux_dev(root: str | Path | None = None, subjects: Iterable[str] | None = None) -> list[ReduxItem]:
    """All (or the named) subjects of `mmlu_redux/dev`, sorted by subject then row."""
    folder = Path(root) if root is not None else DEFAULT_ROOT / "dev"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: MMLU-Redux dev folder not found")
    files = sorted(folder.glob("mmlu_*.csv"))
    if subjects is not None:
        wanted = set(subjects)
        have = {f.stem.removeprefix("mmlu_") for f in files}
        if wanted - have:
            raise ValueError(f"subjects not in {folder}: {sorted(wanted - have)}")
        files = [f for f in files if f.stem.removeprefix("mmlu_") in wanted]
    return [item for f in files for item in read_redux_file(f)]


def read_corruption_file(path: str | Path) -> list[ReduxItem]:
    """One `corruption_test_<CODE>.csv`: every row carries the injected error of that file."""
    path = Path(path)
    code = path.stem.rsplit("_", 1)[-1].upper()
    items = []
    for number, rec in read_csv_rows(path):
        try:
            choices = parse_choices(rec["choices"])
            label = normalise_label(rec.get("corruptions") or CORRUPTION_CODES.get(code, ""))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}: row {number}: {exc}") from exc
        known = {"question", "choices", "answer", "corruptions", "subject"}
        subject = rec.get("subject", "").strip()
        items.append(ReduxItem(
            id=f"corruption:{code}:{number:03d}", subject="" if subject == "n/a" else subject,
            question=rec["question"], choices=choices, answer=parse_answer(rec["answer"], len(choices)),
            error_type=label, origin=str(path), row=number, split="corruption",
            extra={k: v for k, v in rec.items() if k not in known and v},
        ))
    return items


def read_corruption_tests(root: str | Path | None = None) -> list[ReduxItem]:
    """All five injected-error sets (BOC, BQC, MCA, NCA, WG), 100 items each as published."""
    folder = Path(root) if root is not None else DEFAULT_ROOT / "corruption_tests"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: corruption_tests folder not found")
    return [item for f in sorted(folder.glob("corruption_test_*.csv")) for item in read_corruption_file(f)]
