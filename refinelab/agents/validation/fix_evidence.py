"""The evidence bar for a key fix: a new key is committed only when independent sources agree on it.

A small model that writes a fix and then "validates" it agrees with itself; that agreement is not
evidence. So a `fix` that moves the key must be backed by at least two independent sources that name the
new key, and by no source that names another option:
- the debiased panel: each configured member's option distribution on the candidate (two option
  orders, metrics/option_probs.py), pooled; it counts when the pooled argmax is the key by a margin;
- retrieval read by the panel: the `rag:` members, which answer with retrieved passages in the prompt,
  pooled apart from the plain members and held to the same margin. They read evidence the plain members
  do not have, so they are a source of their own; without a relevant passage they abstain (the member
  then only knows what the plain panel knows);
- the validator's tool verdict: retrieval (`rag`: the passages support the key) or a program (`pot`: the
  computed answer matches the key); an answer check counts only when the validator runs a different
  model from the writer;
- a plugged-in method's verdict (`hooks.validators`), which is independent by construction.
A fix that keeps the key (a repair of the wording) asserts that the key is right too, and the item was
bought a fix because screening doubts it: the dataset's own key is then one source, and one more
independent source must agree with it (`MIN_AGREEING_KEPT`), none contradicting. In the 100-item
correction eval a stem rewording that kept an injected wrong key was committed on the writer's own model
agreeing with it (evals/results/correction_n100_rag_lead.md).
When the bar is not met the fix is not committed: the verdict fails with the tally as evidence and
`needs_review=True`, so the item stays as it was, flagged for a person — never a guess. A fix draft the
validator refused is flagged the same way: the item stays suspect.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from refinelab.agents.context import AgentContext
from refinelab.agents.key_correction import MOVE_MARGIN
from refinelab.agents.validation.strength import evidence_strength
from refinelab.errors import LLMCallFailed
from refinelab.schema import QAItem
from refinelab.state import Verdict

#: A model source contradicts a moved key when it prefers another option by this much (a thin preference
#: against the new key is enough to hold the commit back) ...
PANEL_MARGIN = 0.10
#: ... and agrees with it only when the key leads by key_correction.MOVE_MARGIN, the lead at which the
#: panel's favourite has been right on labelled data: agreement is what commits a new key.
AGREE_MARGIN = MOVE_MARGIN
MIN_AGREEING = 2
MIN_AGREEING_KEPT = 1  # a kept key: the dataset's own key is the other source

Stance = Literal["agrees", "contradicts", "abstains"]


@dataclass
class KeySource:
    """One source's reading of the candidate's key."""

    name: str
    stance: Stance
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class FixDecision:
    commit: bool
    reason: str
    sources: list[KeySource]

    def evidence(self) -> dict[str, Any]:
        return {"commit": self.commit, "reason": self.reason, "min_agreeing": MIN_AGREEING,
                "sources": [{"name": s.name, "stance": s.stance, **s.detail} for s in self.sources]}


def decide(sources: list[KeySource], needed: int = MIN_AGREEING, what: str = "the new key") -> FixDecision:
    """The rule itself: ≥ `needed` sources agree and none contradicts."""
    agree = [s.name for s in sources if s.stance == "agrees"]
    against = [s.name for s in sources if s.stance == "contradicts"]
    if against:
        return FixDecision(False, f"{', '.join(against)} name(s) another option", sources)
    if len(agree) < needed:
        return FixDecision(False, f"only {len(agree)} independent source(s) agree on {what} "
                                  f"({', '.join(agree) or 'none'}); {needed} needed", sources)
    sources_agree = "1 independent source agrees" if len(agree) == 1 else f"{len(agree)} independent sources agree"
    return FixDecision(True, f"{sources_agree}: {', '.join(agree)}", sources)


def key_moved(original: QAItem, candidate: QAItem) -> bool:
    """Whether the fix changed which text is the right answer (a repair of the wording alone is not a key fix)."""
    return original.answer_text.strip().lower() != candidate.answer_text.strip().lower()


def panel_sources(ctx: AgentContext, candidate: QAItem) -> list[KeySource]:
    """The configured panel's pooled, order-debiased distribution on the candidate: one source for the plain
    members ("panel") and one for the retrieval-conditioned `rag:` members ("retrieval"). A `cloze:` member
    is no source here: its reading was never measured as fix evidence (its favourite was the key on 35% of
    MMLU-Redux dev's ok rows, evals/results/screening_dev_cloze.md), and pooled with the plain members it
    would move the lead that `AGREE_MARGIN` was measured on.

    Only a configured panel counts: a run without one has the judge answer every item (IRT) and propose
    keys from its answers, but counting the judge here was measured and refused — with the `rag` validator's
    generated verdict as the second source it committed 9 fixes on 100 MMLU-Redux items, 8 right (88.9%,
    against the ≥ 95% the fix rule must hold; one moved key where the judge and the same 1.5B reading
    passages agreed on a wrong option: evals/results/correction_n100_default_panel.md). A moved key in such
    a run goes to review with the tally."""
    from refinelab.agents.panel import CLOZE_PREFIX, RAG_PREFIX, retrieved_passages

    members = [m for m in ctx.options.panel if not m.startswith(CLOZE_PREFIX)]
    if ctx.options.panel_method != "logprobs":
        return [KeySource("panel", "abstains", {"why": "no logprobs panel configured"})]
    if not members:
        why = "only cloze: members configured, which are no fix evidence" if ctx.options.panel else "no panel configured"
        return [KeySource("panel", "abstains", {"why": why})]
    plain = [m for m in members if not m.startswith(RAG_PREFIX)]
    rag = [m for m in members if m.startswith(RAG_PREFIX)]
    sources = [_pooled_source(ctx, "panel", plain, candidate)] if plain else []
    if rag:
        passages = retrieved_passages(ctx, candidate)  # once for every rag member: the search is the same
        if passages:
            sources.append(_pooled_source(ctx, "retrieval", rag, candidate, passages))
        else:
            sources.append(KeySource("retrieval", "abstains", {"why": "no passage above rag_min_score"}))
    return sources


def _pooled_source(ctx: AgentContext, name: str, members: list[str], candidate: QAItem,
                   passages: str | None = None) -> KeySource:
    from refinelab.agents.panel import probe_member
    from refinelab.metrics.option_probs import margin_against, mean_distribution

    probes: dict[str, list[float]] = {}
    errors: list[str] = []
    tokens = 0
    for member in members:
        try:
            probe = probe_member(ctx, member, candidate, node="validate", passages=passages)
        except LLMCallFailed as exc:
            errors.append(str(exc))
            tokens += exc.tokens
            continue
        probes[member], tokens = probe.probs, tokens + probe.tokens
    usable = list(probes.values())
    if not usable:
        return KeySource(name, "abstains", {"why": f"no member answered: {'; '.join(errors)}", "tokens": tokens})
    pooled = mean_distribution(usable)
    margin = margin_against(pooled, candidate.answer)
    stance: Stance = "agrees" if margin >= AGREE_MARGIN else "contradicts" if margin <= -PANEL_MARGIN else "abstains"
    return KeySource(name, stance, {"pooled": [round(p, 4) for p in pooled], "margin": round(margin, 4),
                                    "members": list(probes), "tokens": tokens})


def validator_source(ctx: AgentContext, verdict: Verdict) -> KeySource:
    """The validator's own verdict on the candidate, counted only when it is independent of the writer."""
    method = verdict.method
    if method == "answer":
        writer, validator = ctx.settings.roles.writer, ctx.settings.roles.validator
        if (writer.endpoint, writer.model) == (validator.endpoint, validator.model):
            return KeySource("validator:answer", "abstains",
                             {"why": "the validator runs the writer's model: its agreement is not evidence"})
    stance: Stance = "agrees" if verdict.passed else "contradicts"
    # a tool that could not run, or passages that settle nothing, say nothing of the key (unless the answer
    # check decided instead: then its answer is the stance)
    if verdict.outcome in ("unavailable", "insufficient") and verdict.fallback is None and method != "answer":
        stance = "abstains"
    return KeySource(f"validator:{method}", stance, {"outcome": verdict.outcome, "reason": verdict.reason[:200]})


def check_fix(ctx: AgentContext, original: QAItem, candidate: QAItem, verdict: Verdict) -> Verdict:
    """Apply the evidence bar to a fix whose validator verdict passed.

    A fix the validator refused is marked `needs_review` too: the item was bought a fix because screening
    suspects it, and a draft that an independent check contradicts leaves it suspect, so once its attempts
    are spent it goes to a person with this evidence (graph `route_after_validate`) instead of being kept
    as if nothing were wrong. A verdict no method decided stays as it is (review treats it as undecided)."""
    if not verdict.passed:
        if evidence_strength(verdict) == 0.0:
            return verdict
        return replace(verdict, evidence={**verdict.evidence, "needs_review": True})
    moved = key_moved(original, candidate)
    sources = [validator_source(ctx, verdict), *panel_sources(ctx, candidate)]
    if verdict.method == "rag":  # the validator read retrieved passages already: one retrieval source, not two
        sources = [s for s in sources if not (s.name == "retrieval" and s.stance == "agrees")]
    decision = decide(sources) if moved else decide(sources, MIN_AGREEING_KEPT, "the kept key")
    evidence = {**verdict.evidence, "fix_rule": decision.evidence()}
    tokens = verdict.tokens + sum(int(s.detail.get("tokens", 0)) for s in sources)
    if decision.commit:
        return replace(verdict, reason=f"{verdict.reason}; {decision.reason}", evidence=evidence, tokens=tokens)
    evidence["needs_review"] = True
    return replace(verdict, passed=False, evidence=evidence, tokens=tokens,
                   reason=f"{'key fix' if moved else 'fix keeping the key'} not committed: {decision.reason}")
