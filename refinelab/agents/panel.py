"""The model panel: several models answer each item; their answers are evidence about the item.

Panel answers feed error screening (disagreement with the key), distractor pick rates and IRT difficulty.
A member is named by a string:
- an embedded model (``smollm2-135m``, ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``): served locally by
  llama.cpp, started on first use (RAM: 135M ≈ 0.2 GB, 0.5B ≈ 0.7 GB, 1.5B ≈ 1.9 GB);
- ``judge``: whatever the judge role is configured to use;
- ``MODEL@URL``: any OpenAI-compatible endpoint (key from $OPENAI_API_KEY).
Tests inject a chat model per member as ``ctx.hooks.chat_models["panel:NAME"]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from refinelab.agents.context import AgentContext
from refinelab.config import EMBEDDED, ModelSpec
from refinelab.errors import LLMCallFailed
from refinelab.model_outputs import AnswerOut
from refinelab.schema import LETTERS, Diagnostic, QAItem
from refinelab.tools.ledger import CallTag
from refinelab.tools.llm import ChatClient

DEFAULT_PANEL = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
LETTER_MAX_TOKENS = 32  # {"answer": "B"} is ~16 tokens as models format it
REASONING_MAX_TOKENS = 160
MEMBER_TIMEOUT_S = 600.0  # local servers shared by several callers queue requests; a timeout only re-queues them


class LetterOut(BaseModel):
    """A panel member's answer without reasoning (cheap on small local models)."""

    answer: Literal["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]


def panel_members(ctx: AgentContext) -> list[str]:
    """The configured panel (`options.panel`); empty = no panel."""
    return list(ctx.options.panel)


def member_spec(ctx: AgentContext, name: str) -> ModelSpec:
    """ModelSpec for a panel member name (see module doc)."""
    if name == "judge":
        return ctx.settings.roles.judge
    if "@" in name:
        model, url = name.split("@", 1)
        return ModelSpec(endpoint=url, model=model, temperature=0.0, max_tokens=REASONING_MAX_TOKENS,
                         timeout_s=MEMBER_TIMEOUT_S)
    return ModelSpec(endpoint=EMBEDDED, model=name, temperature=0.0, max_tokens=REASONING_MAX_TOKENS,
                     timeout_s=MEMBER_TIMEOUT_S)


def member_client(ctx: AgentContext, name: str) -> ChatClient:
    """One budgeted, cached, traced client per member, kept with the context's other clients."""
    key = f"panel:{name}"
    if key not in ctx._clients:
        ctx._clients[key] = ChatClient(member_spec(ctx, name), ctx.ledger, cache=ctx.cache, tracer=ctx.tracer,
                                       chat_model=ctx.hooks.chat_models.get(key), role=key)
    return ctx._clients[key]


def ask_member(ctx: AgentContext, name: str, item: QAItem) -> int | None:
    """One member's chosen option index; None when it failed to answer or named a letter not offered."""
    client = member_client(ctx, name)
    reasoning = ctx.options.panel_reasoning
    prompt, schema, limit = (("answer_item", AnswerOut, REASONING_MAX_TOKENS) if reasoning
                             else ("panel_answer", LetterOut, LETTER_MAX_TOKENS))
    messages = ctx.pack(item).messages(prompt, item=item)
    tag = CallTag(node="profile", operation="panel", item_id=item.id)
    try:
        result = client.structured(messages, schema, tag, max_tokens=limit)
    except LLMCallFailed:
        return None
    index = LETTERS.index(result.parsed.answer)
    return index if index < len(item.choices) else None


def panel_diagnostic(item: QAItem, answers: dict[str, int | None]) -> Diagnostic:
    """check="panel": each member's answer; score = share of answering members that chose the key."""
    votes = [a for a in answers.values() if a is not None]
    agree = sum(a == item.answer for a in votes)
    share = agree / len(votes) if votes else 1.0
    return Diagnostic(item_id=item.id, check="panel", flag=bool(votes) and share < 0.5, score=share,
                      evidence={"answers": answers, "key": item.answer, "answered": len(votes)})


def answer_panel(ctx: AgentContext, item: QAItem, members: list[str]) -> Diagnostic | None:
    """Ask the members that have not answered this item yet; None when there is nothing new to ask."""
    stored = ctx.store.diagnostic(item.id, "panel")
    answers: dict[str, int | None] = dict(stored.evidence.get("answers", {})) if stored else {}
    missing = [m for m in members if m not in answers]
    if not missing:
        return None
    for name in missing:  # BudgetExhausted propagates: what was answered before it is not stored
        answers[name] = ask_member(ctx, name, item)
    return panel_diagnostic(item, answers)
