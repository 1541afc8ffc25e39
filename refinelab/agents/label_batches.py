"""Several items labelled in one judge call (`RunOptions.label_batch`): the label prompt's instructions and
skill list, about half of its ~440 tokens, are paid once per batch instead of once per item.

The reply is constrained like the single label (agents/labels.py): a JSON schema with exactly one entry
per item, each a taxonomy skill or "unsure" and a 1-5 rating, numbered. A reply whose numbers are not
1..k in order, or a call that fails, labels nothing: those items are then labelled one by one as
without batching, so a batch never guesses which answer belongs to which item. Why a batch labelled
nothing, and the tokens it cost then, are in the trace (the `label_batches` span's `fallbacks`): the
ledger charged them to the batch's items, and no label of theirs carries them. Items are batched only
with items of the same pack (a pack may word the label prompt its own way), in the order given, so a
re-run asks the same batches and replays them from the response cache.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from refinelab.agents.context import AgentContext
from refinelab.agents.labels import (
    COMPUTE_SKILL,
    asks_judge,
    awaiting_label,
    decided_by_signals,
    judged,
    label_diagnostic,
    label_schema,
)
from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.prompts.loader import PromptError
from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.ledger import CallTag

BATCH_PROMPT = "profile_items"
TOKENS_PER_LABEL = 40  # one numbered entry of the reply, as a 1.5B formats it (the single label caps at 80)


def batch_label_schema(names: tuple[str, ...], size: int) -> type[BaseModel]:
    """The batch reply: exactly `size` numbered labels, each as the single label's schema."""
    single = label_schema(names)
    entry = create_model("NumberedLabel", item=(int, Field(ge=1, le=size)),
                         skill=(single.model_fields["skill"].annotation, ...),
                         difficulty=(int, Field(ge=1, le=5)))
    return create_model("ItemLabelsOut", labels=(list[entry], Field(min_length=size, max_length=size)))  # type: ignore[valid-type]


def batches(ctx: AgentContext, items: Sequence[QAItem], size: int) -> list[list[QAItem]]:
    """`items` in runs of at most `size` sharing a pack, in their order; a lone item is no batch."""
    by_pack: dict[str, list[QAItem]] = {}
    for item in items:
        by_pack.setdefault(ctx.pack(item).name, []).append(item)
    runs = [group[i:i + size] for group in by_pack.values() for i in range(0, len(group), size)]
    return [run for run in runs if len(run) > 1]


#: Why a batch labelled nothing: the item's pack has no batch prompt, the call failed, or the reply's
#: numbers are not 1..k in order (it cannot be matched to the items).
Fallback = Literal["no_batch_prompt", "call_failed", "reply_mismatch"]


@dataclass
class BatchLabels:
    """What one batch call gave: a label per item, or none and why (`fallback`, `detail`); `tokens` is
    what the call cost, a failed or unmatched one's too."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    fallback: Fallback | None = None
    detail: str = ""
    tokens: int = 0

    def trace_entry(self, items: Sequence[QAItem]) -> dict[str, Any]:
        """The fallback as the trace records it: which items, why, and what the batch cost."""
        return {"items": [i.id for i in items], "reason": self.fallback, "detail": self.detail,
                "tokens": self.tokens}


def label_batch(ctx: AgentContext, items: Sequence[QAItem], node: str = "profile") -> BatchLabels:
    """One judge call labels `items` (same pack); a label Diagnostic per item, as `classify_skill` stores
    it, with the call's tokens shared out so they sum to what the ledger charged. No labels, and why,
    when the pack has no batch prompt, the call failed or its reply cannot be matched to the items: the
    caller labels them one by one."""
    names = ctx.skills.names
    pack = ctx.pack(items[0])
    try:
        messages = pack.messages(BATCH_PROMPT, items=list(items), skills=ctx.skills.skills,
                                 skill_examples=ctx.skills.examples)
    except PromptError as exc:  # a pack without the batch prompt labels one item per call
        return BatchLabels(fallback="no_batch_prompt", detail=str(exc))
    schema = batch_label_schema(tuple(names), len(items))
    tag = CallTag(node=node, operation="label", item_id="|".join(i.id for i in items))
    try:
        result = ctx.client("judge").structured(messages, schema, tag, max_tokens=TOKENS_PER_LABEL * len(items))
    except LLMCallFailed as exc:
        return BatchLabels(fallback="call_failed", detail=str(exc), tokens=exc.tokens)
    entries: list[Any] = list(result.parsed.labels)
    numbers = [e.item for e in entries]
    if numbers != list(range(1, len(items) + 1)):
        return BatchLabels(fallback="reply_mismatch", detail=f"the reply numbered its labels {numbers}",
                           tokens=result.tokens)
    share, extra = divmod(result.tokens, len(items))
    out = []
    for n, (item, entry) in enumerate(zip(items, entries, strict=True)):
        evidence = judged(names, entry.skill, entry.difficulty) | {
            "tokens": share + (extra if n == 0 else 0), "cached": result.cached, "batch": len(items)}
        # a computable item is in a batch only for its rating; its skill is the signals', as when asked alone
        skill, by = (COMPUTE_SKILL, "signals") if decided_by_signals(ctx, item) else (evidence["model_skill"], "model")
        out.append(label_diagnostic(item, skill, by, evidence))
    return BatchLabels(out, tokens=result.tokens)


def label_in_batches(ctx: AgentContext, items: Sequence[QAItem], node: str = "profile") -> int:
    """Label the items the judge would be asked about one by one (`asks_judge`, no label stored yet) in
    batches of `options.label_batch`, the batches concurrently as the judge's slots allow; returns how
    many were labelled. Only the judge's own skill label is batched (`skill_method="model"`: with the
    exemplars the judge is asked for its rating alone, one call per item). A batch the budget cannot pay
    labels nothing; its items are then asked alone, and stop the profile the same way."""
    size = ctx.options.label_batch
    if size < 2 or ctx.options.skill_method != "model":
        return 0
    todo = [i for i in items if asks_judge(ctx, i) and awaiting_label(ctx, i)]
    runs = batches(ctx, todo, size)
    if not runs:
        return 0

    def one(run: list[QAItem]) -> BatchLabels | None:
        try:
            return label_batch(ctx, run, node)
        except BudgetExhausted:
            return None  # not a fallback of the batch: its items, asked alone, stop the profile the same way

    workers = max(1, ctx.settings.roles.judge.total_concurrency())
    labelled = 0
    fallbacks: list[dict[str, Any]] = []
    with ctx.tracer.span("label_batches", "chain", {"items": len(todo), "batches": len(runs), "size": size}) as span, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for run, result in zip(runs, pool.map(lambda run: contextvars.copy_context().run(one, run), runs),
                               strict=True):
            if result is None:
                continue
            if result.fallback is not None:
                fallbacks.append(result.trace_entry(run))
            ctx.store.put_diagnostics(result.diagnostics)
            labelled += len(result.diagnostics)
        span.outputs = {"labelled": labelled, "fallbacks": fallbacks}
    return labelled
