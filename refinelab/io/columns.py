"""Column mappings: which of a file's columns hold the question, the options and the key (`--columns`
parsed, checked, or guessed from a header), and the usual names that stand in for ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from refinelab.errors import ConfigError
from refinelab.io.reading import short_repr

COLUMN_FIELDS = ("question", "choices", "answer", "wrong", "id", "subject", "domain", "skill")
LIST_FIELDS = ("choices", "wrong")  # fields that may name several columns


QUESTION_NAMES = ("question", "stem", "prompt", "query", "input")


ANSWER_NAMES = ("answer", "answerkey", "answer_key", "answer_idx", "answer_index", "label", "correct", "target",
                 "key")


CHOICE_LIST_NAMES = ("choices", "options", "answers_list")


_ID_NAMES = ("id", "questionid", "question_id")


# A generation set's columns (TruthfulQA's CSV: Question, Best Answer, Correct Answers, Incorrect Answers):
# the right answer's text and the wrong answers, mapped as `answer` and `wrong` (`reading.options_from_key`)
_WRONG_NAMES = ("incorrect answers", "incorrect_answers", "wrong answers", "wrong_answers", "distractors")
_BEST_ANSWER_NAMES = ("best answer", "best_answer", "correct answer", "correct_answer", "answer")


_CHOICE_COLUMN = re.compile(r"^(?:choice|option|opt|ans)?[ _-]?([a-j]|[0-9])$", re.IGNORECASE)


def column_list(value: str | Sequence[str]) -> list[str]:
    """A mapping's column or columns (`choices="opts"` or `choices=["A", "B"]`) as a list of column names."""
    return [value] if isinstance(value, str) else list(value)


def check_columns(mapping: Mapping[str, Any] | str) -> dict[str, Any]:
    """A column mapping (our field → source column, `choices` or `wrong` → one column or a list) checked: the
    required fields present (question, answer, and choices or else wrong: the wrong answers, with `answer`
    the right one's text), no unknown field. Raises `ConfigError` naming the problem.

    The CLI's text (`question=Stem,choices=A,B,C,D,answer=Key`) is read by `parse_columns`, as `--columns`
    is: a notebook user copies it from the docs, and iterating the string reported "unknown field 'q'".
    Anything else that is no mapping (a list of column names) is refused in one line."""
    if isinstance(mapping, str):
        return parse_columns(mapping)
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"column mapping: expected a mapping of our field to its column, e.g. "
                          f"{{'question': 'Stem', 'choices': ['A', 'B', 'C', 'D'], 'answer': 'Key'}} (or the text "
                          f"'question=Stem,choices=A,B,C,D,answer=Key'), got {type(mapping).__name__}")
    unknown = [k for k in mapping if k not in COLUMN_FIELDS]
    if unknown:
        raise ConfigError(f"column mapping: unknown field {unknown[0]!r}; fields are {', '.join(COLUMN_FIELDS)}")
    if mapping.get("choices") and mapping.get("wrong"):
        raise ConfigError("column mapping: give 'choices' (every option) or 'wrong' (the wrong answers, with "
                          "'answer' the right one's text), not both")
    required = ("question", "wrong" if mapping.get("wrong") else "choices", "answer")
    missing = [k for k in required if not mapping.get(k)]
    if missing:
        raise ConfigError(f"column mapping: {missing[0]!r} is required (question, choices, answer; or question, "
                          "answer, wrong)")
    for key, value in mapping.items():
        ok = isinstance(value, str) if key not in LIST_FIELDS else (
            isinstance(value, str) or (isinstance(value, Sequence) and all(isinstance(v, str) for v in value)))
        if not ok:
            raise ConfigError(f"column mapping: {key!r} must name a column, got {short_repr(value)}")
    return dict(mapping)


def parse_columns(text: str) -> dict[str, str | list[str]]:
    """`question=Q,choices=A,B,C,D,answer=Key` (the CLI's `--columns`) as a mapping: a part without `=`
    continues the list of the field before it, so `choices=A,B,C,D` names four columns (`wrong=` likewise)."""
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
            mapping[last] = value.strip() if last not in LIST_FIELDS else [value.strip()]
        elif last in LIST_FIELDS:
            mapping[last].append(part)  # type: ignore[union-attr]
        else:
            raise ConfigError(f"--columns: expected FIELD=COLUMN, got {part!r}")
    for key in LIST_FIELDS:
        if isinstance(mapping.get(key), list) and len(mapping[key]) == 1:
            mapping[key] = mapping[key][0]  # one column holding the list
    return check_columns(mapping)


def guess_columns(header: Sequence[str]) -> dict[str, Any] | None:
    """The mapping a header implies (question/stem, A..D or choice_1.. or a `choices` list column,
    answer/label; id, subject, domain, skill when named so), or None when it names no question and answer.
    A header with no options but a right answer and wrong answers (TruthfulQA's `Best Answer` and
    `Incorrect Answers`) maps them as `answer` and `wrong`."""
    lower = {h.strip().lower(): h for h in header}

    def first(names: Sequence[str]) -> str | None:
        return next((lower[n] for n in names if n in lower), None)

    question, answer = first(QUESTION_NAMES), first(ANSWER_NAMES)
    lists = first(CHOICE_LIST_NAMES)
    columns = [h for h in header if h not in (question, answer) and _CHOICE_COLUMN.match(h.strip())]
    wrong, best = first(_WRONG_NAMES), first(_BEST_ANSWER_NAMES)
    mapping: dict[str, Any]
    if question is not None and wrong is not None and best is not None and not lists and len(columns) < 2:
        mapping = {"question": question, "answer": best, "wrong": wrong}
    elif question is None or answer is None:
        return None
    else:
        # no option columns: the options may be written into the question, as ARC's CSV files do ("… (A) x
        # (B) y"); each row is then split, or refused naming the row
        choices: str | list[str] = lists or (columns if len(columns) >= 2 else question)
        mapping = {"question": question, "choices": choices, "answer": answer}
    if (id_column := first(_ID_NAMES)) is not None:
        mapping["id"] = id_column
    for key in ("subject", "domain", "skill"):
        if key in lower:
            mapping[key] = lower[key]
    if "subject" not in mapping and "category" in lower:  # TruthfulQA's, and many a set's, name for it
        mapping["subject"] = lower["category"]
    return mapping
