"""Planner agent: turns stored diagnostics into a planning problem and calls the ILP tool.

The solver is called through the LangChain tool (`make_plan_tool`), with a callback that records the
tool run (its inputs and its plan) in the run's trace. Costs and success rates start from the catalogue
priors, adjusted for the graph's loop-backs, and are refitted from every finished edit so far (the
pilot's and earlier rounds'), so a re-plan uses observed costs and only the budget that is left.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.key_correction import fix_abstains
from refinelab.agents.options import RunOptions
from refinelab.metrics.error_checks import distractors_replaceable
from refinelab.operations import NEW_ITEM_OPS, REGISTRY, Op, writes_new_item
from refinelab.planner.catalogue import (
    ApplicabilityPolicy,
    Catalogue,
    CostModel,
    PilotObservation,
    SuccessModel,
)
from refinelab.planner.ilp import Plan, SolverPolicy
from refinelab.planner.problem import ItemProfile, Problem, build_problem, targets_from_resolved
from refinelab.planner.tool import TOOL_NAME, make_plan_tool
from refinelab.schema import QAItem
from refinelab.state import ABSTAINED, GAVE_UP, SUCCEEDED

PLAN_SAFETY = 0.9  # plan against 90% of what is left: estimates are refitted, not exact
TRACE_ASSIGNMENTS = 50  # a traced plan lists at most this many assignments (the rest are counted)


def item_length_tokens(item: QAItem | dict[str, Any]) -> float:
    """The length the cost models are fitted on: the rendered item at 4 characters per token."""
    if isinstance(item, dict):
        item = QAItem.model_validate(item)
    return len(item.render()) / 4.0


#: The operations whose give-up marks the item a defect (`Operation.failure_marks_defect`: fix), by name as
#: the store records them.
_DEFECT_ON_FAILURE = frozenset(op.value for op, spec in REGISTRY.items() if spec.failure_marks_defect)


def failed_fixes(ctx: AgentContext) -> set[str]:
    """Items whose fix was tried and given up: an error that could not be repaired is a defect."""
    return {o["item_id"] for o in ctx.store.outcomes()
            if o["operation"] in _DEFECT_ON_FAILURE and o["status"] == GAVE_UP}


def item_profiles(ctx: AgentContext) -> list[ItemProfile]:
    """Per-item planning data from the store (only items still in the dataset). An item is a defect when
    screening flagged it and its fix failed (an error that could not be repaired), or it repeats an earlier
    item's question and options (an exact duplicate). A failed fix on an item screening did not flag is
    doubt, not a defect: the fix abstained or its evidence fell short, so the item is kept as it was (a
    fresh `make demo` had removed "Why is the sky blue?", keyed right, after its fix abstained)."""
    profiles = []
    unfixable = failed_fixes(ctx)
    seen: set[tuple[str, ...]] = set()
    for item in ctx.store.items(("kept", "edited", "new")):
        error = ctx.store.diagnostic(item.id, "error")
        distractors = ctx.store.diagnostic(item.id, "distractors")
        # an edited item's p_error was measured on the text it replaced; a confirmed one's key stood on evidence
        edited = item.provenance.created_by != "original" or item.provenance.confirmed_by is not None
        duplicate = item.fingerprint in seen
        seen.add(item.fingerprint)
        profiles.append(ItemProfile(
            id=item.id, domain=item.domain or ctx.domain_of(item), skill=item.skill or "(none)",
            difficulty=item.difficulty,
            p_error=0.0 if edited or error is None else float(error.evidence.get("p_error", 0.0)),
            distractor_score=distractors.score if distractors else 1.0,
            length_tokens=item_length_tokens(item),
            defect=duplicate or (item.id in unfixable and error is not None and error.flag),
            distractors_replaceable=distractors_replaceable(item.choices),
            # the refiner's own rule, read before planning: the fix abstains at no tokens and the item goes
            # to review. A `make demo` bought 10 fixes priced at ~450 tokens each; 9 abstained so, and the
            # budget planned for them was left unspent (94.7% used)
            fix_abstains=fix_abstains(ctx, item),
        ))
    return profiles


def touched_items(ctx: AgentContext) -> set[str]:
    """Items that already had an edit decided (pilot or earlier round, committed or given up) and new
    items: they stay in the counts but get no further edit, so no item is edited twice and a failed
    edit is not bought again on the same evidence."""
    done = {o["item_id"] for o in ctx.store.outcomes() if not writes_new_item(o["operation"])}
    return done | {i.id for i in ctx.store.items(("new",))}


def size_floor(ctx: AgentContext) -> int | None:
    """The fewest items the refined set may hold: `options.min_size`, else `options.min_keep` of the valid
    input items (rounded up); no floor when the user allows shrinking and set no size."""
    options = ctx.options
    if options.min_size is not None:
        return options.min_size
    if options.allow_shrink:
        return None
    valid = sum(1 for _id, status, _reason in ctx.store.originals() if status != "failed")
    return math.ceil(options.min_keep * valid - 1e-9)


def new_item_outcomes(ctx: AgentContext) -> dict[Op, dict[str, tuple[int, int]]]:
    """(committed, finished) new-item edits per operation (expand, generate) and target (cell key, bucket),
    from one read of the store: the planner's evidence of which cells or buckets a written item can be
    measured into. Edits cut short by the budget measured nothing."""
    targets = {e["edit_id"]: (Op(e["operation"]), e["target"]) for e in ctx.store.edits()
               if writes_new_item(e["operation"])}
    tally: dict[Op, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for outcome in ctx.store.outcomes():
        aimed = targets.get(outcome["edit_id"])
        if aimed is None or "budget exhausted" in outcome["reason"]:
            continue
        counts = tally[aimed[0]][aimed[1]]
        counts[1] += 1
        counts[0] += outcome["status"] in SUCCEEDED
    return {op: {target: (passed, trials) for target, (passed, trials) in by_target.items()}
            for op, by_target in tally.items()}


def _aimed_at(outcomes: dict[Op, dict[str, tuple[int, int]]], target: str) -> dict[str, tuple[int, int]] | None:
    """The new-item outcomes of the operation that writes into a `target` ("cell": expand, "bucket":
    generate), as `build_problem` reads them per target; None when it has none."""
    return next((outcomes[op] for op in NEW_ITEM_OPS if REGISTRY[op].target == target and op in outcomes), None)


def observations(ctx: AgentContext) -> list[PilotObservation]:
    """One row per finished edit (pilot and graph rounds): its tokens over all attempts, and whether it
    was committed. Edits cut short by the budget are left out (they measured nothing), and so are
    abstentions: a fix that declined on the stored evidence cost nothing and tried nothing, and is priced
    apart (`Item.fix_abstains`); fitted in, it would price every real fix too cheap and too likely to fail."""
    edits = ctx.store.edits()
    abstained = {e["edit_id"] for e in edits if (e.get("reason") or "").startswith(ABSTAINED)}
    outcomes = {o["edit_id"]: o for o in ctx.store.outcomes() if o["edit_id"] not in abstained}
    tokens: dict[str, float] = defaultdict(float)
    length: dict[str, float] = {}
    for edit in edits:
        outcome = outcomes.get(edit["edit_id"])
        if outcome is None or "budget exhausted" in outcome["reason"]:
            continue
        tokens[edit["edit_id"]] += float(edit["tokens"])
        if edit["edit_id"] not in length and edit["before"]:
            length[edit["edit_id"]] = item_length_tokens(edit["before"])
    return [PilotObservation(op=Op(outcomes[e]["operation"]), length_tokens=length.get(e, 0.0), tokens=t,
                             passed=outcomes[e]["status"] in SUCCEEDED) for e, t in tokens.items()]


def edit_catalogue(enabled: list[str], max_attempts: int, options: RunOptions | None = None) -> Catalogue:
    """Priors per *planned edit* rather than per attempt: the graph retries a rejected candidate up to
    `max_attempts` times, so an edit costs E[attempts] = sum_a (1 - s)^a attempts and lands with
    probability 1 - (1 - s)^max_attempts. Observations are per edit too (see `observations`). Which
    items an operation may be bought for follows the run's options (`allow_shrink`, the p_error floors)."""
    options = options or RunOptions()
    base = Catalogue(applicability=ApplicabilityPolicy(
        enabled=frozenset(Op(o) for o in enabled), allow_shrink=options.allow_shrink,
        fix_min_p_error=options.fix_min_p_error, remove_min_p_error=options.remove_min_p_error))
    specs = {}
    for op, spec in base.specs.items():
        s = spec.success_prob
        if not REGISTRY[op].validated:  # never validated, so never retried (remove)
            specs[op] = spec
            continue
        attempts = sum((1 - s) ** a for a in range(max_attempts))
        landed = min(0.999, 1 - (1 - s) ** max_attempts)
        strength = spec.success.alpha + spec.success.beta
        specs[op] = spec.model_copy(update={
            "cost": CostModel(intercept=spec.cost.intercept * attempts, slope=spec.cost.slope * attempts),
            "success": SuccessModel.prior(landed, strength)})
    return Catalogue(specs=specs, applicability=base.applicability)


def current_catalogue(ctx: AgentContext, enabled: list[str]) -> tuple[Catalogue, int]:
    """The edit catalogue refitted on every finished edit so far; returns it and the number of rows used."""
    catalogue = edit_catalogue(enabled, ctx.options.max_attempts, ctx.options)
    obs = observations(ctx)
    return (catalogue.updated(obs) if obs else catalogue), len(obs)


def make_problem(ctx: AgentContext, budget: float, enabled: list[str],
                 catalogue: Catalogue | None = None) -> Problem:
    """The planning instance: user targets, N fixed at the first plan, touched items frozen."""
    profiles = item_profiles(ctx)
    total = ctx.store.get_meta("target_total")
    if total is None:  # "same size, better spread": N is the size when the first plan was made
        total = len(profiles)
        ctx.store.set_meta("target_total", total)
    targets, buckets = targets_from_resolved(ctx.targets, total=total)
    if catalogue is None:
        catalogue, _ = current_catalogue(ctx, enabled)
    outcomes = new_item_outcomes(ctx)
    problem = build_problem(profiles, budget, targets=targets, catalogue=catalogue, buckets=buckets,
                            min_size=size_floor(ctx), cell_outcomes=_aimed_at(outcomes, "cell"),
                            bucket_outcomes=_aimed_at(outcomes, "bucket"))
    frozen = touched_items(ctx)
    for item in problem.items:
        if item.id in frozen:  # a failed fix may still be removed: the one exception to "no second edit"
            item.candidates = [c for c in item.candidates if REGISTRY[c.op].removes_item and item.defect]
    return problem


def solver_policy(n_items: int) -> SolverPolicy:
    """Fast enough for an interactive round. Large instances are usually certified at once by the LP
    bound; small lumpy ones (a 60-item demo: LP bound ~3% above the optimum) need the MIP, which proves
    a 1% gap in about 2 s there, so the limit is 5 s plus 1 s per 200 items, capped at 15 s. 1% because
    costs and success rates are estimates good to about 10%; past the limit the best plan found is used
    (status `feasible`)."""
    return SolverPolicy(time_limit_s=min(15.0, 5.0 + n_items / 200.0), gap=0.01)


def trace_outputs(payload: dict[str, Any]) -> dict[str, Any]:
    """The tool's answer as the trace keeps it: everything, with long assignment lists cut."""
    out = dict(payload)
    assignments = out.get("assignments")
    if isinstance(assignments, list) and len(assignments) > TRACE_ASSIGNMENTS:
        out["assignments"] = assignments[:TRACE_ASSIGNMENTS]
        out["assignments_omitted"] = len(assignments) - TRACE_ASSIGNMENTS
    return out


def _tool_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """A LangChain tool run's outputs are `{"output": answer}`: the tree keeps the answer itself, cut."""
    answer = outputs.get("output", outputs)
    return trace_outputs(answer) if isinstance(answer, dict) else outputs


def _problem_digest(args: dict[str, Any]) -> dict[str, Any]:
    """Tool inputs for the trace: the request, with the instance summarised (not every item)."""
    shown = {k: v for k, v in args.items() if k != "problem"}
    problem = args.get("problem")
    if problem is not None:
        p = problem if isinstance(problem, Problem) else Problem.model_validate(problem)
        by_op: dict[str, int] = defaultdict(int)
        for item in p.items:
            for cand in item.candidates:
                by_op[cand.op.value] += 1
        shown["problem"] = {
            "items": len(p.items), "frozen_items": sum(1 for i in p.items if not i.candidates),
            "candidates_by_op": dict(by_op), "new_options": len(p.new_options), "budget": p.budget,
            "targets": p.targets.model_dump(), "weights": p.weights.model_dump(), "buckets": p.buckets,
        }
    return shown


def call_plan_tool(ctx: AgentContext, problem: Problem, mode: str, policy: SolverPolicy,
                   catalogue: Catalogue | None = None) -> Plan:
    """Solve through the LangChain tool. Its run nests in the run tree under the current run; the tree
    keeps a digest of the instance and the answer with long assignment lists cut, not every item."""
    tool = make_plan_tool(catalogue=catalogue, policy=policy)
    args = {"problem": problem, "mode": mode, "time_limit_s": policy.time_limit_s, "gap": policy.gap,
            "detail": "full"}
    ctx.tracer.show(TOOL_NAME, inputs=_problem_digest, outputs=_tool_outputs)
    payload = tool.invoke(args, config={"run_name": TOOL_NAME})
    return plan_from_payload(payload)


def plan_from_payload(payload: dict[str, Any]) -> Plan:
    """Rebuild the `Plan` from the tool's full JSON answer (what the graph turns into edit tasks)."""
    fields = {k: v for k, v in payload.items() if k in Plan.model_fields}
    return Plan.model_validate(fields)


def plan_for_budget(ctx: AgentContext, available: float | None, enabled: list[str],
                    mode: str) -> tuple[Plan, Problem, dict[str, Any]]:
    """Plan against PLAN_SAFETY of `available` tokens (None: unlimited), traced; returns the plan, the
    instance and what it was based on (budget, catalogue, observations)."""
    budget = float(available) * PLAN_SAFETY if available is not None else 1e9
    catalogue, n_obs = current_catalogue(ctx, enabled)
    problem = make_problem(ctx, budget, enabled, catalogue)
    policy = solver_policy(len(problem.items))
    basis = {"mode": mode, "available": available, "budget": budget, "safety": PLAN_SAFETY,
             "items": len(problem.items), "frozen_items": sum(1 for i in problem.items if not i.candidates),
             "new_options": len(problem.new_options), "enabled": enabled, "observations": n_obs,
             "min_size": problem.min_size,
             "policy": {"time_limit_s": policy.time_limit_s, "gap": policy.gap},
             "catalogue": catalogue_summary(catalogue, enabled)}
    with ctx.tracer.span("ilp_plan", "tool", basis, tags=["planner"]) as run:
        plan = call_plan_tool(ctx, problem, mode, policy, catalogue)
        run.outputs = plan_summary(plan)
    return plan, problem, basis


def plan_round(ctx: AgentContext, enabled: list[str], mode: str) -> tuple[Plan, Problem]:
    """Solve for this round with the budget left in the ledger and the costs observed so far."""
    plan, problem, _ = plan_for_budget(ctx, ctx.ledger.available, enabled, mode)
    return plan, problem


def catalogue_summary(catalogue: Catalogue, enabled: list[str]) -> dict[str, dict[str, float]]:
    """Per enabled operation: tokens = intercept + slope * length, success, observations behind it."""
    out = {}
    for op in enabled:
        spec = catalogue.spec(op)
        out[op] = {"intercept": round(spec.cost.intercept, 1), "slope": round(spec.cost.slope, 3),
                   "success": round(spec.success_prob, 4), "observations": spec.cost.n_observations}
    return out


def plan_summary(plan: Plan) -> dict[str, Any]:
    """Plain JSON types only: this goes into the checkpointed state, which must not hold our enums."""
    data = plan.model_dump(mode="json", exclude={"assignments", "new_items"})
    data["assignments"] = len(plan.assignments)
    data["new_items"] = [n.model_dump(mode="json") for n in plan.new_items if n.count]
    return data
