"""The answer check: an independent model answers the candidate and must pick its key. The fallback of
every other method when its tool is unavailable."""

from __future__ import annotations

from refinelab.agents.context import AgentContext
from refinelab.errors import LLMCallFailed
from refinelab.model_outputs import AnswerOut
from refinelab.schema import LETTERS, QAItem
from refinelab.state import EditTask, Verdict
from refinelab.tools.ledger import CallTag


def answer_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    pack = ctx.pack(item)
    messages = pack.messages("answer_item", item=item)
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("validator").structured(messages, AnswerOut, tag)
    except LLMCallFailed as exc:
        return Verdict(False, f"validator could not answer: {exc}", "answer",
                       {"outcome": "unanswered", "raw": exc.raw_outputs}, exc.tokens)
    picked = result.parsed.answer
    evidence = {"validator_answer": picked, "key": item.answer_letter, "reasoning": result.parsed.reasoning}
    if picked == item.answer_letter:
        return Verdict(True, "independent answer matches the key", "answer", evidence, result.tokens)
    picked_text = item.choices[LETTERS.index(picked)] if LETTERS.index(picked) < len(item.choices) else "?"
    reason = (f"an independent solver chose {picked} ({picked_text!r}), not the key {item.answer_letter} "
              f"({item.answer_text!r}); make exactly one option unambiguously correct")
    return Verdict(False, reason, "answer", evidence, result.tokens)
