"""A wrong key corrected from measurement, not from a writer's draft.

When screening's panel evidence says the key is wrong and the debiased panel clearly prefers another
option that is already on offer, the candidate fix is simply "move the key there": no text is written,
so nothing can be garbled, and no writer tokens are spent. The candidate still has to clear the fix
evidence bar (agents/validation/fix_evidence.py): the panel's preference is one source; retrieval, a
program or an independent validator model must agree before it is committed.

When the panel doubts the key (its pooled favourite is another option) but favours no option clearly,
there is nothing to commit: a key the writer picks instead has one source at most (its own agreement is
not evidence), and a rewording that keeps the doubted key repairs nothing the evidence points at. The fix
then abstains (`key_doubted`) and the item goes to review with the panel's numbers, at no writer tokens.
"""

from __future__ import annotations

from refinelab.agents.context import AgentContext
from refinelab.metrics.option_probs import margin_against
from refinelab.schema import LETTERS, QAItem

#: How far the panel's favourite must lead every other option (pooled) to be a candidate key — and, in the
#: fix evidence bar, for a panel or retrieval source to count as agreeing with a moved key. Measured on
#: MMLU-Redux dev's ok rows (the key is right) outside the correction evals' subjects, the one-model 1.5B
#: panel's favourite was right 42% of the time overall, 61% with a lead of 0.10 (the value before), 86% at
#: 0.20 and 9 of 9 at 0.30 (evals/results/panel_margin.md). At 0.10 the plain and the retrieval member,
#: one model reading with and without passages, agreed on a wrong option often enough that 5 of 17
#: committed fixes were wrong (evals/results/correction_n100_rag.md).
MOVE_MARGIN = 0.30
DOUBT_MARGIN = 0.02  # ... and by this much for the panel to doubt the key at all (a tie is no doubt)


def _pooled_favourite(ctx: AgentContext, item: QAItem) -> tuple[list[float], int] | None:
    """The panel's stored pooled distribution on `item` and its favourite option; None without one."""
    panel = ctx.store.diagnostic(item.id, "panel")
    pooled = list(panel.evidence.get("pooled") or []) if panel is not None else []
    if len(pooled) != len(item.choices):
        return None
    return pooled, max(range(len(pooled)), key=pooled.__getitem__)


def _moves(pooled: list[float], favourite: int, key: int) -> bool:
    """The panel's favourite is another option and leads every other by the move margin."""
    return favourite != key and margin_against(pooled, favourite) >= MOVE_MARGIN


def _doubts(pooled: list[float], favourite: int, key: int) -> bool:
    """The panel's favourite beats the key by more than the doubt margin."""
    return pooled[favourite] - pooled[key] > DOUBT_MARGIN


def fix_abstains(ctx: AgentContext, item: QAItem) -> bool:
    """Whether a fix of `item` abstains (`refine`: no key move, but doubt), from one read of the stored
    panel: the planner asks this of every item each round, and prices such a fix at what it costs."""
    read = _pooled_favourite(ctx, item)
    if read is None:
        return False
    pooled, favourite = read
    return not _moves(pooled, favourite, item.answer) and _doubts(pooled, favourite, item.answer)


def panel_key_move(ctx: AgentContext, item: QAItem) -> QAItem | None:
    """`item` with its key moved to the panel's clear favourite, or None when the evidence does not point
    at one other option (no logprobs panel, the key is the favourite, or the margin is thin)."""
    read = _pooled_favourite(ctx, item)
    if read is None:
        return None
    pooled, favourite = read
    if not _moves(pooled, favourite, item.answer):
        return None
    return item.model_copy(update={
        "answer": favourite,
        "metadata": {**item.metadata, "rationale": f"key moved from {item.answer_letter} to the panel's choice "
                                                   f"(pooled p {pooled[favourite]:.2f} vs {pooled[item.answer]:.2f})"}})


def key_doubted(ctx: AgentContext, item: QAItem) -> str | None:
    """Why a fix should abstain: the panel's pooled favourite beats the key (by more than DOUBT_MARGIN), and
    `panel_key_move` found no clear favourite to move it to. None when the panel agrees with the key (or
    ties it) or has not answered."""
    read = _pooled_favourite(ctx, item)
    if read is None:
        return None
    pooled, favourite = read
    if not _doubts(pooled, favourite, item.answer):
        return None
    return (f"the panel doubts the key {item.answer_letter} (pooled p {pooled[item.answer]:.2f}) but favours no "
            f"option by {MOVE_MARGIN:.2f} (best {LETTERS[favourite]} at {pooled[favourite]:.2f}): no new key has "
            "the evidence to be committed, and keeping the key fixes nothing; flagged for a person")
