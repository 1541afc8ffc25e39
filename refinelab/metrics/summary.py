"""Dataset-level summary of per-item Diagnostics: how many items each check flagged and their mean score.

One table for every check (error.*, error, distractors, ...), so the CLI, report and planner read the same
numbers; rendering beyond plain text is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from refinelab.schema import Diagnostic


@dataclass
class CheckSummary:
    """Aggregate of one check over the items it ran on."""

    check: str
    n_items: int
    n_flagged: int
    mean_score: float
    min_score: float
    flagged_ids: list[str] = field(default_factory=list)

    @property
    def flagged_fraction(self) -> float:
        return self.n_flagged / self.n_items if self.n_items else 0.0


@dataclass
class DiagnosticSummary:
    """All checks, plus how many distinct items at least one check flagged."""

    n_items: int
    n_flagged_items: int
    checks: dict[str, CheckSummary]

    def rows(self) -> list[dict[str, object]]:
        """One plain dict per check, sorted by name (for JSON, rich tables, pandas)."""
        return [
            {"check": c.check, "items": c.n_items, "flagged": c.n_flagged,
             "flagged_pct": round(100 * c.flagged_fraction, 1), "mean_score": round(c.mean_score, 4),
             "min_score": round(c.min_score, 4)}
            for c in sorted(self.checks.values(), key=lambda c: c.check)
        ]

    def to_dict(self) -> dict[str, object]:
        return {"n_items": self.n_items, "n_flagged_items": self.n_flagged_items, "checks": self.rows()}

    def format_table(self) -> str:
        """Fixed-width text table for logs and the terminal."""
        header = f"{'check':<32} {'items':>6} {'flagged':>8} {'%':>6} {'mean':>7} {'min':>7}"
        lines = [header, "-" * len(header)]
        for r in self.rows():
            lines.append(f"{r['check']:<32} {r['items']:>6} {r['flagged']:>8} {r['flagged_pct']:>6} "
                         f"{r['mean_score']:>7.3f} {r['min_score']:>7.3f}")
        lines.append(f"{self.n_flagged_items} of {self.n_items} items flagged by at least one check")
        return "\n".join(lines)


def summarise(diagnostics: Iterable[Diagnostic]) -> DiagnosticSummary:
    """Per-check counts and score statistics; an item with several verdicts for one check counts once (worst)."""
    worst: dict[str, dict[str, Diagnostic]] = {}
    for diag in diagnostics:
        per_item = worst.setdefault(diag.check, {})
        seen = per_item.get(diag.item_id)
        if seen is None or (diag.flag, -diag.score) > (seen.flag, -seen.score):
            per_item[diag.item_id] = diag
    checks: dict[str, CheckSummary] = {}
    items: set[str] = set()
    flagged_items: set[str] = set()
    for check, per_item in worst.items():
        diags = list(per_item.values())
        flagged = sorted(d.item_id for d in diags if d.flag)
        checks[check] = CheckSummary(
            check=check, n_items=len(diags), n_flagged=len(flagged),
            mean_score=sum(d.score for d in diags) / len(diags), min_score=min(d.score for d in diags),
            flagged_ids=flagged,
        )
        items.update(per_item)
        flagged_items.update(flagged)
    return DiagnosticSummary(n_items=len(items), n_flagged_items=len(flagged_items), checks=checks)
