"""What profiling will cost, said before it is paid.

Profiling is paid from the run's budget like every edit, and on a small budget it can take most of it:
a `refinelab refine` of 25 ARC items with 20,000 tokens spent 16,525 (83%) measuring them and had 3,475
left for edits, with nothing said until the progress line showed it. The forecast counts the calls the
profile is about to make (a judge label per item the signals do not decide, and each panel member's
probe in each option order), each priced as a fixed prompt plus the item's own text (about 4 characters
a token), fitted on the calls of three runs: 30 MMLU items (labels 467 tokens a call, probes 167),
25 ARC-Challenge items (419, 121) and 20 CommonsenseQA items (probes 90). It forecasts those profiles at
24,054 (24,015 spent), 16,599 (16,525) and 3,046 (3,606). The profile node says it out loud, with what
would leave more for edits, when the forecast passes `NOTICE_SHARE` of the budget. Not in it: Elo
comparisons, validator checks of suspect items, parse retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import default_panel
from refinelab.agents.labels import asks_judge, awaiting_label, decided_by_signals
from refinelab.agents.panel import answers_with_probabilities, panel_members
from refinelab.schema import QAItem

CHARS_PER_TOKEN = 4  # the item's rendered text (stem and options) in tokens, roughly, for English
LABEL_PROMPT_TOKENS = 345  # a judge label call beyond the item's text: instructions, skill list, reply
BATCHED_LABEL_PROMPT_TOKENS = 105  # the same per item in batches of four (label_batch=4: 194 an item, mixed set)
PROBED_LABEL_PROMPT_TOKENS = 28  # skill_method="probs": one order of the skill probe beyond the item (~300 an MMLU item)
PROBE_PROMPT_TOKENS = 45  # one panel member answering one item in one option order, beyond the item's text
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
    unlabelled = [i for i in items if awaiting_label(ctx, i)]
    judged = [i for i in unlabelled if asks_judge(ctx, i)]
    probed = [i for i in unlabelled if ctx.options.skill_method == "probs" and not decided_by_signals(ctx, i)]
    per_label = BATCHED_LABEL_PROMPT_TOKENS if ctx.options.label_batch > 1 and ctx.options.skill_method == "model" \
        else LABEL_PROMPT_TOKENS
    members = panel_members(ctx)
    if not members and ctx.options.difficulty_method == "irt":  # IRT asks the judge as the panel
        members = default_panel(ctx)
    orders = sum(ctx.options.panel_orders if answers_with_probabilities(ctx, m) else 1 for m in members)
    unanswered = [i for i in items if not ctx.store.has_diagnostic(i.id, "panel")]
    skill_orders = ctx.options.panel_orders
    return ProfileCost(
        items=len(items), label_calls=len(judged) + skill_orders * len(probed),
        label_tokens=round(sum(per_label + item_tokens(i) for i in judged)
                           + skill_orders * sum(PROBED_LABEL_PROMPT_TOKENS + item_tokens(i) for i in probed)),
        probe_calls=len(unanswered) * orders,
        probe_tokens=round(orders * sum(PROBE_PROMPT_TOKENS + item_tokens(i) for i in unanswered)))


def item_tokens(item: QAItem) -> float:
    """The item's text as a prompt carries it (stem and lettered options), in tokens, roughly."""
    return len(item.render()) / CHARS_PER_TOKEN


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
