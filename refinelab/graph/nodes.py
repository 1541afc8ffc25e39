"""The graph's nodes. Each declares the state keys it reads and writes (checked when the graph is built).

Nodes get the run's handles (store, ledger, clients) from LangGraph's runtime context, never from the
state, so checkpoints hold ids and counts only.

Tracing: LangGraph itself opens each node's run (the graph runs under the run's callbacks), so a node
opens no run of its own name. Inside, a node opens runs for what it does: an edit (named by its edit id,
under `refine` and `validate`), the pilot's choice, a round's collection. The model calls made there
nest under them: node → edit → LLM call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command, Send, interrupt

from refinelab.agents.context import AgentContext
from refinelab.agents.edit_tasks import tasks_from_plan
from refinelab.agents.pilot import pilot_summary, pilot_tasks
from refinelab.agents.planner_agent import plan_round, plan_summary
from refinelab.agents.profile_cost import profile_cost, profile_cost_notice
from refinelab.agents.profiler import profile_items
from refinelab.agents.refiner import refine
from refinelab.agents.validation.strength import review_kind
from refinelab.agents.validation.verdicts import validate
from refinelab.errors import BudgetExhausted, EndpointUnavailable
from refinelab.graph.outputs import write_outputs
from refinelab.graph.review import (
    ReviewDecision,
    ReviewRequest,
    edited_item,
    parse_decision,
    policy_decision,
    record,
    recorded,
)
from refinelab.operations import operation
from refinelab.schema import QAItem
from refinelab.state import (
    COMMITTED,
    CONFIRMED,
    GAVE_UP,
    PILOT_ROUND,
    Candidate,
    EditTask,
    EditTaskState,
    RefineState,
    Verdict,
)
from refinelab.tools.tracing import Span

F = TypeVar("F", bound=Callable[..., Any])


def node(reads: tuple[str, ...], writes: tuple[str, ...]) -> Callable[[F], F]:
    """Declare what a node reads from and writes to the state (like a distilabel step's columns)."""

    def mark(fn: F) -> F:
        fn.reads, fn.writes = reads, writes  # type: ignore[attr-defined]
        return fn

    return mark


def _emit(event: dict[str, Any]) -> None:
    with contextlib.suppress(RuntimeError):  # called outside a streaming run
        get_stream_writer()(event)


def _ledger(ctx: AgentContext) -> dict[str, Any]:
    summary = ctx.ledger.summary()
    return {k: summary[k] for k in ("cap", "spent", "calls", "retries", "parse_failures")}


# ------------------------------------------------------------------------------------------- load

@node(reads=("run_id",), writes=("phase", "counts", "round"))
def load(state: RefineState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """The dataset is put in the store by the caller before the graph starts; here we check and count."""
    ctx = runtime.context
    counts = ctx.store.status_counts()
    if not counts.get("kept"):
        raise ValueError("the run store holds no valid input items")
    return {"phase": "profile", "counts": counts, "round": 0}


# ---------------------------------------------------------------------------------------- profile

def _profile_all(ctx: AgentContext, items: list[QAItem], node_name: str, what: str = "profiling") -> tuple[int, str]:
    """Profile items (the profiler agent decides how); stream progress; returns (profiled, stop reason)."""

    def progress(done: int, total: int) -> None:
        _emit({"progress": node_name, "done": done, "total": total, "spent": ctx.ledger.spent, "cap": ctx.ledger.cap})

    return profile_items(ctx, items, progress, what)


@node(reads=("round",), writes=("phase", "counts", "ledger", "stop_reason"))
def profile(state: RefineState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Measure the input; first say what that will cost when it is most of the budget (agents/profile_cost.py)."""
    ctx = runtime.context
    items = ctx.store.items(("kept",))
    cost = profile_cost(ctx, items)
    if ctx.store.get_meta("profile_forecast") is None:  # the first visit's forecast; a resume keeps it
        ctx.store.set_meta("profile_forecast", cost.as_dict())
    if notice := profile_cost_notice(ctx, cost, ctx.ledger.cap):
        ctx.store.set_meta("profile_notice", notice)
        _emit({"notice": notice})
    _done, stop = _profile_all(ctx, items, "profile")
    update: dict[str, Any] = {"phase": "plan", "counts": ctx.store.status_counts(), "ledger": _ledger(ctx)}
    if stop:
        update["stop_reason"] = stop
    return update


# ------------------------------------------------------------------------------------------- plan

@node(reads=("round", "stop_reason", "piloted"), writes=("plan", "plans", "tasks", "phase", "round", "piloted"))
def plan(state: RefineState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """First visit: the pilot (round 0) measures real costs and pass rates through the same refine →
    validate → commit path as every round. Then one ILP plan per round on what was observed."""
    ctx = runtime.context
    enabled = list(ctx.options.operations)
    if not state.get("piloted") and not state.get("stop_reason") and not ctx.options.dry_run:
        with ctx.tracer.span("pilot", "chain", {"per_op": ctx.options.pilot_per_op,
                                                "share": ctx.options.pilot_share, "enabled": enabled}) as run:
            chosen = pilot_tasks(ctx, enabled)
            run.outputs = ({"tasks": [t.edit_id for t in chosen]} if isinstance(chosen, list)
                           else dataclasses.asdict(chosen))
        if isinstance(chosen, list):
            return {"tasks": [t.payload() for t in chosen], "phase": "pilot", "round": PILOT_ROUND, "piloted": True}
    round_ = state.get("round", 0) + 1
    solved, _problem = plan_round(ctx, enabled, ctx.options.planner_mode)  # traced as the ilp_plan tool run
    summary = plan_summary(solved) | {"round": round_}
    tasks: list[EditTaskState] = []
    if not state.get("stop_reason") and not ctx.options.dry_run:
        tasks = tasks_from_plan(ctx, solved, round_)
    ctx.store.set_meta(f"plan_round_{round_}", summary)
    return {"plan": summary, "plans": [summary], "tasks": tasks, "phase": "refine", "round": round_, "piloted": True}


def dispatch(state: RefineState) -> list[Send] | str:
    """Fan out: one `Send` per planned edit; nothing to do goes to wrap_up (then finalize)."""
    tasks = state.get("tasks") or []
    if not tasks:
        return "wrap_up"
    return [Send("refine", task) for task in tasks]


# ------------------------------------------------------------------------------------------ refine

def _task(payload: EditTaskState) -> EditTask:
    return EditTask(**payload)


def _edit_span(ctx: AgentContext, task: EditTask, payload: EditTaskState) -> contextlib.AbstractContextManager[Span]:
    """The run of one edit attempt inside a refine or validate node: its model calls nest under it."""
    return ctx.tracer.span(task.edit_id, "chain", dict(payload), tags=[task.operation, f"attempt:{task.attempt}"],
                           metadata={"edit_id": task.edit_id, "item_id": task.item_id, "operation": task.operation,
                                     "round": task.round, "attempt": task.attempt})


@node(reads=("edit task",), writes=())
def refine_node(payload: EditTaskState, runtime: Runtime[AgentContext]) -> Command[Any]:
    ctx = runtime.context
    task = _task(payload)
    with _edit_span(ctx, task, payload) as run:
        before = ctx.store.item(task.item_id)
        if not operation(task.operation).calls_model:
            candidate = Candidate(None, "", 0)
        else:
            try:
                candidate = refine(ctx, task)
            except BudgetExhausted as exc:
                candidate = Candidate(None, "", 0, error=f"budget exhausted: {exc}")
        ctx.store.record_attempt(task.edit_id, task.attempt, task.round, task.item_id, task.operation, task.target,
                                 before, candidate.item, candidate.raw, candidate.tokens, candidate.error)
        run.outputs = {"candidate": candidate.item.model_dump() if candidate.item else None, "error": candidate.error}
    return Command(goto=Send("validate", {**payload}))


@node(reads=("edit task",), writes=("outcomes",))
def validate_node(payload: EditTaskState, runtime: Runtime[AgentContext]) -> Command[Any]:
    ctx = runtime.context
    task = _task(payload)
    with _edit_span(ctx, task, payload) as run:
        after = ctx.store.attempt_after(task.edit_id, task.attempt)
        candidate = Candidate(after, "", 0, error=ctx.store.attempt_error(task.edit_id, task.attempt))
        try:
            verdict = validate(ctx, task, candidate)
        except BudgetExhausted as exc:
            verdict = Verdict(False, f"budget exhausted: {exc}", "budget")
        ctx.store.record_verdict(task.edit_id, task.attempt, "pass" if verdict.passed else "fail", verdict.reason,
                                 {"method": verdict.method, **verdict.evidence}, verdict.tokens)
        run.outputs = {"passed": verdict.passed, "reason": verdict.reason, "method": verdict.method}
    return route_after_validate(ctx, task, verdict, after)


def route_after_validate(ctx: AgentContext, task: EditTask, verdict: Verdict, after: QAItem | None) -> Command[Any]:
    """The router: pass → commit; fail with attempts left → refine again with the reason; else give up.
    A pass below the evidence bar, a last attempt the validator could not decide, or a refiner that
    abstained on the evidence, goes to review."""
    kind = review_kind(verdict, ctx.options.review_evidence_bar)
    out_of_budget = verdict.method == "budget" or "budget exhausted" in verdict.reason
    if verdict.passed and kind is None:
        outcome = _commit(ctx, task, after)
        ctx.store.set_outcome(task.edit_id, task.item_id, task.operation, task.round, outcome, verdict.reason,
                              task.attempt + 1)
        return Command(update={"outcomes": [task.edit_id]}, goto="collect")
    abstained = bool(verdict.evidence.get("abstained"))  # the refiner declined: another attempt would too
    if not verdict.passed and task.attempt + 1 < ctx.options.max_attempts and not out_of_budget and not abstained:
        retry = dataclasses.replace(task, attempt=task.attempt + 1, feedback=verdict.reason)
        return Command(goto=Send("refine", retry.payload()))
    if kind is not None and not out_of_budget:
        request = ReviewRequest(key=task.edit_id, kind=kind, item_id=task.item_id, edit_id=task.edit_id,
                                attempt=task.attempt, operation=task.operation, round=task.round,
                                reason=verdict.reason, method=verdict.method)
        if ctx.options.review == "ask":
            return Command(goto=Send("review", request.model_dump()))
        return apply_review(ctx, request, policy_decision(ctx.options.review))
    ctx.store.set_outcome(task.edit_id, task.item_id, task.operation, task.round, GAVE_UP,
                          f"kept the original: {verdict.reason}", task.attempt + 1)
    return Command(update={"outcomes": [task.edit_id]}, goto="collect")


# ------------------------------------------------------------------------------------------ review

@node(reads=("edit task",), writes=("outcomes",))
def review_node(payload: dict[str, Any], runtime: Runtime[AgentContext]) -> Command[Any]:
    """Pause for a person (`interrupt`); resumed with a `ReviewDecision`. `skip` asks again later.

    Nothing before the `interrupt` has side effects: LangGraph re-runs the node from the top on resume."""
    ctx = runtime.context
    request = ReviewRequest.model_validate(payload)
    decision = parse_decision(interrupt(request.model_dump()), f"review of {request.key}")
    while decision.decision == "skip":
        decision = parse_decision(interrupt(request.model_dump()), f"review of {request.key}")
    with ctx.tracer.span(f"review:{request.kind}", "chain", request.model_dump(), tags=["review"]) as run:
        command = apply_review(ctx, request, decision.stamped("reviewer"))
        run.outputs = {"decision": decision.decision, "by": decision.by}
    return command


def apply_review(ctx: AgentContext, request: ReviewRequest, decision: ReviewDecision) -> Command[Any]:
    """Carry out a decision: commit the proposal (accept), the reviewer's version (edit), or keep the
    original (reject); for a flagged item, or a fix that abstained and so proposed nothing, accept removes
    it. Recorded with who/when."""
    decision = decision.model_copy(update={"key": request.key})
    by = decision.by or "reviewer"
    if request.kind == "unfixable":
        if decision.decision == "accept":
            ctx.store.mark(request.item_id, "removed", f"flag accepted in review by {by}: {request.reason}")
        elif decision.decision == "edit":
            ctx.store.replace_item(edited_item(ctx.store.item(request.item_id), decision, "review"), "edited")
        record(ctx, request, decision)
        return Command(goto=request.goto)
    assert request.edit_id is not None and request.attempt is not None  # edit cases always carry them
    task = EditTask(edit_id=request.edit_id, item_id=request.item_id, operation=request.operation,
                    round=request.round, attempt=request.attempt)
    after = ctx.store.attempt_after(request.edit_id, request.attempt)
    if decision.decision == "accept" and after is None:  # an abstained fix proposed nothing: its doubt stands
        ctx.store.mark(request.item_id, "removed", f"doubt accepted in review by {by}: {request.reason}")
        status, reason = GAVE_UP, f"no fix proposed; the item was removed in review by {by}: {request.reason}"
    elif decision.decision in ("accept", "edit"):
        if decision.decision == "edit":
            after = edited_item(after or ctx.store.item(request.item_id), decision, request.operation)
        status, reason = _commit(ctx, task, after), f"{decision.decision}ed in review by {by}: {request.reason}"
    else:
        status, reason = GAVE_UP, f"kept the original: rejected in review by {by}: {request.reason}"
    ctx.store.set_outcome(task.edit_id, task.item_id, task.operation, task.round, status, reason, task.attempt + 1)
    record(ctx, request, decision)
    return Command(update={"outcomes": [task.edit_id]}, goto="collect")


def leftover_requests(ctx: AgentContext) -> list[ReviewRequest]:
    """Flagged items still as they came in (no edit fixed them) that no one has decided on yet."""
    decided = recorded(ctx)
    return [ReviewRequest(key=f"item:{d.item_id}", kind="unfixable", item_id=d.item_id, goto="finalize",
                          reason=f"screening flagged it ({d.evidence.get('error_type') or 'error'}, p_error "
                                 f"{d.evidence.get('p_error')}) and no edit fixed it", method="screening")
            for d in ctx.store.unsettled_flags() if f"item:{d.item_id}" not in decided]


def _finish(ctx: AgentContext, update: dict[str, Any]) -> Command[Any]:
    """Go to finalize — through review of the flagged items no edit fixed, when asked to."""
    mode = ctx.options.review
    leftovers = leftover_requests(ctx) if mode != "auto-reject" and not ctx.options.dry_run else []
    if mode == "ask" and leftovers:
        return Command(update=update, goto=[Send("review", r.model_dump()) for r in leftovers])
    for request in leftovers:  # auto-accept: the flags stand, the items go
        apply_review(ctx, request, policy_decision(mode))
    if leftovers:
        update = {**update, "counts": ctx.store.status_counts()}
    return Command(update=update, goto="finalize")


def _commit(ctx: AgentContext, task: EditTask, after: QAItem | None) -> str:
    """Apply a passed edit to the store as its operation says: remove, add a new item, or replace; return
    the outcome. A passed edit that returns the item unchanged (a fix whose key the evidence confirmed)
    is `CONFIRMED`: the item stays "kept" with its text and its source row, and `provenance.confirmed_by`
    names the fix, so the p_error it was bought for no longer counts (the planner and the report read
    that). A fresh `make demo` had counted such an item "edited" although no text changed."""
    status = operation(task.operation).committed_status
    if status == "removed":
        ctx.store.mark(task.item_id, "removed", f"removed in round {task.round}")
        return COMMITTED
    if after is None:
        raise ValueError(f"edit {task.edit_id} passed validation without a candidate item")
    run_id = ctx.store.get_meta("run_id")
    if status == "new":
        ctx.store.add_item(after.model_copy(update={"provenance": after.provenance.model_copy(
            update={"run_id": run_id})}))
        return COMMITTED
    current = ctx.store.item(task.item_id)
    if after.same_text(current):  # its status stays too: an item an earlier round edited is still "edited"
        ctx.store.replace_item(current.model_copy(update={"provenance": current.provenance.model_copy(
            update={"confirmed_by": task.operation, "run_id": run_id})}), ctx.store.status(task.item_id) or "kept")
        return CONFIRMED
    ctx.store.replace_item(after.model_copy(update={"provenance": after.provenance.model_copy(
        update={"run_id": run_id})}), "edited")
    return COMMITTED


# ---------------------------------------------------------------------------------- collect/replan

@node(reads=("round", "plan", "stop_reason", "tasks", "collected_round"),
      writes=("phase", "counts", "ledger", "stop_reason", "collected_round"))
def collect(state: RefineState, runtime: Runtime[AgentContext]) -> Command[Any]:
    """Deferred until every edit of the round is final; then measure new items and decide: replan or finish."""
    ctx = runtime.context
    round_ = state.get("round", 1)
    planned = {t["edit_id"] for t in state.get("tasks") or []}
    if not planned <= {o["edit_id"] for o in ctx.store.outcomes(round_)}:
        # LangGraph's `defer` does not wait for Sends scheduled in later supersteps (loop-backs), so an
        # early trigger ends here; the round's last final edit triggers collect again.
        return Command(goto=[])
    if state.get("collected_round") == round_:  # a second trigger after the round was already collected
        return Command(goto=[])
    if round_ == PILOT_ROUND:  # the pilot's edits are final: summarise them, then the first plan
        with ctx.tracer.span("pilot_collect", "chain", {"round": round_}) as run:
            run.outputs = dataclasses.asdict(pilot_summary(ctx))
        return Command(update={"phase": "plan", "counts": ctx.store.status_counts(), "ledger": _ledger(ctx),
                               "collected_round": round_}, goto="plan")
    with ctx.tracer.span("replan", "chain", {"round": round_}) as run:
        # what no measurement has described yet: an edited or new item without a label, or a new item that
        # was labelled when its cell was measured (expand) but has no difficulty yet
        fresh = [i for i in ctx.store.items(("edited", "new")) if not ctx.store.has_diagnostic(i.id, "label")
                 or (ctx.store.status(i.id) == "new" and not ctx.store.has_diagnostic(i.id, "difficulty"))]
        _, stop = _profile_all(ctx, fresh, "measure", what=f"the measuring of round {round_}'s edited and new items")
        available = ctx.ledger.available
        stop = stop or state.get("stop_reason", "")
        if not stop and round_ >= ctx.options.rounds:
            stop = f"finished {round_} round(s)"
        if not stop and available is not None and available < 500:
            stop = "budget spent"
        if not stop and not state.get("plan", {}).get("assignments") and not state.get("plan", {}).get("new_items"):
            stop = "the last plan was empty"
        run.outputs = {"stop": stop, "available": available}
    update = {"phase": "finalize" if stop else "plan", "counts": ctx.store.status_counts(), "ledger": _ledger(ctx),
              "stop_reason": stop, "collected_round": round_}
    return _finish(ctx, update) if stop else Command(update=update, goto="plan")


@node(reads=("stop_reason",), writes=("counts", "stop_reason"))
def wrap_up(state: RefineState, runtime: Runtime[AgentContext]) -> Command[Any]:
    """A plan with nothing to do ends the run here: through review of unfixed flagged items, when asked.

    The report always says why a run stopped; a stop reached here without one (a pilot or round whose plan
    bought nothing, a dry run) names that, not an empty string."""
    ctx = runtime.context
    stop = state.get("stop_reason") or ("a dry run plans and stops" if ctx.options.dry_run else _bought_nothing(ctx))
    return _finish(ctx, {"counts": ctx.store.status_counts(), "stop_reason": stop})


def _bought_nothing(ctx: AgentContext) -> str:
    """Why a plan with no edit ended the run, with what was left to spend: a cold `make demo` stopped with
    "the plan had nothing to do" and 704 tokens left, which read as if the set needed nothing."""
    available = ctx.ledger.available
    if available is None:
        return "the plan bought nothing"
    return f"the plan bought nothing with the {available:,} tokens left"


@node(reads=("plans", "stop_reason"), writes=("phase", "counts", "ledger"))
def finalize(state: RefineState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    failing = ctx.ledger.mostly_failed()
    if failing:  # e.g. timeouts ate the budget: a run whose calls mostly failed is not finished
        raise EndpointUnavailable("(model endpoints)", 0, ctx.ledger.tripped["error"] if ctx.ledger.tripped
                                  else "", reason=failing)
    write_outputs(ctx, state)
    return {"phase": "done", "counts": ctx.store.status_counts(), "ledger": _ledger(ctx)}
