"""The data model every part of RefineLab shares: one QA item, a dataset, and one diagnostic shape."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from refinelab.identifiers import clean_id, skeleton
from refinelab.safeload import MAX_DEPTH, json_plain

MIN_CHOICES = 2
MAX_CHOICES = 10
# a single question or option longer than this is junk, not data: refused from a file and from a model alike,
# so a refined set always reads back
MAX_FIELD_CHARS = 100_000
LETTERS = "ABCDEFGHIJ"
UNLABELLED = "(unlabelled)"  # the domain or skill of an item that has no label, so it stays visible
CELL_SEP = "|"


class Cell(NamedTuple):
    """A coverage cell: domain x skill. A tuple in memory; `key` is its one string spelling (JSON keys,
    the planner's instance, reports) and `Cell.parse` reads it back. Unlabelled parts read UNLABELLED."""

    domain: str
    skill: str

    @classmethod
    def of(cls, domain: str | None, skill: str | None) -> Cell:
        return cls(domain or UNLABELLED, skill or UNLABELLED)

    @classmethod
    def parse(cls, key: str) -> Cell:
        domain, _, skill = key.partition(CELL_SEP)
        return cls(domain, skill)

    @property
    def key(self) -> str:
        return f"{self.domain}{CELL_SEP}{self.skill}"


def normalise_text(text: str) -> str:
    """Canonical form used to compare choices and questions (case, accents, spacing, end punctuation)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" .")


def _defang(text: str) -> str:
    return re.sub(r"<{3,}", "< < <", re.sub(r">{3,}", "> > >", text))


class Provenance(BaseModel):
    """Where an item came from and what touched it, so every edit can be audited."""

    model_config = ConfigDict(extra="forbid")

    source: str = ""  # file path or dataset name
    row: int | None = None  # 1-based line/row in the source
    created_by: str = "original"  # "original" or the operation that wrote it (expand, generate, ...)
    parent_id: str | None = None  # the item this one was derived from
    run_id: str | None = None
    # the operation that checked the item and kept its text unchanged on evidence (a fix whose key the
    # validator's sources backed): the item is the source's, its key no longer in doubt
    confirmed_by: str | None = None


_OPTION_LABEL = re.compile(r"^\(?([A-J])[.):]\s*")


def strip_option_labels(choices: list[str]) -> list[str]:
    """Options without the "A. " / "B)" labels written into them (models copy the rendered item's labels;
    AQuA's files carry "A)5", "B)6"); only when every option carries its own letter in order, so an option
    that merely starts with "A." is left alone (and `choices` is returned as given)."""
    matches = [_OPTION_LABEL.match(c.strip()) for c in choices]
    if choices and all(m and m.group(1) == LETTERS[i] for i, m in enumerate(matches)):
        return [c.strip()[m.end():].strip() for c, m in zip(choices, matches, strict=True)]  # type: ignore[union-attr]
    return list(choices)


class QAItem(BaseModel):
    """One multiple-choice question. `answer` is a 0-based index into `choices`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    choices: list[str]
    answer: int
    subject: str = ""
    domain: str = ""
    skill: str = ""
    difficulty: float | None = None  # a score in [0, 1] once profiled (1 = hardest)
    metadata: dict[str, Any] = Field(default_factory=dict)
    provenance: Provenance = Field(default_factory=Provenance)

    @field_validator("id")
    @classmethod
    def _id_plain(cls, value: str) -> str:
        return clean_id(value)  # NFKC; no control/format characters or mixed-script look-alikes

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is blank")
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"longer than {MAX_FIELD_CHARS} characters")
        return value

    @field_validator("choices")
    @classmethod
    def _choices_valid(cls, value: list[str]) -> list[str]:
        if not MIN_CHOICES <= len(value) <= MAX_CHOICES:
            raise ValueError(f"expected {MIN_CHOICES}-{MAX_CHOICES} choices, got {len(value)}")
        for index, text in enumerate(value):
            if len(str(text)) > MAX_FIELD_CHARS:
                raise ValueError(f"choice {LETTERS[index]} is longer than {MAX_FIELD_CHARS} characters")
        normalised = [normalise_text(str(c)) for c in value]
        for index, text in enumerate(normalised):
            if not text:
                raise ValueError(f"choice {LETTERS[index]} is empty")
        duplicates = [c for c, n in Counter(normalised).items() if n > 1]
        if duplicates:
            # the message is also a retry's feedback (agents/refiner.py): a small writer told the repeated
            # option's text wrote it again on every retry, and told its letters ("C and D") wrote bare letters
            same = sum(text == duplicates[0] for text in normalised)
            raise ValueError(f"choices are not distinct after normalisation ({same} options are the same)")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_plain(cls, value: dict[str, Any]) -> dict[str, Any]:
        return json_plain(value, limit=MAX_DEPTH - 1)  # one level below the item's own object

    @field_validator("difficulty")
    @classmethod
    def _difficulty_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {value}")
        return value

    @model_validator(mode="after")
    def _answer_in_range(self) -> QAItem:
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer index {self.answer} out of range for {len(self.choices)} choices")
        return self

    @property
    def answer_text(self) -> str:
        return self.choices[self.answer]

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer]

    @property
    def cell(self) -> Cell:
        """The item's coverage cell."""
        return Cell.of(self.domain, self.skill)

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """The question and its options up to case, spacing and the options' order: two items with one
        fingerprint are duplicates (a repeated item in a set, a copy of it in another)."""
        return (normalise_text(self.question), *sorted(normalise_text(c) for c in self.choices))

    def same_text(self, other: QAItem) -> bool:
        """Whether `other` asks the same question with the same options and key (up to case and spacing):
        an edit that returns this is no edit."""
        return (normalise_text(self.question) == normalise_text(other.question)
                and [normalise_text(c) for c in self.choices] == [normalise_text(c) for c in other.choices]
                and self.answer == other.answer)

    def render(self) -> str:
        """The item as a model sees it: stem then lettered options.

        Prompts fence item text as data between <<< and >>>; those markers are broken up inside the
        text so an item cannot close its own fence and speak as the prompt.
        """
        options = "\n".join(f"{LETTERS[i]}. {_defang(c)}" for i, c in enumerate(self.choices))
        return f"{_defang(self.question)}\n{options}"


class DuplicateReport(BaseModel):
    """Duplicates found in a dataset; reported, not fatal."""

    duplicate_ids: list[str] = Field(default_factory=list)
    duplicate_questions: list[list[str]] = Field(default_factory=list)  # groups of ids


class Dataset:
    """An ordered collection of items with unique ids."""

    def __init__(self, items: Iterable[QAItem], name: str = "dataset") -> None:
        self.items: list[QAItem] = list(items)
        self.name = name
        self.rejected: list[Any] = []  # DataErrors of rows skipped in quarantine mode

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[QAItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> QAItem:
        return self.items[index]

    def __repr__(self) -> str:
        # the default `<Dataset object at 0x…>` said nothing in a notebook; the items themselves are too many
        rejected = f", rejected={len(self.rejected)}" if self.rejected else ""
        return f"Dataset(name={self.name!r}, items={len(self.items)}, subjects={len(self.subjects())}{rejected})"

    def to_pandas(self) -> Any:
        """The items as a pandas DataFrame with the columns of `RunResult.to_hf()` (every QAItem field;
        `choices` a list, `metadata` and `provenance` JSON text), so a set reads the same whichever export made
        it. pandas is not a dependency of RefineLab: it is imported here, and its absence said plainly."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Dataset.to_pandas() needs pandas: pip install pandas") from exc
        rows = []
        for item in self.items:
            row = item.model_dump(mode="json")
            row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
            row["provenance"] = json.dumps(row["provenance"], ensure_ascii=False)
            rows.append(row)
        return pd.DataFrame(rows, columns=list(QAItem.model_fields))

    def by_id(self) -> dict[str, QAItem]:
        return {item.id: item for item in self.items}

    def subjects(self) -> Counter[str]:
        return Counter(item.subject or "(none)" for item in self.items)

    def duplicates(self) -> DuplicateReport:
        ids = Counter(skeleton(item.id) for item in self.items)  # look-alike ids count as duplicates
        groups: dict[tuple[str, ...], list[str]] = {}
        for item in self.items:
            groups.setdefault(item.fingerprint, []).append(item.id)
        return DuplicateReport(
            duplicate_ids=sorted({item.id for item in self.items if ids[skeleton(item.id)] > 1}),
            duplicate_questions=[g for g in groups.values() if len(g) > 1],
        )

    def filter(self, subjects: Iterable[str] | None = None, limit: int | None = None) -> Dataset:
        """A subset by subject, then the first `limit` items spread evenly over the subjects."""
        items = self.items
        if subjects:
            wanted = set(subjects)
            missing = wanted - {i.subject for i in items}
            if missing:
                raise ValueError(f"subjects not in dataset: {sorted(missing)}")
            items = [i for i in items if i.subject in wanted]
        rejected = [e for e in self.rejected if not subjects or _source_subject(e) in set(subjects)]
        if limit is not None and limit < len(items):
            by_subject: dict[str, list[QAItem]] = {}
            for item in items:
                by_subject.setdefault(item.subject, []).append(item)
            picked: list[QAItem] = []
            queues = list(by_subject.values())
            position = 0
            while len(picked) < limit:
                for queue in queues:
                    if position < len(queue) and len(picked) < limit:
                        picked.append(queue[position])
                position += 1
            rejected = _read_before(rejected, picked, items)
            items = picked
        subset = Dataset(items, name=self.name)
        subset.rejected = rejected
        return subset


def _read_before(rejected: list[Any], picked: list[QAItem], available: list[QAItem]) -> list[Any]:
    """The rejected rows (DataErrors: `path`, `row`) a `limit` that picked `picked` out of `available` (the
    items of the chosen subjects, in file order) counts as its own: those above the first valid row of
    their file it left out, every one of a file it took whole. Counting the rows further down made a
    30-item run report the whole file's invalid rows. Errors without a row (the whole file) are kept."""
    chosen = {id(item) for item in picked}
    first_left_out: dict[str, int] = {}
    for item in available:
        if id(item) not in chosen and item.provenance.row is not None:
            first_left_out.setdefault(item.provenance.source, item.provenance.row)
    return [e for e in rejected if e.row is None or e.row < first_left_out.get(e.path, e.row + 1)]


def _source_subject(error: Any) -> str:
    """The subject a rejected row belongs to, from its file name (MMLU layout: SUBJECT_test.csv)."""
    stem = str(getattr(error, "path", "")).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"_(test|dev|val)$", "", stem)


class Diagnostic(BaseModel):
    """One quality check's verdict on one item: the shape every check shares (flag, score, evidence)."""

    item_id: str
    check: str  # e.g. "coverage", "difficulty", "error", "distractors"
    flag: bool
    score: float = Field(ge=0.0, le=1.0)
    evidence: dict[str, Any] = Field(default_factory=dict)
