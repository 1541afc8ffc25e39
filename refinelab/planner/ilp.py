"""The budget-allocation ILP (docs/planner.md) and the single `solve` entry point for every planning mode.

Model (on item classes, see aggregate.py; a class of one item is the textbook per-item binary):
  z[r] in {0..|class|}  edits of kind r bought for members of its class, sum_r z[r] <= |class|
  y[o] in {0..ub[o]}    new items written through option o (expand: a cell, generate: a bucket)
  n[g] = n0[g] - sum success*z (remove: its cell and bucket; calibrate: its bucket) + sum success*z
         (calibrate: target bucket) + sum success*y                               (expected counts)
  d[g] >= n[g] - T[g],  d[g] >= T[g] - n[g],  T[g] = share[g] * N (N fixed, default = current size)
  sum cost*z + sum cost*y <= B
  max  w_err * sum errors_fixed*z + w_dis * sum distractor_gain*z - w_cov * sum_cells d - w_diff * sum_buckets d
The reported objective is that value minus the value of doing nothing, evaluated exactly per item.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pulp
from pydantic import BaseModel, ConfigDict, Field

from refinelab.config import PLANNER_MODES, PlannerMode
from refinelab.operations import Op, operation
from refinelab.planner.aggregate import (
    NONE,
    OP_CODE,
    OPS,
    AggregationPolicy,
    Classes,
    Compiled,
    Selection,
    build_classes,
    compile_problem,
    cost,
    deviation_penalty,
    disaggregate,
    empty_selection,
    group_counts,
    objective,
)
from refinelab.planner.baselines import (
    ClassPlan,
    class_objective,
    greedy_fill,
    random_selection,
    repair_budget,
    round_down,
)
from refinelab.planner.problem import Problem, gc_paused

EPS = 1e-9


class SolverPolicy(BaseModel):
    """How to solve: which backend, how long, how exact, how much to aggregate, what extras to compute."""

    model_config = ConfigDict(extra="forbid")

    solver: Literal["auto", "highs", "cbc"] = "auto"  # auto: HiGHS when highspy is installed, else CBC
    time_limit_s: float = Field(10.0, gt=0.0)
    # Relative MIP gap. 0.5% by default: costs and success rates are pilot estimates good to ~10%, so a
    # tighter proof buys nothing real, and on a few hundred near-identical items closing the last 0.3%
    # can take the MIP longer than the time limit. Use ~1e-9 for a proof of optimality on small instances.
    gap: float = Field(5e-3, ge=0.0)
    threads: int = Field(1, ge=1)
    seed: int = 0  # random mode
    marginal: Literal["dual", "resolve", "none"] = "dual"  # how to price 1k more tokens
    aggregation: AggregationPolicy = Field(default_factory=AggregationPolicy)


class Assignment(BaseModel):
    """One bought edit on one existing item."""

    item_id: str
    op: Op
    cost: float
    success: float
    expected_gain: float  # the objective lost if only this edit were dropped from the plan
    cell: str = ""
    bucket: str = ""
    to_bucket: str | None = None


class NewItems(BaseModel):
    """New items to write through one option."""

    op: Op
    cell: str | None
    bucket: str | None
    count: int
    cost_each: float
    success: float
    expected_gain: float  # objective lost if this option's count were set to zero


class MetricChange(BaseModel):
    before: float
    after: float
    note: str = ""

    @property
    def change(self) -> float:
        return self.after - self.before


class OpTotal(BaseModel):
    count: int = 0
    tokens: float = 0.0


class Plan(BaseModel):
    """What to buy, what it should cost and what it should change; `reason` says why when it is empty."""

    model_config = ConfigDict(extra="forbid")

    mode: str
    status: Literal["optimal", "feasible", "heuristic", "fallback", "empty"]
    solver: str = ""
    reason: str = ""
    budget: float
    forecast_tokens: float = 0.0
    objective: float = 0.0
    assignments: list[Assignment] = Field(default_factory=list)
    new_items: list[NewItems] = Field(default_factory=list)
    by_op: dict[str, OpTotal] = Field(default_factory=dict)
    metrics: dict[str, MetricChange] = Field(default_factory=dict)
    marginal_value_per_1k: float | None = None  # objective gained per 1,000 extra tokens
    solve_seconds: float = 0.0
    classes: int = 0
    binned: bool = False
    notes: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.assignments and not any(n.count for n in self.new_items)

    def by_op_and_group(self) -> dict[str, dict[str, int]]:
        """Counts per operation and per cell (edits, expand) or bucket (generate, calibrate target)."""
        out: dict[str, dict[str, int]] = {}
        for a in self.assignments:
            group = a.to_bucket if operation(a.op).moves_bucket and a.to_bucket else a.cell
            row = out.setdefault(a.op.value, {})
            row[group] = row.get(group, 0) + 1
        for n in self.new_items:
            group = n.cell or n.bucket or "*"
            row = out.setdefault(n.op.value, {})
            row[group] = row.get(group, 0) + n.count
        return out

    def summary(self) -> str:
        """A few lines for a terminal or a trace."""
        lines = [f"plan[{self.mode}] {self.status}: {self.forecast_tokens:,.0f} / {self.budget:,.0f} tokens, "
                 f"objective +{self.objective:.3f}"]
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        lines += [f"  {op}: {t.count} ({t.tokens:,.0f} tokens)" for op, t in sorted(self.by_op.items())]
        lines += [f"  {name}: {m.before:.4f} -> {m.after:.4f}" for name, m in self.metrics.items()]
        if self.marginal_value_per_1k is not None:
            lines.append(f"  +1k tokens would add about {self.marginal_value_per_1k:.4f} objective")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# PuLP model


def _solver(policy: SolverPolicy, mip: bool, time_limit: float) -> tuple[pulp.LpSolver, str]:
    want = policy.solver
    if want in ("auto", "highs") and pulp.HiGHS().available():
        return pulp.HiGHS(mip=mip, msg=False, timeLimit=time_limit, gapRel=policy.gap,
                          threads=policy.threads), "highs"
    if want == "highs":
        raise RuntimeError("HiGHS requested but highspy is not installed")
    with warnings.catch_warnings():  # PuLP 3.3 deprecates the bundled CBC in favour of pulp[cbc]
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(mip=mip, msg=False, timeLimit=time_limit, gapRel=policy.gap,
                                 threads=policy.threads), "cbc"


_BANNER_SILENCED = False


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """highspy prints a licence banner on stdout at its first solver creation, whatever the options; a
    CLI that emits JSON on stdout must not get it, so the first HiGHS solve runs with fd 1 on /dev/null."""
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        yield
        return
    _BANNER_SILENCED = True
    try:
        saved = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class _Model:
    """The PuLP model on classes, plus handles to read the answer back."""

    def __init__(self, c: Compiled, classes: Classes, integer: bool, budget: float) -> None:
        w = c.problem.weights
        self.integer = integer
        self.baseline = deviation_penalty(c, c.n0_cell, c.n0_bucket)
        self.prob = pulp.LpProblem("refinelab_plan", pulp.LpMaximize)
        cat = pulp.LpInteger if integer else pulp.LpContinuous
        cap = classes.count[classes.row_class]
        has_effect = (classes.row_op == OP_CODE[Op.REMOVE]) | (classes.row_to_bucket != NONE)
        # prune rows that can never help (no value, no group effect) or never fit
        useful = ((classes.row_value > EPS) | has_effect) & (classes.row_cost <= budget + EPS)
        self.rows = np.flatnonzero(useful)
        self.z = {int(r): self._var(f"z{r}", int(cap[r]), cat) for r in self.rows}
        self.opts = np.flatnonzero(c.opt_ub > 0)
        self.y = {int(o): self._var(f"y{o}", int(c.opt_ub[o]), cat) for o in self.opts}

        cell_terms: list[list[tuple[pulp.LpVariable, float]]] = [[] for _ in c.cells]
        bucket_terms: list[list[tuple[pulp.LpVariable, float]]] = [[] for _ in c.buckets]
        per_class: dict[int, list[pulp.LpVariable]] = {}
        for r, var in self.z.items():
            k = int(classes.row_class[r])
            per_class.setdefault(k, []).append(var)
            s = float(classes.row_success[r])
            if classes.row_op[r] == OP_CODE[Op.REMOVE]:
                cell_terms[classes.cell[k]].append((var, -s))
                bucket_terms[classes.bucket[k]].append((var, -s))
            elif classes.row_to_bucket[r] != NONE:
                bucket_terms[classes.bucket[k]].append((var, -s))
                bucket_terms[classes.row_to_bucket[r]].append((var, s))
        for o, var in self.y.items():
            s = float(c.opt_success[o])
            if c.opt_cell[o] != NONE:
                cell_terms[c.opt_cell[o]].append((var, s))
            if c.opt_bucket[o] != NONE:
                bucket_terms[c.opt_bucket[o]].append((var, s))
        max_removals = c.max_removals
        removal_vars = [var for r, var in self.z.items() if classes.row_op[r] == OP_CODE[Op.REMOVE]]
        if max_removals is not None and removal_vars:  # the size floor
            self.prob += pulp.LpAffineExpression([(v, 1.0) for v in removal_vars]) <= max_removals, "size_floor"
        for k, vars_ in per_class.items():
            if len(vars_) > 1:
                self.prob += pulp.LpAffineExpression([(v, 1.0) for v in vars_]) <= int(classes.count[k]), f"one_{k}"

        objective_terms = [(var, float(classes.row_value[r])) for r, var in self.z.items()
                           if classes.row_value[r] != 0]
        for kind, terms, n0, target, weight in (("c", cell_terms, c.n0_cell, c.t_cell, w.coverage),
                                                ("b", bucket_terms, c.n0_bucket, c.t_bucket, w.difficulty)):
            if weight <= 0:
                continue
            for g, group in enumerate(terms):
                d = self._var(f"d{kind}{g}", None, pulp.LpContinuous)
                expr = pulp.LpAffineExpression(group, constant=float(n0[g] - target[g]))
                self.prob += d - expr >= 0, f"dev_hi_{kind}{g}"
                self.prob += d + expr >= 0, f"dev_lo_{kind}{g}"
                objective_terms.append((d, -weight))
        self.prob += pulp.LpAffineExpression(objective_terms)
        spend = [(var, float(classes.row_cost[r])) for r, var in self.z.items()]
        spend += [(var, float(c.opt_cost[o])) for o, var in self.y.items()]
        self.prob += pulp.LpAffineExpression(spend) <= budget, "budget"

    def _var(self, name: str, upper: int | None, cat: str) -> pulp.LpVariable:
        """PuLP >= 3.3 wants variables created through the problem; older versions only have LpVariable."""
        if hasattr(self.prob, "add_variable"):
            return self.prob.add_variable(name, 0, upper, cat=cat)
        return pulp.LpVariable(name, 0, upper, cat)  # pragma: no cover - PuLP < 3.3

    def solve(self, solver: pulp.LpSolver, name: str) -> int:
        if name == "highs":
            with _quiet_stdout():
                self.prob.solve(solver)
        else:
            self.prob.solve(solver)
        return int(self.prob.sol_status)

    def values(self, n_rows: int, n_opts: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.zeros(n_rows)
        opts = np.zeros(n_opts)
        for r, var in self.z.items():
            rows[r] = var.varValue or 0.0
        for o, var in self.y.items():
            opts[o] = var.varValue or 0.0
        return rows, opts

    def objective_gain(self) -> float:
        """The solved model's objective as a gain over doing nothing (adds back the baseline deviation)."""
        return float(pulp.value(self.prob.objective) or 0.0) + self.baseline

    def budget_dual(self) -> float | None:
        if hasattr(self.prob, "get_constraint_by_name"):
            constraint = self.prob.get_constraint_by_name("budget")
        else:  # pragma: no cover - PuLP < 3.3
            constraint = self.prob.constraints["budget"]
        pi = constraint.pi
        return None if pi is None else abs(float(pi))


# ---------------------------------------------------------------------------------------------------
# solving


def check_plan(problem: Problem, plan: Plan) -> list[str]:
    """Independent feasibility re-check of a finished plan: budget, one edit per item, each edit one of
    the item's candidates at its stated cost, non-negative integer new-item counts within bounds."""
    problems: list[str] = []
    by_id = {item.id: item for item in problem.items}
    seen: set[str] = set()
    total = 0.0
    for a in plan.assignments:
        if a.item_id in seen:
            problems.append(f"item {a.item_id} has more than one edit")
        seen.add(a.item_id)
        item = by_id.get(a.item_id)
        if item is None:
            problems.append(f"unknown item {a.item_id}")
            continue
        if not any(cd.op is a.op and cd.to_bucket == a.to_bucket and abs(cd.cost - a.cost) <= 1e-6
                   for cd in item.candidates):
            problems.append(f"{a.op} is not a candidate of item {a.item_id} at cost {a.cost}")
        total += a.cost
    options = {(o.op, o.cell, o.bucket): o for o in problem.new_options}
    for n in plan.new_items:
        opt = options.get((n.op, n.cell, n.bucket))
        if opt is None or n.count < 0 or (opt.max_count is not None and n.count > opt.max_count):
            problems.append(f"bad new-item count {n.count} for {n.op} {n.cell}/{n.bucket}")
        total += n.count * n.cost_each
    if total > problem.budget + 1e-6:
        problems.append(f"plan costs {total:.1f} > budget {problem.budget:.1f}")
    removals = sum(1 for a in plan.assignments if a.op is Op.REMOVE)
    if problem.max_removals is not None and removals > problem.max_removals:
        problems.append(f"plan removes {removals} items; the size floor {problem.min_size} allows "
                        f"{problem.max_removals}")
    if abs(total - plan.forecast_tokens) > 1e-6 * max(1.0, total):
        problems.append("forecast does not match the sum of costs")
    return problems


def _empty_reason(c: Compiled) -> str:
    """Why nothing can be bought at all, before solving (empty string if something might be)."""
    problem = c.problem
    if problem.budget <= 0:
        return "budget is zero: nothing can be bought"
    if c.row_item.size == 0 and len(c.opt_cost) == 0:
        return "no operation applies to any item and no new-item option is available"
    cheapest = min(float(c.row_cost.min()) if c.row_cost.size else np.inf,
                   float(c.opt_cost.min()) if c.opt_cost.size else np.inf)
    if cheapest > problem.budget:
        return f"every operation costs more than the budget (cheapest {cheapest:,.0f} > {problem.budget:,.0f} tokens)"
    return ""


def _class_plan_to_selection(c: Compiled, classes: Classes, plan: ClassPlan) -> Selection:
    return Selection(disaggregate(c, classes, plan.rows), plan.options.copy())


def _top_up(c: Compiled, classes: Classes, sel: Selection) -> Selection:
    """Spend what binning's conservative class costs left over, greedily, on still-free members."""
    rows = np.zeros(len(classes.row_class), dtype=np.int64)
    chosen = np.flatnonzero(sel.row_of_item != NONE)
    if chosen.size:
        n_slots = max(len(c.slots), 1)
        key = classes.row_class * n_slots + classes.row_slot
        lookup = dict(zip(key.tolist(), range(len(key)), strict=True))
        item_keys = classes.item_class[chosen] * n_slots + c.row_slot[sel.row_of_item[chosen]]
        np.add.at(rows, [lookup[k] for k in item_keys.tolist()], 1)
    start = ClassPlan(rows, sel.counts.copy())
    left = c.problem.budget - cost(c, sel)
    extra = greedy_fill(c, classes, start, budget=left + start.cost(classes, c))
    more_rows = extra.rows - rows
    if not more_rows.any() and not (extra.options - sel.counts).any():
        return sel
    placed = disaggregate(c, classes, more_rows, start=sel.row_of_item)
    return repair_budget(c, Selection(placed, extra.options))


class _Relaxation:
    """The LP relaxation on classes: its bound, its budget dual and its point."""

    def __init__(self, rows: np.ndarray, options: np.ndarray, bound: float, dual: float | None, solver: str):
        self.rows, self.options, self.bound, self.dual, self.solver = rows, options, bound, dual, solver


def _lp(c: Compiled, classes: Classes, policy: SolverPolicy, deadline: float) -> _Relaxation | None:
    model = _Model(c, classes, integer=False, budget=c.problem.budget)
    solver, name = _solver(policy, mip=False, time_limit=max(1.0, deadline - time.perf_counter()))
    if model.solve(solver, name) != pulp.LpSolutionOptimal:
        return None
    rows, opts = model.values(len(classes.row_class), len(c.opt_cost))
    return _Relaxation(rows, opts, model.objective_gain(), model.budget_dual(), name)


def _certified(bound: float, value: float, gap: float) -> bool:
    """Whether a solution worth `value` is provably within the relative `gap` of the optimum <= `bound`."""
    return bound - value <= gap * max(abs(bound), 1e-9) + 1e-9


def _run(c: Compiled, classes: Classes, mode: str, policy: SolverPolicy,
         notes: list[str]) -> tuple[Selection, str, str, float | None]:
    """Returns (selection, status, solver name, budget dual per token)."""
    deadline = time.perf_counter() + policy.time_limit_s
    if mode == "greedy":
        return _class_plan_to_selection(c, classes, greedy_fill(c, classes)), "heuristic", "greedy", None
    if mode == "random":
        rng = np.random.default_rng(policy.seed)
        return random_selection(c, rng), "heuristic", "random", None
    if mode not in ("lp-round", "ilp"):
        raise ValueError(f"unknown mode {mode!r}; choose one of {PLANNER_MODES}")

    relax = _lp(c, classes, policy, deadline)
    if relax is None:
        notes.append("LP relaxation failed; greedy used instead")
        return _class_plan_to_selection(c, classes, greedy_fill(c, classes)), "fallback", "greedy", None
    rounded = greedy_fill(c, classes, round_down(classes, c, relax.rows, relax.options))
    if mode == "lp-round":
        return _class_plan_to_selection(c, classes, rounded), "heuristic", relax.solver, relax.dual

    # ilp: LP bound + rounded incumbent first; the MIP only runs when that cannot certify the gap
    incumbent, inc_value, inc_name = rounded, class_objective(c, classes, rounded), "lp-round"
    if _certified(relax.bound, inc_value, policy.gap):
        notes.append(f"LP bound {relax.bound:.4f} certifies the rounded solution within gap {policy.gap:g}")
        return _class_plan_to_selection(c, classes, incumbent), "optimal", relax.solver, relax.dual
    greedy_plan = greedy_fill(c, classes)
    greedy_value = class_objective(c, classes, greedy_plan)
    if greedy_value > inc_value:
        incumbent, inc_value, inc_name = greedy_plan, greedy_value, "greedy"
    model = _Model(c, classes, integer=True, budget=c.problem.budget)
    solver, name = _solver(policy, mip=True, time_limit=max(1.0, deadline - time.perf_counter()))
    try:
        status = model.solve(solver, name)
    except pulp.PulpSolverError as exc:  # pragma: no cover - solver crash
        notes.append(f"solver error: {exc}")
        status = pulp.LpSolutionNoSolutionFound
    if status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        notes.append(f"{name} found no integer solution in time; the {inc_name} solution is used")
        return _class_plan_to_selection(c, classes, incumbent), "fallback", inc_name, relax.dual
    rows, opts = model.values(len(classes.row_class), len(c.opt_cost))
    plan = ClassPlan(np.rint(rows).astype(np.int64), np.rint(opts).astype(np.int64))
    over_capacity = (np.bincount(classes.row_class, weights=plan.rows, minlength=classes.n_classes)
                     > classes.count).any()
    over_floor = c.max_removals is not None and plan.removals(classes) > c.max_removals
    if (plan.cost(classes, c) > c.problem.budget + 1e-6 or over_capacity or over_floor
            or (plan.options > c.opt_ub).any()):
        notes.append(f"solver answer failed the feasibility re-check; the {inc_name} solution is used")
        return _class_plan_to_selection(c, classes, incumbent), "fallback", inc_name, relax.dual
    value = class_objective(c, classes, plan)
    if value + 1e-9 < inc_value:
        notes.append(f"the MIP incumbent was worse than the {inc_name} solution, which is used")
        plan, value, name = incumbent, inc_value, inc_name
    state = "optimal" if status == pulp.LpSolutionOptimal or _certified(relax.bound, value, policy.gap) \
        else "feasible"
    return _class_plan_to_selection(c, classes, plan), state, name, relax.dual


def solve(problem: Problem, mode: PlannerMode = "ilp", time_limit_s: float | None = None, gap: float | None = None,
          policy: SolverPolicy | None = None) -> Plan:
    """Plan which edit to buy for which item and how many new items to write, within the budget."""
    policy = policy or SolverPolicy()
    updates = {k: v for k, v in (("time_limit_s", time_limit_s), ("gap", gap)) if v is not None}
    if updates:
        policy = policy.model_copy(update=updates)
    if mode not in PLANNER_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {PLANNER_MODES}")
    with gc_paused():
        return _solve(problem, mode, policy)


def _solve(problem: Problem, mode: str, policy: SolverPolicy) -> Plan:
    t0 = time.perf_counter()
    c = compile_problem(problem)
    reason = _empty_reason(c)
    if reason:
        return _to_plan(c, empty_selection(c), mode, "empty", "", reason, time.perf_counter() - t0, None, [])
    classes = build_classes(c, policy.aggregation)
    notes: list[str] = []
    if classes.binned:
        notes.append(f"{c.n_items} items binned into {classes.n_classes} classes "
                     f"(cost ratio {classes.bins['cost_ratio']:.3f}, gain step {classes.bins['gain_step']:.3f}); "
                     "class costs are member maxima, so the budget holds exactly")
    sel, status, solver_name, dual = _run(c, classes, mode, policy, notes)
    sel = repair_budget(c, sel)
    if mode != "random" and classes.binned:
        sel = _top_up(c, classes, sel)
    marginal = None
    if policy.marginal == "dual" and mode != "random":
        if dual is None:
            relax = _lp(c, classes, policy, time.perf_counter() + policy.time_limit_s)
            dual = relax.dual if relax else None
        marginal = None if dual is None else 1000.0 * dual
    elif policy.marginal == "resolve":
        marginal = marginal_value(problem, mode=mode, policy=policy, base=objective(c, sel))
    plan = _to_plan(c, sel, mode, status, solver_name, "", time.perf_counter() - t0, marginal, notes,
                    classes=classes)
    if plan.empty:
        plan.status = "empty"
        plan.reason = ("no affordable operation improves the objective (the dataset already meets the "
                       "targets as far as this budget can move it)")
    violations = check_plan(problem, plan)
    if violations:  # pragma: no cover - guarded by repair_budget; kept as the last line of defence
        raise RuntimeError("plan failed its feasibility check: " + "; ".join(violations))
    return plan


def marginal_value(problem: Problem, mode: PlannerMode = "ilp", delta: float = 1000.0,
                   policy: SolverPolicy | None = None, base: float | None = None) -> float:
    """Objective gained per `delta` extra tokens, by re-solving at B + delta (exact for the given mode)."""
    policy = (policy or SolverPolicy()).model_copy(update={"marginal": "none"})
    if base is None:
        base = solve(problem, mode=mode, policy=policy).objective
    richer = problem.model_copy(update={"budget": problem.budget + delta})
    return (solve(richer, mode=mode, policy=policy).objective - base) * (1000.0 / delta)


# ---------------------------------------------------------------------------------------------------
# reporting


def _to_plan(c: Compiled, sel: Selection, mode: str, status: str, solver: str, reason: str,
             seconds: float, marginal: float | None, notes: list[str], classes: Classes | None = None) -> Plan:
    problem = c.problem
    w = problem.weights
    n_cell, n_bucket = group_counts(c, sel)
    items = np.flatnonzero(sel.row_of_item != NONE)
    rows = sel.row_of_item[items]

    def loss(kind_n: np.ndarray, target: np.ndarray, g: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return np.abs(kind_n[g] - delta - target[g]) - np.abs(kind_n[g] - target[g])

    gain = c.row_value[rows].copy()
    s = c.row_success[rows]
    leave = c.row_op[rows] == OP_CODE[Op.REMOVE]
    move = c.row_to_bucket[rows] != NONE
    cells_of = c.item_cell[c.row_item[rows]]
    buckets_of = c.item_bucket[c.row_item[rows]]
    gain[leave] += w.coverage * loss(n_cell, c.t_cell, cells_of[leave], -s[leave])
    gain[leave | move] += w.difficulty * loss(n_bucket, c.t_bucket, buckets_of[leave | move], -s[leave | move])
    gain[move] += w.difficulty * loss(n_bucket, c.t_bucket, c.row_to_bucket[rows[move]], s[move])

    assignments = [
        Assignment.model_construct(item_id=problem.items[i].id, op=OPS[op], cost=co, success=su,
                                   expected_gain=g, cell=c.cells[ce], bucket=c.buckets[bu],
                                   to_bucket=c.buckets[tb] if tb != NONE else None)
        for i, op, co, su, g, ce, bu, tb in zip(
            items.tolist(), c.row_op[rows].tolist(), c.row_cost[rows].tolist(), s.tolist(), gain.tolist(),
            cells_of.tolist(), buckets_of.tolist(), c.row_to_bucket[rows].tolist(), strict=True)
    ]
    new_items = []
    for o in np.flatnonzero(sel.counts).tolist():
        opt = problem.new_options[o]
        k = int(sel.counts[o])
        g = 0.0
        if c.opt_cell[o] != NONE:
            g += w.coverage * float(loss(n_cell, c.t_cell, np.array([c.opt_cell[o]]), np.array([k * opt.success]))[0])
        if c.opt_bucket[o] != NONE:
            g += w.difficulty * float(
                loss(n_bucket, c.t_bucket, np.array([c.opt_bucket[o]]), np.array([k * opt.success]))[0])
        new_items.append(NewItems(op=opt.op, cell=opt.cell, bucket=opt.bucket, count=k, cost_each=opt.cost,
                                  success=opt.success, expected_gain=g))
    by_op: dict[str, OpTotal] = {}
    for a in assignments:
        t = by_op.setdefault(a.op.value, OpTotal())
        t.count += 1
        t.tokens += a.cost
    for n in new_items:
        t = by_op.setdefault(n.op.value, OpTotal())
        t.count += n.count
        t.tokens += n.count * n.cost_each
    forecast = sum(a.cost for a in assignments) + sum(n.count * n.cost_each for n in new_items)
    plan = Plan(mode=mode, status=status, solver=solver, reason=reason, budget=problem.budget,
                forecast_tokens=forecast, objective=objective(c, sel) if items.size or sel.counts.any() else 0.0,
                assignments=assignments, new_items=new_items, by_op=by_op,
                metrics=_metrics(c, sel, n_cell, n_bucket), marginal_value_per_1k=marginal,
                solve_seconds=seconds, classes=classes.n_classes if classes else 0,
                binned=bool(classes and classes.binned), notes=notes)
    return plan


def _metrics(c: Compiled, sel: Selection, n_cell: np.ndarray, n_bucket: np.ndarray) -> dict[str, MetricChange]:
    problem = c.problem
    n_total = max(problem.target_total, 1)
    rows = sel.chosen_rows()
    p = np.array([i.p_error for i in problem.items]) if problem.items else np.zeros(0)
    d = np.array([i.distractor_score for i in problem.items]) if problem.items else np.zeros(0)
    errors_before = float(p.sum())
    errors_after = errors_before - float(c.row_err[rows].sum())
    added = float((sel.counts * c.opt_success).sum())
    removed = float(c.row_success[rows][c.row_op[rows] == OP_CODE[Op.REMOVE]].sum())
    size_after = len(problem.items) - removed + added
    return {
        "coverage_deviation": MetricChange(
            before=float(np.abs(c.n0_cell - c.t_cell).sum() / (2 * n_total)),
            after=float(np.abs(n_cell - c.t_cell).sum() / (2 * n_total)),
            note="sum |n - t*N| / 2N over cells (expected counts)"),
        "difficulty_deviation": MetricChange(
            before=float(np.abs(c.n0_bucket - c.t_bucket).sum() / (2 * n_total)),
            after=float(np.abs(n_bucket - c.t_bucket).sum() / (2 * n_total)),
            note="sum |n - t*N| / 2N over buckets (expected counts)"),
        "expected_errors": MetricChange(before=errors_before, after=errors_after,
                                        note="sum of p_error over existing items; new items assumed clean"),
        "distractor_score_mean": MetricChange(
            before=float(d.mean()) if d.size else 0.0,
            after=float((d.sum() + c.row_dist[rows].sum()) / d.size) if d.size else 0.0,
            note="mean over existing items"),
        "items": MetricChange(before=float(len(problem.items)), after=size_after, note="expected dataset size"),
    }
