"""Column mappings: which of a file's columns hold the question, the options and the key (`--columns`
parsed, checked, or guessed from a header), and the usual names that stand in for ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from refinelab.errors import ConfigError
from refinelab.io.reading import _short

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
