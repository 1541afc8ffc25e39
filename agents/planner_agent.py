"""Planner agent: turns stored diagnostics into a planning problem and calls the ILP tool.

The solver is invoked as a LangChain tool so the trace shows the call, its inputs and its plan.
Costs and success rates are refitted each round from what earlier rounds actually spent and passed.
"""

from __future__ import annotations

from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.planner.catalogue import ApplicabilityPolicy, Catalogue, Op, PilotObservation
from refinelab.planner.ilp import Plan, SolverPolicy, solve
from refinelab.planner.problem import DifficultyBuckets, ItemProfile, Problem, build_problem, cell_key
from refinelab.planner.problem import Targets as ProblemTargets

PLAN_SAFETY = 0.9  # plan against 90% of what is left: estimates are refitted, not exact


def item_profiles(ctx: AgentContext) -> list[ItemProfile]:
    """Per-item planning data from the store (only items still in the dataset)."""
    profiles = []
    for item in ctx.store.items(("kept", "edited", "new")):
        error = ctx.store.diagnostic(item.id, "error")
        distractors = ctx.store.diagnostic(item.id, "distractors")
        edited = item.provenance.created_by != "original"
        profiles.append(ItemProfile(
            id=item.id, domain=item.domain or ctx.domain_of(item), skill=item.skill or "(none)",
            difficulty=item.difficulty,
            p_error=0.0 if edited or error is None else float(error.evidence.get("p_error", 0.0)),
            distractor_score=distractors.score if distractors else 1.0,
            length_chars=float(len(item.render())),
        ))
    return profiles


def problem_targets(ctx: AgentContext, profiles: list[ItemProfile], total: int) -> ProblemTargets:
    coverage: dict[str, float] = {}
    if ctx.targets.coverage:
        coverage = {cell_key(d, s): p for (d, s), p in ctx.targets.coverage_cells().items() if p > 0}
    else:  # no coverage target: even spread over the cells the data already has
        cells = sorted({p.resolved_cell() for p in profiles})
        coverage = {c: 1.0 / len(cells) for c in cells} if cells else {}
    difficulty = dict(ctx.targets.difficulty or {b: 1 / 3 for b in ("easy", "medium", "hard")})
    return ProblemTargets(coverage=coverage, difficulty=difficulty, total=total)


def observations(ctx: AgentContext) -> list[PilotObservation]:
    """What earlier attempts cost and whether they passed: the pilot data for refitting."""
    out = []
    for edit in ctx.store.edits():
        if edit["operation"] == "remove" or edit["verdict"] == "pending":
            continue
        before = edit["before"] or {}
        length = (len(before.get("question", "")) + sum(len(c) for c in before.get("choices", []))) / 4
        out.append(PilotObservation(op=Op(edit["operation"]), length_tokens=length, tokens=float(edit["tokens"]),
                                    passed=edit["verdict"] == "pass"))
    return out


def make_problem(ctx: AgentContext, budget: float, enabled: list[str]) -> Problem:
    profiles = item_profiles(ctx)
    buckets = DifficultyBuckets(names=list(ctx.targets.buckets), edges=list(ctx.targets.thresholds))
    catalogue = Catalogue(applicability=ApplicabilityPolicy(enabled=[Op(o) for o in enabled]))
    obs = observations(ctx)
    if obs:
        catalogue = catalogue.updated(obs)
    total = ctx.store.get_meta("target_total") or len(profiles)
    return build_problem(profiles, budget, targets=problem_targets(ctx, profiles, total), catalogue=catalogue,
                         buckets=buckets)


def plan_round(ctx: AgentContext, enabled: list[str], mode: str) -> tuple[Plan, Problem]:
    """Solve for this round, traced as a tool call."""
    available = ctx.ledger.available
    budget = float(available) * PLAN_SAFETY if available is not None else 1e9
    problem = make_problem(ctx, budget, enabled)
    with ctx.tracer.span("ilp_plan", "tool", {"mode": mode, "budget": budget, "items": len(problem.items),
                                             "new_options": len(problem.new_options),
                                             "enabled": enabled}) as run:
        plan = solve(problem, mode=mode, policy=SolverPolicy(time_limit_s=20))  # type: ignore[arg-type]
        run.outputs = plan_summary(plan)
    return plan, problem


def plan_summary(plan: Plan) -> dict[str, Any]:
    data = plan.model_dump(exclude={"assignments", "new_items"})
    data["assignments"] = len(plan.assignments)
    data["new_items"] = [n.model_dump() for n in plan.new_items if n.count]
    return data
