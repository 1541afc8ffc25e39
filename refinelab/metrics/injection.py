"""Planted errors of the MMLU-Redux taxonomy, for calibrating screening on a user's own items.

Each generator takes a (presumably clean) item and returns a copy that carries one known error, or None
when the item cannot carry it (e.g. too few options). The copy is a valid `QAItem` (distinct options, key
in range), so it goes through screening exactly like real data; its id says what was planted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from refinelab.schema import QAItem

Injector = Callable[[QAItem, random.Random, Sequence[str]], QAItem | None]

_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")


def _valid(item: QAItem, **update: object) -> QAItem | None:
    try:
        return QAItem.model_validate(item.model_dump() | update)
    except ValueError:
        return None


def _tagged(item: QAItem, kind: str) -> str:
    return f"{item.id}#inject:{kind}"


def wrong_key(item: QAItem, rng: random.Random, pool: Sequence[str]) -> QAItem | None:
    """wrong_groundtruth: the key moves to a wrong option."""
    others = [i for i in range(len(item.choices)) if i != item.answer]
    if not others:
        return None
    return _valid(item, id=_tagged(item, "wrong_groundtruth"), answer=rng.choice(others),
                  metadata={**item.metadata, "injected": "wrong_groundtruth", "true_answer": item.answer})


def no_correct_option(item: QAItem, rng: random.Random, pool: Sequence[str]) -> QAItem | None:
    """no_correct_answer: the key's text is replaced by a wrong answer taken from another item's options."""
    present = {c.strip().lower() for c in item.choices}
    candidates = [t for t in pool if t.strip().lower() not in present and t.strip()]
    if not candidates:
        return None
    choices = list(item.choices)
    choices[item.answer] = rng.choice(candidates)
    return _valid(item, id=_tagged(item, "no_correct_answer"), choices=choices,
                  metadata={**item.metadata, "injected": "no_correct_answer"})


def restated(text: str) -> str:
    """A restatement of an option that keeps its meaning (a number in another format; words reworded)."""
    if _NUMBER.match(text):
        value = float(text)
        return f"{value:.2f}" if "." not in text else f"{value:g}" if f"{value:g}" != text.strip() else f"{value:.3f}"
    stripped = text.strip().rstrip(".")
    return f"Essentially, {stripped[0].lower()}{stripped[1:]}" if stripped else text


def second_right_option(item: QAItem, rng: random.Random, pool: Sequence[str]) -> QAItem | None:
    """multiple_correct_answers: a distractor is replaced by a restatement of the key."""
    others = [i for i in range(len(item.choices)) if i != item.answer]
    if not others:
        return None
    choices = list(item.choices)
    choices[rng.choice(others)] = restated(item.choices[item.answer])
    return _valid(item, id=_tagged(item, "multiple_correct_answers"), choices=choices,
                  metadata={**item.metadata, "injected": "multiple_correct_answers"})


def near_duplicate_options(item: QAItem, rng: random.Random, pool: Sequence[str]) -> QAItem | None:
    """bad_options_clarity: one distractor becomes a restatement of another, so two options say the same."""
    others = [i for i in range(len(item.choices)) if i != item.answer]
    if len(others) < 2:
        return None
    source, target = rng.sample(others, 2)
    choices = list(item.choices)
    choices[target] = restated(item.choices[source])
    return _valid(item, id=_tagged(item, "bad_options_clarity"), choices=choices,
                  metadata={**item.metadata, "injected": "bad_options_clarity"})


def cut_stem(item: QAItem, rng: random.Random, pool: Sequence[str]) -> QAItem | None:
    """bad_question_clarity: the stem is cut to its first ~40% of words, so the question is ambiguous."""
    words = item.question.split()
    if len(words) < 6:
        return None
    keep = max(3, int(len(words) * 0.4))
    return _valid(item, id=_tagged(item, "bad_question_clarity"), question=" ".join(words[:keep]) + " …",
                  metadata={**item.metadata, "injected": "bad_question_clarity"})


INJECTORS: dict[str, Injector] = {
    "wrong_groundtruth": wrong_key,
    "no_correct_answer": no_correct_option,
    "multiple_correct_answers": second_right_option,
    "bad_options_clarity": near_duplicate_options,
    "bad_question_clarity": cut_stem,
}


def inject(items: Sequence[QAItem], seed: int = 0, kinds: Sequence[str] | None = None) -> list[QAItem]:
    """One planted copy per item, the error types taken in turn (each item's first type it can carry)."""
    rng = random.Random(seed)
    names = list(kinds or INJECTORS)
    pool = [c for it in items for c in it.choices]
    out: list[QAItem] = []
    for index, item in enumerate(items):
        for shift in range(len(names)):
            planted = INJECTORS[names[(index + shift) % len(names)]](item, rng, pool)
            if planted is not None:
                out.append(planted)
                break
    return out
