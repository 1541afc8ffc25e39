"""The planner as a LangChain tool, so the planner agent node calls it and the trace records the call.

The tool takes either a ready `Problem` or plain per-item profiles (+ budget, targets) and returns a
compact JSON-able plan: totals by operation and group, forecast tokens, expected metric changes, the
marginal value of budget, and (with detail="full") every assignment.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from refinelab.config import PlannerMode
from refinelab.planner.catalogue import Catalogue
from refinelab.planner.ilp import Plan, SolverPolicy, solve
from refinelab.planner.problem import ItemProfile, PlanTargets, Problem, Weights, build_problem

TOOL_NAME = "plan_refinement"
TOOL_DESCRIPTION = (
    "Decide which refinement operation (remove, expand, generate, calibrate, rewrite_distractors, fix) to "
    "buy for which item, and how many new items to write per cell or difficulty bucket, to maximise "
    "dataset quality within a token budget. Solves an integer linear program (or a baseline mode). "
    "Returns the plan totals, forecast tokens, expected metric changes and the value of 1k more tokens."
)


class PlanRequest(BaseModel):
    """Arguments of the planning tool: a Problem, or profiles + budget (+ targets, weights)."""

    model_config = ConfigDict(extra="forbid")

    problem: Problem | None = Field(None, description="a complete planning instance")
    profiles: list[ItemProfile] | None = Field(None, description="per-item profile rows (instead of problem)")
    budget: float | None = Field(None, ge=0, description="tokens left; required with profiles, overrides problem's")
    targets: PlanTargets | None = Field(None, description="target shares per cell and per difficulty bucket")
    weights: Weights | None = Field(None, description="objective weights")
    mode: PlannerMode = "ilp"
    time_limit_s: float = Field(10.0, gt=0)
    gap: float = Field(5e-3, ge=0)
    detail: Literal["summary", "full"] = "summary"

    @model_validator(mode="after")
    def _one_source(self) -> PlanRequest:
        if (self.problem is None) == (self.profiles is None):
            raise ValueError("give exactly one of problem or profiles")
        if self.profiles is not None and self.budget is None:
            raise ValueError("budget is required with profiles")
        return self


def plan_payload(plan: Plan, detail: str = "summary") -> dict[str, Any]:
    """What the tool returns (and so what the trace shows)."""
    payload: dict[str, Any] = {
        "mode": plan.mode, "status": plan.status, "solver": plan.solver, "reason": plan.reason,
        "budget": plan.budget, "forecast_tokens": plan.forecast_tokens, "objective": plan.objective,
        "by_op": {k: v.model_dump() for k, v in plan.by_op.items()},
        "by_op_and_group": plan.by_op_and_group(),
        "metrics": {k: {"before": m.before, "after": m.after} for k, m in plan.metrics.items()},
        "marginal_value_per_1k": plan.marginal_value_per_1k,
        "solve_seconds": plan.solve_seconds, "notes": plan.notes,
    }
    if detail == "full":
        payload["assignments"] = [a.model_dump(mode="json") for a in plan.assignments]
        payload["new_items"] = [n.model_dump(mode="json") for n in plan.new_items]
    return payload


def make_plan_tool(catalogue: Catalogue | None = None, policy: SolverPolicy | None = None) -> StructuredTool:
    """A tool bound to a catalogue (e.g. one refitted from the pilot) and a solver policy."""
    base_policy = policy or SolverPolicy()

    def _plan(**kwargs: Any) -> dict[str, Any]:
        request = PlanRequest(**kwargs)
        if request.problem is not None:
            problem = request.problem
            updates: dict[str, Any] = {}
            if request.budget is not None:
                updates["budget"] = request.budget
            if request.targets is not None:
                updates["targets"] = request.targets
            if request.weights is not None:
                updates["weights"] = request.weights
            if updates:
                problem = problem.model_copy(update=updates)
        else:
            problem = build_problem(request.profiles or [], budget=request.budget or 0.0,
                                    targets=request.targets, catalogue=catalogue, weights=request.weights)
        run_policy = base_policy.model_copy(update={"time_limit_s": request.time_limit_s, "gap": request.gap})
        plan = solve(problem, mode=request.mode, policy=run_policy)
        return plan_payload(plan, request.detail)

    return StructuredTool.from_function(func=_plan, name=TOOL_NAME, description=TOOL_DESCRIPTION,
                                        args_schema=PlanRequest)
