"""Structured outputs the agents ask models for. `maxLength` keeps small models from looping."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AnswerOut(BaseModel):
    """A model's answer to an item: a short reason first (it helps small models), then the letter."""

    reasoning: str = Field(max_length=300)
    answer: Literal["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]


class DistractorsOut(BaseModel):
    """A distractor writer's answer: wrong options only, never the stem or the key (a small model asked to
    re-emit the whole item copies it). The refiner over-asks and chooses among them."""

    distractors: list[str] = Field(min_length=1, max_length=12)


class ItemDraft(BaseModel):
    """A refiner's proposed item. The rationale comes before the key's index: a writer under a JSON-schema
    grammar writes the fields in this order, so it states which option is right and why before it gives
    the index. Asked so, the 1.5B writer's expand drafts were usable and favoured by the panel's probe
    25 of 48 times against 18 of 48 with the index first (evals/results/expand_reasonfirst.md); a whole
    50k run kept about as many new items as before (40 against 39, jsd_curve_reasonfirst_50k.md)."""

    question: str = Field(min_length=5, max_length=800)
    choices: list[str] = Field(min_length=2, max_length=10)
    rationale: str = Field(max_length=300)
    answer_index: int = Field(ge=0, le=9)
