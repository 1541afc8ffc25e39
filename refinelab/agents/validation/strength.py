"""How much a verdict's evidence settles an edit, and whether a person should look at it.

Every method (built-in or plugged in) returns a `Verdict` with `evidence`; this module reads the same
markers for all of them, so human review treats a pack's own tools exactly like the built-ins:

- `outcome: unanswered | unavailable | undecided` with no `fallback` — the method could not decide;
- `fallback: answer` — the pack's method did not settle it and the answer check decided instead (its own
  evidence under `answer_check`, which may itself be undecided);
- `needs_review: true` — a key fix below the two-source evidence bar, or a fix draft the validator
  refused (`fix_evidence.check_fix`).
"""

from __future__ import annotations

from typing import Any, Literal

from refinelab.state import Verdict

UNDECIDED_OUTCOMES = frozenset({"unanswered", "unavailable", "undecided"})
ReviewKind = Literal["undecided", "weak_evidence", "below_bar"]


def _undecided(evidence: dict[str, Any]) -> bool:
    if evidence.get("fallback"):
        return _undecided(evidence.get("answer_check") or {})
    return str(evidence.get("outcome") or evidence.get("rag_verdict") or "") in UNDECIDED_OUTCOMES


def evidence_strength(verdict: Verdict) -> float:
    """0 when no method decided, 0.5 when only the answer-check fallback did, 1 when the pack's method did."""
    if verdict.method in ("none", "structural", "budget"):
        return 1.0  # deterministic: nothing a model could add
    if _undecided(verdict.evidence):
        return 0.0
    return 0.5 if verdict.evidence.get("fallback") else 1.0


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
