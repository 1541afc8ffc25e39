"""Which of the set's items the expand writer is shown as "examples of the style".

A new item counts only in the cell its measured label puts it in (agents/validation/measured.py). With the
template's subject's first items as examples (`RunOptions.expand_examples="subject"`), the writer imitates
items whatever skill they test, and the 1.5B's drafts written for reasoning were kept as reasoning 13% of
the time, comprehension 26% (evals/results/expand_landing.md). `"skill"` shows items the profile labelled
with the skill the cell is short of, nearest first: the subject's own, then its domain's, then any
subject's; the subject's items fill in when the set has too few. Real items of the set, so a copy is
refused by the near-duplicate check as any copy is; the taxonomy's example stems are never shown (a 1.5B
writer copied them verbatim).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from refinelab.schema import QAItem

ExampleChoice = Literal["subject", "skill"]


def subject_examples(items: Sequence[QAItem], subject: str, exclude: str, limit: int = 2) -> list[QAItem]:
    """The first `limit` items of `subject` other than `exclude`, in the set's order."""
    return [i for i in items if i.subject == subject and i.id != exclude][:limit]


def skill_examples(items: Sequence[QAItem], subject: str, domain: str, skill: str, exclude: str,
                   limit: int = 2) -> list[QAItem]:
    """Up to `limit` items labelled `skill`: of `subject` first, then of `domain`, then any; the subject's
    other items fill the rest. Ties keep the set's order, so a batch's prompt is the same on a replay."""
    others = [i for i in items if i.id != exclude]
    tiers = ([i for i in others if i.skill == skill and subject and i.subject == subject],
             [i for i in others if i.skill == skill and domain and i.domain == domain],
             [i for i in others if i.skill == skill],
             [i for i in others if subject and i.subject == subject])
    chosen: dict[str, QAItem] = {}  # by id: a tier repeats the items of the tiers before it
    for tier in tiers:
        for item in tier:
            if len(chosen) == limit:
                return list(chosen.values())
            chosen.setdefault(item.id, item)
    return list(chosen.values())


def style_examples(choice: ExampleChoice, items: Sequence[QAItem], subject: str, domain: str, skill: str,
                   exclude: str, limit: int = 2) -> list[QAItem]:
    """The examples an expand prompt shows under `choice` (`RunOptions.expand_examples`)."""
    if choice == "skill" and skill:
        return skill_examples(items, subject, domain, skill, exclude, limit)
    return subject_examples(items, subject, exclude, limit)
