"""Distractor candidates measured before they are chosen: the judge's probability for each.

Over-generating is only half of over-generate-then-select: the writer's candidates are chosen on evidence,
not on how they read. The judge answers one question made of the stem, the key and every new candidate
(at most nine, so the letters A-J suffice), in two option orders, read through logprobs as the panel reads
items (agents/panel.py). What that gives the selection:

- a candidate the judge prefers to the key, by a clear margin over an even share, is dropped: a second
  right answer, or a distractor the validator's solver would pick (the rewrite would then be refused);
- the others' probabilities are their plausibility: a distractor no model picks does not work, so among
  equally diverse sets the one the judge finds tempting wins (the functional share is what improves).
The rule and the scales live with the choice (agents/distractor_rewrite.distractors_to_item); this module measures.

A judge that returns no logprobs, or a budget with no room left, leaves the candidates unmeasured: the
selection then falls back to similarity with the key and the reason is kept with the edit.

Ten options spread a 1.5B judge's mass thinly (the key's probability was 0.10-0.20 on most items of
evals/results/distractors_s30.md), so the chosen set is measured once more as it will be asked: the item
with its four options, in two orders (`probe_assembled`). A new distractor the judge prefers to the key
there by `REWRITE_LEAD` is swapped for the next choice (agents/distractor_rewrite.py). On that run's 47 validated
rewrites this flagged 8 of the 19 the validator's solver refused (among them the ones a reader would call a
second right answer: a synonym of the key, a true statement in a "which is correct" item) and none of the
28 it passed (evals/results/rewrite_probe_s30.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refinelab.agents.context import AgentContext
from refinelab.agents.panel import MemberProbe, probe_member
from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.metrics.option_probs import margin_against
from refinelab.schema import LETTERS, QAItem, normalise_text
from refinelab.state import EditTask

PROBE_MEMBER = "judge"
CLEARLY_ABOVE_EVEN = 1.5  # a candidate refused as 'right' must exceed 1.5x an even share as well as the key
OVERGENERATE = 3  # distractor candidates asked of the writer per distractor slot (the issue asks 2-3x)
MAX_PROBED = len(LETTERS) - 1  # the key takes one letter
REWRITE_LEAD = 0.05  # on the assembled item, a new distractor ahead of the key by this much is swapped out


@dataclass
class CandidateProbe:
    """The judge's probability per candidate text (normalised), the key's, and what the probe cost."""

    p_key: float | None = None
    p: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    not_measured: str = ""  # why the candidates were not measured; empty when they were

    def measured(self, text: str) -> float | None:
        return self.p.get(normalise_text(text))

    def preferred_to_key(self, text: str) -> float | None:
        """The candidate's probability when the judge prefers it to the key by a clear margin (a second
        right answer, or a distractor the validator's solver would pick), else None. A 1.5B judge shown ten
        options spreads its mass thinly: "as likely as the key" counts only when the candidate also stands
        `CLEARLY_ABOVE_EVEN` times above an even share, else the refusal is noise."""
        p = self.measured(text)
        if p is None or self.p_key is None:
            return None
        return p if p >= self.p_key and p >= CLEARLY_ABOVE_EVEN * self.even_share() else None

    def even_share(self) -> float:
        """An even share of the probe's options (the key and the candidates); 0 when nothing was measured."""
        return 1.0 / (len(self.p) + 1) if self.p else 0.0

    def as_evidence(self) -> dict[str, object]:
        if self.not_measured:
            return {"measured": False, "why": self.not_measured}
        return {"measured": True, "p_key": round(self.p_key or 0.0, 4), "tokens": self.tokens,
                "p": {text: round(p, 4) for text, p in self.p.items()}}


def _ask_judge(ctx: AgentContext, task: EditTask, item: QAItem, what: str) -> tuple[MemberProbe | None, int, str]:
    """The judge's two-order reading of `item` (tokens charged to the edit's refine node), or None with the
    tokens spent and why there is none: no option probabilities, or no budget left to measure `what`."""
    try:
        probe = probe_member(ctx, PROBE_MEMBER, item, node=task.ledger_node("refine"))
    except LLMCallFailed as exc:
        return None, exc.tokens, f"the judge gave no option probabilities: {exc}"
    except BudgetExhausted as exc:
        return None, 0, f"no budget left to measure {what}: {exc}"
    return probe, probe.tokens, ""


def probe_candidates(ctx: AgentContext, task: EditTask, base: QAItem, candidates: list[str]) -> CandidateProbe:
    """The judge's option distribution over [key, *new candidates] (first `MAX_PROBED` distinct ones that
    are neither the key nor an option the item already has), averaged over two orders."""
    known = {normalise_text(c) for c in base.choices}
    shown: list[str] = []
    for text in candidates:
        norm = normalise_text(text)
        if norm and norm not in known and norm not in {normalise_text(s) for s in shown}:
            shown.append(text.strip())
    shown = shown[:MAX_PROBED]
    if not shown:
        return CandidateProbe(not_measured="no new candidate to measure")
    question = QAItem(id=base.id, question=base.question, choices=[base.answer_text, *shown], answer=0,
                      subject=base.subject, domain=base.domain, skill=base.skill)
    probe, tokens, why = _ask_judge(ctx, task, question, "them")
    if probe is None:
        return CandidateProbe(tokens=tokens, not_measured=why)
    return CandidateProbe(p_key=probe.probs[0], tokens=probe.tokens,
                          p={normalise_text(text): p for text, p in zip(shown, probe.probs[1:], strict=True)})


@dataclass
class AssembledProbe:
    """The judge's option distribution on an assembled rewrite and the new distractor it prefers to the key
    by `REWRITE_LEAD` (None when there is none, or when nothing was measured)."""

    probs: list[float] = field(default_factory=list)
    tokens: int = 0
    preferred: int | None = None  # index of the new distractor the judge prefers to the key
    not_measured: str = ""

    def as_evidence(self) -> dict[str, object]:
        if self.not_measured:
            return {"measured": False, "why": self.not_measured}
        return {"measured": True, "p": [round(p, 4) for p in self.probs], "tokens": self.tokens,
                "preferred_new": self.preferred}


def probe_assembled(ctx: AgentContext, task: EditTask, base: QAItem, item: QAItem) -> AssembledProbe:
    """The judge's aligned distribution over `item`'s options (as the panel asks an item: its orders, one
    token each) and the favourite new distractor when it leads the key by `REWRITE_LEAD`. A new distractor
    is one `base` does not have: an original distractor the judge prefers was already there."""
    probe, tokens, why = _ask_judge(ctx, task, item, "it")
    if probe is None:
        return AssembledProbe(tokens=tokens, not_measured=why)
    known = {normalise_text(c) for c in base.choices}
    favourite = probe.choice  # the option leading the key, when -margin >= the lead
    preferred = None
    if (favourite is not None and -margin_against(probe.probs, item.answer) >= REWRITE_LEAD
            and normalise_text(item.choices[favourite]) not in known):
        preferred = favourite
    return AssembledProbe(probs=list(probe.probs), tokens=probe.tokens, preferred=preferred)
