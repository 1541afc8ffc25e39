"""Skill labels by constrained classification: the labeller must answer one skill of the taxonomy or
"unsure", shown few-shot examples of each skill, and its answer is never an empty cell.

Why constrained: asked for a free-text skill, a small model answers the first plausible word
("comprehension" for 28 of 30 MMLU items in one demo) or something outside the taxonomy, which was then
mapped to a default. Here the output schema is an enum of the taxonomy's names plus "unsure", so an
OpenAI-compatible server that honours JSON schemas (llama.cpp does, by grammar) can only emit a valid
label; an endpoint that ignores the schema and answers anything else gets "unsure", recorded as such.

Cheap evidence first, as the validator's router does: an item the regex signals call computable (numbers
and units in the stem, numeric options, compute verbs; `validation.routing.regex_route` says "pot") is
labelled `calculation` when the taxonomy has that skill, whatever the model said (its answer is kept as
`model_skill`). On a mixed set the signals flag 33 of 36 math word problems and none of 72 science,
commonsense, misconception or law/history items, while the 1.5B model called 11 of 12 math items
"comprehension" (evals/results/labels_small.md).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from refinelab.agents.context import AgentContext
from refinelab.agents.validation.routing import regex_route, route_signals
from refinelab.domains import UNSURE
from refinelab.errors import LLMCallFailed
from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.ledger import CallTag

COMPUTE_SKILL = "calculation"  # the taxonomy's name for items the regex signals call computable


@lru_cache(maxsize=16)
def label_schema(names: tuple[str, ...]) -> type[BaseModel]:
    """The labeller's output model for a taxonomy: skill as an enum of its names plus "unsure"."""
    skill_type: Any = Literal[(*names, UNSURE)]  # type: ignore[valid-type]
    return create_model("ItemLabelOut", skill=(skill_type, ...), difficulty=(int, Field(ge=1, le=5)))


def normalise_skill(raw: str, names: list[str]) -> str:
    """The taxonomy name `raw` denotes (case and spacing ignored), else "unsure"."""
    value = " ".join(str(raw).strip().lower().split())
    return value if value in names else UNSURE


def label_request(ctx: AgentContext, item: QAItem) -> tuple[list[dict[str, str]], type[BaseModel], CallTag]:
    """The label call's messages, output schema and tag: one definition, so a batch job (`--batch`) asks
    exactly what `classify_skill` then finds answered."""
    messages = ctx.pack(item).messages("profile_item", item=item, skills=ctx.skills.skills,
                                       skill_examples=ctx.skills.examples)
    return messages, label_schema(tuple(ctx.skills.names)), CallTag(node="profile", operation="label",
                                                                    item_id=item.id)


def classify_skill(ctx: AgentContext, item: QAItem, max_tokens: int) -> Diagnostic:
    """The label Diagnostic for one item (check="label"): skill, 1-5 rating, difficulty in [0, 1]."""
    names = ctx.skills.names
    messages, schema, tag = label_request(ctx, item)
    try:
        result = ctx.client("judge").structured(messages, schema, tag, max_tokens=max_tokens)
    except LLMCallFailed as exc:
        return Diagnostic(item_id=item.id, check="label", flag=True, score=0.5,
                          evidence={"error": str(exc), "raw": exc.raw_outputs, "skill": UNSURE, "difficulty": None})
    parsed: Any = result.parsed
    model_skill = normalise_skill(parsed.skill, names)
    computable = COMPUTE_SKILL in names and regex_route(route_signals(item)) == "pot"
    skill = COMPUTE_SKILL if computable else model_skill
    difficulty = (int(parsed.difficulty) - 1) / 4
    return Diagnostic(item_id=item.id, check="label", flag=False, score=difficulty,
                      evidence={"skill": skill, "by": "signals" if computable else "model", "model_skill": model_skill,
                                "difficulty": difficulty, "rating": int(parsed.difficulty),
                                "tokens": result.tokens, "cached": result.cached})
