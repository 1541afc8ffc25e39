"""Validator agent: structural checks first, then a model-based check chosen by the item's domain pack.

Methods: `answer` (an independent model answers the candidate; it must pick the key), `pot` (the model
writes Python that computes the answer, run in the sandbox), `rag` (retrieve Wikipedia passages and
judge the key against them). Every verdict carries its evidence; a failure carries a reason the
refiner can act on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.dedup import DuplicateIndex
from refinelab.agents.refiner import Candidate, EditTask
from refinelab.errors import LLMCallFailed
from refinelab.metrics.error_checks import check_row
from refinelab.model_outputs import AnswerOut
from refinelab.schema import LETTERS, QAItem
from refinelab.tools.ledger import CallTag

_INDEX_LOCK = threading.Lock()


@dataclass
class Verdict:
    passed: bool
    reason: str
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


def structural_problems(ctx: AgentContext, task: EditTask, item: QAItem) -> list[str]:
    """Deterministic checks; any hit rejects the candidate before a model is asked."""
    problems = [d.check for d in check_row(item, expected_choices=len(item.choices))
                if d.flag and d.check in {"blank_question", "too_few_options", "empty_option", "duplicate_options",
                                          "key_out_of_range", "near_duplicate_options", "answer_leak"}]
    if task.operation in ("expand", "generate"):
        duplicate = duplicate_index(ctx).nearest(item, exclude={item.id})
        if duplicate is not None:
            problems.append(f"too close to existing item {duplicate.item_id} "
                            f"({duplicate.method} similarity {duplicate.similarity:.2f}); write a different question")
    return problems


def duplicate_index(ctx: AgentContext) -> DuplicateIndex:
    """The run's near-duplicate index, built on first use and topped up with items added since."""
    with _INDEX_LOCK:
        index = ctx.extras.get("_dedup_index")
        if index is None:
            index = DuplicateIndex(str(ctx.extras.get("dedup", "embedding")))
            ctx.extras["_dedup_index"] = index
    index.add([ctx.store.item(i) for i in ctx.store.item_ids() if i not in index])  # only items added since
    return index


def answer_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    pack = ctx.pack(item)
    messages = pack.messages("answer_item", item=item)
    tag = CallTag(node="validate", operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("validator").structured(messages, AnswerOut, tag)
    except LLMCallFailed as exc:
        return Verdict(False, f"validator could not answer: {exc}", "answer", {"raw": exc.raw_outputs})
    picked = result.parsed.answer
    evidence = {"validator_answer": picked, "key": item.answer_letter, "reasoning": result.parsed.reasoning}
    if picked == item.answer_letter:
        return Verdict(True, "independent answer matches the key", "answer", evidence, result.tokens)
    picked_text = item.choices[LETTERS.index(picked)] if LETTERS.index(picked) < len(item.choices) else "?"
    reason = (f"an independent solver chose {picked} ({picked_text!r}), not the key {item.answer_letter} "
              f"({item.answer_text!r}); make exactly one option unambiguously correct")
    return Verdict(False, reason, "answer", evidence, result.tokens)


def available_validators(ctx: AgentContext) -> dict[str, Any]:
    """`ctx.extras["validators"]` when given (an empty dict means answer checks only), else the built-in
    PoT / RAG / router methods (agents/validators.py, imported here to avoid an import cycle)."""
    if "validators" in ctx.extras:
        return dict(ctx.extras["validators"])
    from refinelab.agents.validators import default_validators

    return dict(default_validators())


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


def validate(ctx: AgentContext, task: EditTask, candidate: Candidate) -> Verdict:
    if candidate.item is None or candidate.error:
        return Verdict(False, candidate.error or "no candidate", "structural")
    if task.operation == "remove":
        return Verdict(True, "removal needs no validation", "none")
    problems = structural_problems(ctx, task, candidate.item)
    if problems:
        return Verdict(False, "structural checks failed: " + "; ".join(problems), "structural",
                       {"problems": problems})
    method = choose_method(ctx, candidate.item)
    if method != "answer":
        verdict: Verdict = available_validators(ctx)[method](ctx, task, candidate.item)
        return verdict
    verdict = answer_check(ctx, task, candidate.item)
    wanted = ctx.pack(candidate.item).options.get("validator", "answer")
    if wanted != "answer":
        verdict.evidence["note"] = f"pack asked for {wanted!r}, not available here; used the answer check"
    return verdict
