"""The answer check: an independent model answers the candidate and must pick its key. The fallback of
every other method when its tool is unavailable.

An edit that changed only distractors (a distractor rewrite, or a calibration by distractor swap) is judged
on what it wrote: when the solver picks an option the original item already had (a distractor the edit
kept), the edit did not introduce the doubt, so the check passes and says so; a new distractor the solver
picks fails it ("no new distractor judged correct"). `kept_original_distractor` is that rule, and the
program-of-thought check (pot.py) applies it to what a program computed."""

from __future__ import annotations

from refinelab.agents.context import AgentContext
from refinelab.errors import LLMCallFailed
from refinelab.model_outputs import AnswerOut
from refinelab.operations import REGISTRY
from refinelab.schema import LETTERS, QAItem, normalise_text
from refinelab.state import EditTask, Verdict
from refinelab.tools.ledger import CallTag

#: The operations that may change only distractors (a set of names: a profiling check's task is "check",
#: which names no operation).
_MAY_CHANGE_ONLY_DISTRACTORS = frozenset(op.value for op, spec in REGISTRY.items() if spec.may_change_only_distractors)


def answer_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    pack = ctx.pack(item)
    messages = pack.messages("answer_item", item=item)
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("validator").structured(messages, AnswerOut, tag)
    except LLMCallFailed as exc:
        return Verdict(False, f"validator could not answer: {exc}", "answer", {"raw": exc.raw_outputs}, exc.tokens,
                       outcome="unanswered")
    picked = result.parsed.answer
    evidence = {"validator_answer": picked, "key": item.answer_letter, "reasoning": result.parsed.reasoning}
    if picked == item.answer_letter:
        return Verdict(True, "independent answer matches the key", "answer", evidence, result.tokens,
                       outcome="answered")
    picked_text = item.choices[LETTERS.index(picked)] if LETTERS.index(picked) < len(item.choices) else "?"
    if kept_original_distractor(ctx, task, item, picked_text):
        evidence["picked_original_distractor"] = picked_text
        return Verdict(True, f"the solver chose {picked} ({picked_text!r}), a distractor the original item already "
                       "had; no new distractor was judged correct", "answer", evidence, result.tokens,
                       outcome="answered")
    reason = (f"an independent solver chose {picked} ({picked_text!r}), not the key {item.answer_letter} "
              f"({item.answer_text!r}); make exactly one option unambiguously correct")
    return Verdict(False, reason, "answer", evidence, result.tokens, outcome="answered")


def kept_original_distractor(ctx: AgentContext, task: EditTask, item: QAItem, picked: str) -> bool:
    """Whether the edit changed only distractors and `picked` is one of the original item's distractors,
    which the edit kept: a check that prefers it doubts the original item, not the edit."""
    original = original_of_distractor_edit(ctx, task, item)
    return original is not None and any(normalise_text(picked) == normalise_text(c)
                                        for i, c in enumerate(original.choices) if i != original.answer)


def removed_option(original: QAItem, item: QAItem, picked: int | None) -> str | None:
    """The original's distractor at `picked` (an independent check's pick among the original's options)
    when `item`, a distractor edit of it, no longer has it; else None. Dropping the option a solver picks
    may drop the right answer: the demo's college_chemistry-6 rewrite removed "3 lines", the sandboxed
    program's answer, and "5 lines" with it, the answer MMLU-Redux gives for its wrong key."""
    if picked is None or picked == original.answer:
        return None
    text = original.choices[picked]
    return None if any(normalise_text(text) == normalise_text(c) for c in item.choices) else text


def original_of_distractor_edit(ctx: AgentContext, task: EditTask, item: QAItem) -> QAItem | None:
    """The item before the edit when the edit changed only distractors, else None (one store read)."""
    if task.operation not in _MAY_CHANGE_ONLY_DISTRACTORS:
        return None
    original = ctx.store.item(task.item_id)
    kept = (normalise_text(item.question) == normalise_text(original.question) and item.answer == original.answer
            and normalise_text(item.answer_text) == normalise_text(original.answer_text))
    return original if kept else None
