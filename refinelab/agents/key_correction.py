"""A wrong key corrected from measurement, not from a writer's draft.

When screening's panel evidence says the key is wrong and the debiased panel clearly prefers another
option that is already on offer, the candidate fix is simply "move the key there": no text is written,
so nothing can be garbled, and no writer tokens are spent. The candidate still has to clear the fix
evidence bar (agents/validation/fix_evidence.py): the panel's preference is one source; retrieval, a
program or an independent validator model must agree before it is committed.
"""

from __future__ import annotations

from refinelab.agents.context import AgentContext
from refinelab.metrics.option_probs import margin_against
from refinelab.schema import QAItem

MOVE_MARGIN = 0.10  # the panel's favourite must beat the key by this much in the pooled distribution


def panel_key_move(ctx: AgentContext, item: QAItem) -> QAItem | None:
    """`item` with its key moved to the panel's clear favourite, or None when the evidence does not point
    at one other option (no logprobs panel, the key is the favourite, or the margin is thin)."""
    panel = ctx.store.diagnostic(item.id, "panel")
    pooled = list(panel.evidence.get("pooled") or []) if panel is not None else []
    if len(pooled) != len(item.choices):
        return None
    favourite = max(range(len(pooled)), key=pooled.__getitem__)
    if favourite == item.answer or margin_against(pooled, favourite) < MOVE_MARGIN:
        return None
    return item.model_copy(update={
        "answer": favourite,
        "metadata": {**item.metadata, "rationale": f"key moved from {item.answer_letter} to the panel's choice "
                                                   f"(pooled p {pooled[favourite]:.2f} vs {pooled[item.answer]:.2f})"}})
