"""Which validator checks an item: the methods a pack can name, and the PoT-or-RAG router.

Packs name a method in `validator:` — `answer`, `pot`, `rag` or `pot_or_rag`; `options.validators`
restricts the model-based ones (an empty list means answer checks only). The router decides by item
type: cheap regex signals first (numbers, units, equations, numeric options), an LLM classification
(prompt `classify_item`) only when they are ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.validation.pot import pot_check
from refinelab.agents.validation.rag import rag_check
from refinelab.errors import LLMCallFailed
from refinelab.metrics.item_signals import regex_route, route_signals
from refinelab.schema import QAItem
from refinelab.state import EditTask, Verdict
from refinelab.tools.ledger import CallTag

ValidatorFn = Callable[[AgentContext, EditTask, QAItem], Verdict]

class ItemKind(BaseModel):
    """The LLM's routing call when the regex signals are ambiguous."""

    reason: str = Field(max_length=200)
    kind: Literal["compute", "lookup"]


def classify_item(ctx: AgentContext, task: EditTask, item: QAItem) -> tuple[str, dict[str, Any]]:
    """(method, routing evidence) for a `pot_or_rag` item; the LLM is asked only when regex is unsure."""
    signals = route_signals(item)
    method = regex_route(signals)
    if method is not None:
        return method, {"by": "regex", "signals": signals, "tokens": 0}
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    messages = ctx.pack(item).messages("classify_item", item=item)
    try:
        result = ctx.client("validator").structured(messages, ItemKind, tag, max_tokens=120)
    except LLMCallFailed as exc:  # no usable call: retrieval, which itself falls back to the answer check
        return "rag", {"by": "default", "signals": signals, "error": str(exc), "tokens": 0}
    method = "pot" if result.parsed.kind == "compute" else "rag"
    return method, {"by": "llm", "signals": signals, "kind": result.parsed.kind, "reason": result.parsed.reason,
                    "tokens": result.tokens}


def routed_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """`pot_or_rag`: classify, then run PoT or RAG; the routing decision joins the evidence."""
    method, route = classify_item(ctx, task, item)
    verdict = (pot_check if method == "pot" else rag_check)(ctx, task, item)
    verdict.evidence["route"] = {k: v for k, v in route.items() if k != "tokens"}
    verdict.tokens += int(route["tokens"])
    return verdict


def default_validators() -> dict[str, ValidatorFn]:
    """The built-in model-based methods by the name packs use in `validator:`."""
    return {"pot": pot_check, "rag": rag_check, "pot_or_rag": routed_check}


def available_validators(ctx: AgentContext) -> dict[str, ValidatorFn]:
    """The model-based methods this run may use: the built-in ones `options.validators` allows (None = all)
    plus any the caller plugged in (`hooks.validators`)."""
    methods = default_validators()
    allowed = ctx.options.validators
    if allowed is not None:
        methods = {name: fn for name, fn in methods.items() if name in allowed}
    return {**methods, **ctx.hooks.validators}


def choose_method(ctx: AgentContext, item: QAItem) -> str:
    """The pack's validator; methods whose tools are not available fall back to `answer`, recorded."""
    wanted = str(ctx.pack(item).options.get("validator", "answer"))
    available = available_validators(ctx)
    if wanted in available:
        return wanted
    if wanted == "pot_or_rag":
        for method in ("pot", "rag"):
            if method in available:
                return method
    return "answer"
