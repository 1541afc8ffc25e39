"""Calibrate by over-generating and measuring: several drafts, the one the panel finds moved the most.

Asked once, the 1.5B writer mostly returned the item unchanged or reworded it so the panel found it no
harder (in the 60-item calibrate eval 11 of 28 attempts "changed nothing" and most measured moves went the
wrong way). A small model's single draft is a guess; its best of several, chosen by measurement, is not.
The writer is asked `options.calibrate_drafts` independent samples (its temperature makes them differ);
each usable draft is answered by the measuring panel (the judge alone by default) through one-token
logprobs in two orders, and the draft whose p(correct) moved furthest in the intended direction goes to
the validator. When none moved that way the attempt fails with the best move as its reason, without a
validation: a retry gets the reason as feedback.

The validator then measures the chosen draft again (validation/measured.py): with the response cache that
is a replay of the same probe, and without it an independent second reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import default_panel
from refinelab.agents.panel import probe_member
from refinelab.errors import LLMCallFailed
from refinelab.schema import Diagnostic, QAItem
from refinelab.state import EditTask
from refinelab.tools.together import run_together

#: the least move in p(correct) that counts as one: beyond what rewording alone does. Measured
#: (evals/results/rewording_noise.md): the writer reworded 29 items of the calibrate eval's mix keeping their
#: options and key, and the judge's p(correct) moved with a standard deviation of 0.034; 17 of 29 moved by
#: 0.01 or more (the floor before, set by judgement), 4 of 29 by 0.05 or more (2 in either direction). A
#: calibration now has to move it by 0.05: further than all but one rewording in fourteen, in its direction.
MIN_P_CHANGE = 0.05
ORIGINAL_PANEL = "panel_original"  # the panel's answers on the item before a committed calibration


@dataclass
class MeasuredDraft:
    """One draft and the panel's p(correct) on it (None when it could not be measured)."""

    item: QAItem
    p_correct: float | None
    tokens: int


def measuring_members(ctx: AgentContext) -> list[str]:
    """The members whose p(correct) decides: the configured panel, else the judge (as the validator)."""
    return list(ctx.options.panel) or default_panel(ctx)


def p_correct(diag: Diagnostic | None) -> float | None:
    """The panel's probability of answering correctly: the mean option probability of the key when the
    diagnostic carries option distributions (`evidence["probs"][member]["p"]`), else the share of
    answering members that chose the key; None when no member answered."""
    if diag is None:
        return None
    key = int(diag.evidence.get("key", -1))
    probs = diag.evidence.get("probs") or {}
    values = [float(p["p"][key]) for p in probs.values()
              if isinstance(p, dict) and isinstance(p.get("p"), list) and 0 <= key < len(p["p"])]
    if values:
        return sum(values) / len(values)
    if not diag.evidence.get("answered"):
        return None
    return float(diag.score)


def stored_panel(ctx: AgentContext, item: QAItem) -> Diagnostic | None:
    """The panel's stored answers on `item` as it was before any calibration (the profile's, or those kept
    when an earlier calibration was committed), when they hold every measuring member; else None. The
    draft choice and the validator read p(correct) before the edit from this one diagnostic, so both
    compare against the same number and neither pays for it again."""
    stored = ctx.store.diagnostic(item.id, ORIGINAL_PANEL) or ctx.store.diagnostic(item.id, "panel")
    if stored is not None and set(measuring_members(ctx)) <= set(stored.evidence.get("answers", {})):
        return stored
    return None


def panel_p_correct(ctx: AgentContext, task: EditTask, item: QAItem) -> tuple[float | None, int]:
    """Mean over the measuring members of the probability of the key, and the probes' tokens (charged to
    the edit's refine node). A member without usable logprobs is left out; none gives None."""
    values: list[float] = []
    tokens = 0
    for name in measuring_members(ctx):
        try:
            probe = probe_member(ctx, name, item, node=task.ledger_node("refine"))
        except LLMCallFailed as exc:
            tokens += exc.tokens
            continue
        tokens += probe.tokens
        values.append(probe.probs[item.answer])
    return (sum(values) / len(values) if values else None), tokens


def measure_drafts(ctx: AgentContext, task: EditTask, drafts: list[QAItem]) -> list[MeasuredDraft]:
    """Each draft's p(correct), measured at the same time (the server answers them in its slots)."""
    measured = run_together([partial(panel_p_correct, ctx, task, item) for item in drafts])
    return [MeasuredDraft(item, *result) for item, result in zip(drafts, measured, strict=True)]


def best_draft(measured: list[MeasuredDraft], p_before: float, direction: str) -> tuple[MeasuredDraft | None, str]:
    """The draft whose p(correct) moved furthest in `direction` ("harder": down), or None and why not."""
    usable = [m for m in measured if m.p_correct is not None]
    if not usable:
        return None, "the panel could not measure any draft"
    sign = -1.0 if direction == "harder" else 1.0
    best = max(usable, key=lambda m: sign * (m.p_correct - p_before))  # type: ignore[operator]
    change = best.p_correct - p_before  # type: ignore[operator]
    if sign * change < MIN_P_CHANGE:
        return None, (f"none of {len(measured)} usable drafts made the item {direction}: measured p(correct) "
                      f"{p_before:.3f}, best draft {best.p_correct:.3f} (a move counts from {MIN_P_CHANGE}); "
                      "change what the question demands")
    return best, f"best of {len(measured)} drafts: measured p(correct) {p_before:.3f} -> {best.p_correct:.3f}"
