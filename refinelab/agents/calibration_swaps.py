"""Calibrate by distractors: swap wrong options for more tempting ones (harder) or less tempting ones
(easier), the stem and the key left exactly as they are.

Asked to rewrite the stem, the 1.5B writer mostly reworded it: in the 60-item calibrate eval 20 of 30
attempts had no draft that moved the judge's p(correct) by the 0.05 that rewording alone does not
(evals/results/calibrate_noise_floor.md). How tempting the wrong options are is the lever item writers use
for difficulty, and it is one a small model can pull: it writes candidate distractors (never the stem or the
key), the judge measures how tempting each is (agents/candidate_probe.py: the stem, the key and the
candidates in two orders, through logprobs), and the swaps are built from that ranking:

- harder: the most tempting candidates replace the original distractors the panel finds least tempting;
- easier: the least tempting candidates replace the original distractors the panel finds most tempting;

one swap per number of replaced slots (1 … all). Candidates that paraphrase the key (embedding cosine, or
the key's value for numbers) and candidates the judge clearly prefers to the key (a second right answer)
never enter a swap. The swaps are measurable drafts like the writer's stem drafts
(agents/calibration_drafts.py): the refiner measures them first and writes stem drafts only when no swap
moved the item far enough. A swap keeps the stem and the key by construction, so it is the less invasive
edit, and the validator's answer check judges only the distractors it brought (validation/answer.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refinelab.agents.candidate_probe import OVERGENERATE, probe_candidates
from refinelab.agents.context import AgentContext
from refinelab.errors import LLMCallFailed
from refinelab.metrics.distractors import select_distractors
from refinelab.model_outputs import DistractorsOut
from refinelab.schema import Diagnostic, Provenance, QAItem
from refinelab.state import EditTask
from refinelab.tools.ledger import CallTag

SWAP_PROMPT = "refine_calibrate_distractors"


@dataclass
class Swaps:
    """The swapped items, what writing and measuring the candidates cost, and why there are none."""

    items: list[QAItem] = field(default_factory=list)
    tokens: int = 0
    raw: str = ""
    problem: str = ""  # why no swap could be built; empty when some were


def pooled_option_p(diag: Diagnostic | None, n_choices: int) -> list[float] | None:
    """The panel's pooled probability per option as the panel stored it (`evidence["pooled"]`,
    agents/panel.panel_diagnostic), or None when it holds none (the panel answered by letter)."""
    pooled = diag.evidence.get("pooled") if diag is not None else None
    return [float(p) for p in pooled] if isinstance(pooled, list) and len(pooled) == n_choices else None


def swap_items(base: QAItem, ranked: list[str], original_p: list[float] | None, direction: str) -> list[QAItem]:
    """One swap per number of replaced slots: the first k of `ranked` (best for `direction` first) replace
    the k original distractors least suited to it (harder: the least tempting; easier: the most tempting,
    by `original_p`, the panel's probability per option; in slot order when it is unknown)."""
    slots = [i for i in range(len(base.choices)) if i != base.answer]
    if original_p is not None:
        slots.sort(key=lambda i: original_p[i], reverse=direction != "harder")
    out: list[QAItem] = []
    for k in range(1, min(len(slots), len(ranked)) + 1):
        choices = list(base.choices)
        for slot, text in zip(slots[:k], ranked[:k], strict=True):
            choices[slot] = text
        out.append(base.model_copy(update={"choices": choices, "metadata": {
            **base.metadata, "calibration_swap": {"replaced": sorted(slots[:k]), "new": ranked[:k]}}}))
    return out


def distractor_swaps(ctx: AgentContext, task: EditTask, base: QAItem, direction: str,
                     original: Diagnostic | None) -> Swaps:
    """Candidates from the writer, filtered and ranked by the judge's probe, built into swaps of `base`.

    `original` is the panel's stored answers on `base` (their option probabilities order the slots)."""
    wrong = [c for i, c in enumerate(base.choices) if i != base.answer]
    messages = ctx.pack(base).messages(SWAP_PROMPT, item=base, wrong=wrong, direction=direction,
                                       feedback=task.feedback, n_candidates=OVERGENERATE * len(wrong))
    tag = CallTag(node=task.ledger_node("refine"), operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("writer").structured(messages, DistractorsOut, tag,
                                                 sample=f"{task.edit_id}:{task.attempt}:swap")
    except LLMCallFailed as exc:
        return Swaps(tokens=exc.tokens, raw="\n---\n".join(exc.raw_outputs),
                     problem=f"writer output unusable for a distractor swap: {exc}")
    candidates = [str(d).strip() for d in result.parsed.distractors]
    usable_choice = select_distractors(base.answer_text, candidates, len(candidates), ctx.embedder(),
                                       exclude=[base.question, *base.choices])
    usable = [candidates[i] for i in usable_choice.chosen]
    probe = probe_candidates(ctx, task, base, usable)
    tokens = result.tokens + probe.tokens
    if probe.not_measured:  # without the judge's probabilities there is no ranking to build swaps from
        return Swaps(tokens=tokens, raw=result.text, problem=f"distractor candidates not measured: {probe.not_measured}")
    measured = [(text, p) for text in usable
                if (p := probe.measured(text)) is not None and probe.preferred_to_key(text) is None]
    if not measured:
        return Swaps(tokens=tokens, raw=result.text, problem="no usable distractor candidate for a swap (each "
                     "paraphrased the key or the judge preferred it to the key)")
    measured.sort(key=lambda tp: tp[1], reverse=direction == "harder")
    original_p = pooled_option_p(original, len(base.choices))
    items = [item.model_copy(update={"provenance": Provenance(
        source=base.provenance.source, created_by=task.operation, parent_id=base.id, run_id=None)})
        for item in swap_items(base, [text for text, _ in measured], original_p, direction)]
    return Swaps(items=items, tokens=tokens, raw=result.text)
