"""What profiling will cost, said before it is paid.

Profiling is paid from the run's budget like every edit, and on a small budget it can take most of it:
a `refinelab refine` of 25 ARC items with 20,000 tokens spent 16,525 (83%) measuring them and had 3,475
left for edits, with nothing said until the progress line showed it. The forecast counts the calls the
profile is about to make (a judge label per item the signals do not decide, and each panel member's
probe in each option order) at what each cost when measured; the profile node says it out loud, with what
would leave more for edits, when the forecast passes `NOTICE_SHARE` of the budget. It is a lower bound:
Elo comparisons, validator checks of suspects and parse retries are not in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import default_panel
from refinelab.agents.labels import asks_judge, decided_by_signals
from refinelab.agents.panel import answers_with_probabilities, panel_members
from refinelab.schema import QAItem

LABEL_TOKENS = 440  # the judge's label of one item: 422 on the 108-item mixed set, 466 on the demo's 30 MMLU items
BATCHED_LABEL_TOKENS = 200  # the same in batches of four (label_batch=4): 194 on the mixed set
PROBED_LABEL_TOKENS = 300  # skill_method="probs": its one-token calls in two orders (docs/fidelity.md)
PROBE_TOKENS = 170  # one panel member answering one item in one option order: 167 on the demo's items
NOTICE_SHARE = 0.5  # a forecast above this share of the budget is said before profiling starts


@dataclass(frozen=True)
class ProfileCost:
    """The profile's forecast for a set of items: calls and tokens by kind, and their sum."""

    items: int
    label_calls: int
    label_tokens: int
    probe_calls: int
    probe_tokens: int

    @property
    def tokens(self) -> int:
        return self.label_tokens + self.probe_tokens

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


def profile_cost(ctx: AgentContext, items: Sequence[QAItem]) -> ProfileCost:
    """The calls the profile will make for `items` that are not measured yet, at their measured costs."""
    unlabelled = [i for i in items if not ctx.store.has_diagnostic(i.id, "label")]
    judged = [i for i in unlabelled if asks_judge(ctx, i)]
    probed = [i for i in unlabelled if ctx.options.skill_method == "probs" and not decided_by_signals(ctx, i)]
    per_label = BATCHED_LABEL_TOKENS if ctx.options.label_batch > 1 and ctx.options.skill_method == "model" \
        else LABEL_TOKENS
    members = panel_members(ctx)
    if not members and ctx.options.difficulty_method == "irt":  # IRT asks the judge as the panel
        members = default_panel(ctx)
    orders = sum(ctx.options.panel_orders if answers_with_probabilities(ctx, m) else 1 for m in members)
    unanswered = sum(1 for i in items if not ctx.store.has_diagnostic(i.id, "panel"))
    return ProfileCost(items=len(items), label_calls=len(judged) + ctx.options.panel_orders * len(probed),
                       label_tokens=len(judged) * per_label + len(probed) * PROBED_LABEL_TOKENS,
                       probe_calls=unanswered * orders, probe_tokens=unanswered * orders * PROBE_TOKENS)


def profile_cost_notice(ctx: AgentContext, cost: ProfileCost, cap: int | None) -> str:
    """What to tell the user before profiling when the forecast passes `NOTICE_SHARE` of `cap`; empty
    otherwise (or without a cap). Names the levers that leave more for edits and what each saves."""
    if not cap or cost.tokens < NOTICE_SHARE * cap:
        return ""
    left = max(0, cap - cost.tokens)
    levers = [f"a budget of {2 * cost.tokens + 10_000:,} or more"]
    if cost.label_tokens and ctx.options.skill_method in ("model", "probs"):
        levers.append(f"--skill-method exemplars (no label calls, ~{cost.label_tokens:,} tokens saved; labels "
                      "separate skills less well)")
    return (f"profiling {cost.items} items will take about {cost.tokens:,} of the {cap:,} tokens "
            f"({cost.tokens / cap:.0%}: {cost.label_calls} label calls, {cost.probe_calls} panel probes), "
            f"leaving ~{left:,} for edits; for more edits: " + "; or ".join(levers))
