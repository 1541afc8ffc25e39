"""How much a verdict's evidence settles an edit, and whether a person should look at it.

Every method (built-in or plugged in) returns a `Verdict`; this module reads the same typed fields of all
of them, so human review treats a pack's own tools exactly like the built-ins:

- `outcome` in `UNDECIDED_OUTCOMES` (unanswered, unavailable, undecided) with no `fallback` — the method
  could not decide;
- `fallback` — the pack's method did not settle it and the answer check decided instead (its verdict,
  which may itself be undecided);
- `evidence["needs_review"]` — a key fix below the two-source evidence bar, or a fix draft the validator
  refused (`fix_evidence.check_fix`).
"""

from __future__ import annotations

from typing import Literal

from refinelab.state import UNDECIDED_OUTCOMES, Verdict

ReviewKind = Literal["undecided", "weak_evidence", "below_bar"]


def _undecided(verdict: Verdict) -> bool:
    if verdict.fallback is not None:
        return _undecided(verdict.fallback)
    return verdict.outcome in UNDECIDED_OUTCOMES


def evidence_strength(verdict: Verdict) -> float:
    """0 when no method decided, 0.5 when only the answer-check fallback did, 1 when the pack's method did."""
    if verdict.method in ("none", "structural", "budget"):
        return 1.0  # deterministic: nothing a model could add
    if _undecided(verdict):
        return 0.0
    return 0.5 if verdict.fallback is not None else 1.0


def review_kind(verdict: Verdict, bar: float) -> ReviewKind | None:
    """Why this verdict needs a person: a key fix the evidence bar held back (`fix_evidence`: too few
    independent sources agree), the validator could not decide, or it passed below `bar`."""
    if not verdict.passed and verdict.evidence.get("needs_review"):
        return "below_bar"
    strength = evidence_strength(verdict)
    if strength == 0.0 and not verdict.passed:
        return "undecided"
    if verdict.passed and strength < bar:
        return "weak_evidence"
    return None
