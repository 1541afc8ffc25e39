"""Heuristic modes: greedy (gain per token), random, and LP rounding; plus the budget repair they share.

All of them work on the class-level model of `aggregate.py` (a class row is "apply this edit to one more
member of this class"), so they scale like the ILP does, and all end with `repair_budget`, which makes
"never over budget" a property of the code rather than of the heuristic.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from refinelab.operations import Op
from refinelab.planner.aggregate import (
    NONE,
    OP_CODE,
    Classes,
    Compiled,
    Selection,
    add_new_items,
    deviation_penalty,
)

EPS = 1e-9


@dataclass
class ClassPlan:
    """Counts per class row and per new-item option."""

    rows: np.ndarray
    options: np.ndarray

    @classmethod
    def zeros(cls, classes: Classes, c: Compiled) -> ClassPlan:
        return cls(np.zeros(len(classes.row_class), dtype=np.int64), np.zeros(len(c.opt_cost), dtype=np.int64))

    def cost(self, classes: Classes, c: Compiled) -> float:
        return float((self.rows * classes.row_cost).sum() + (self.options * c.opt_cost).sum())

    def removals(self, classes: Classes) -> int:
        return int(self.rows[classes.row_op == OP_CODE[Op.REMOVE]].sum())


def _row_effects_all(classes: Classes) -> list[list[tuple[int, int, float]]]:
    """Per class row, its (kind 0=cell 1=bucket, group, delta) effects per unit."""
    leave = (classes.row_op == OP_CODE[Op.REMOVE]).tolist()
    to = classes.row_to_bucket.tolist()
    cell = classes.cell[classes.row_class].tolist()
    bucket = classes.bucket[classes.row_class].tolist()
    succ = classes.row_success.tolist()
    return [[(0, c, -s), (1, b, -s)] if lv else ([(1, b, -s), (1, t, s)] if t != NONE else [])
            for lv, t, c, b, s in zip(leave, to, cell, bucket, succ, strict=True)]


def _option_effects(c: Compiled, o: int) -> list[tuple[int, int, float]]:
    s = float(c.opt_success[o])
    out = []
    if c.opt_cell[o] != NONE:
        out.append((0, int(c.opt_cell[o]), s))
    if c.opt_bucket[o] != NONE:
        out.append((1, int(c.opt_bucket[o]), s))
    return out


def class_group_counts(c: Compiled, classes: Classes, plan: ClassPlan) -> tuple[np.ndarray, np.ndarray]:
    """Expected final counts per cell and per bucket under a class-level plan."""
    n_cell = c.n0_cell.copy()
    n_bucket = c.n0_bucket.copy()
    units = plan.rows.astype(float) * classes.row_success
    leave = classes.row_op == OP_CODE[Op.REMOVE]
    move = classes.row_to_bucket != NONE
    np.add.at(n_cell, classes.cell[classes.row_class[leave]], -units[leave])
    np.add.at(n_bucket, classes.bucket[classes.row_class[leave | move]], -units[leave | move])
    np.add.at(n_bucket, classes.row_to_bucket[move], units[move])
    add_new_items(c, plan.options, n_cell, n_bucket)
    return n_cell, n_bucket


def class_objective(c: Compiled, classes: Classes, plan: ClassPlan) -> float:
    """Objective gained over doing nothing, in the class model (binned values)."""
    before = deviation_penalty(c, c.n0_cell, c.n0_bucket)
    return float((plan.rows * classes.row_value).sum()) + before - deviation_penalty(
        c, *class_group_counts(c, classes, plan))


class _GreedyFill:
    """The state `greedy_fill` grows a plan in: the plan so far, the budget left, each class's members not yet
    planned, the removals still allowed, and the expected counts per cell and bucket that an action's gain is
    measured against. Action `a` is a class row (`a < n_rows`) or, past them, a new-item option."""

    def __init__(self, c: Compiled, classes: Classes, start: ClassPlan | None, budget: float | None) -> None:
        self.classes = classes
        plan = start or ClassPlan.zeros(classes, c)
        self.plan = ClassPlan(plan.rows.copy(), plan.options.copy())
        self.budget_left = (c.problem.budget if budget is None else budget) - self.plan.cost(classes, c)
        self.counts = list(class_group_counts(c, classes, self.plan))  # [per cell, per bucket]
        self.targets = (c.t_cell, c.t_bucket)
        self.weights = (c.problem.weights.coverage, c.problem.weights.difficulty)
        used = np.bincount(classes.row_class, weights=self.plan.rows, minlength=classes.n_classes).astype(np.int64)
        self.members_left = classes.count - used
        self.is_removal = classes.row_op == OP_CODE[Op.REMOVE]
        self.removals_left = (1 << 40 if c.max_removals is None
                              else max(0, c.max_removals - self.plan.removals(classes)))
        self.option_ub = c.opt_ub
        self.n_rows = len(classes.row_class)
        self.effects = _row_effects_all(classes) + [_option_effects(c, o) for o in range(len(c.opt_cost))]
        self.values = np.concatenate([classes.row_value, np.zeros(len(c.opt_cost))])
        self.costs = np.concatenate([classes.row_cost, c.opt_cost])

    def units_left(self, a: int) -> int:
        """How many more units of `a` the plan may take: its class's unplanned members (and, for a removal,
        the removals still allowed), or its option's upper bound less what is planned."""
        if a < self.n_rows:
            members = int(self.members_left[self.classes.row_class[a]])
            return min(members, self.removals_left) if self.is_removal[a] else members
        return int(self.option_ub[a - self.n_rows] - self.plan.options[a - self.n_rows])

    def fits(self, a: int) -> bool:
        """One more unit of `a` is allowed and within the budget left."""
        return self.costs[a] <= self.budget_left + EPS and self.units_left(a) > 0

    def affordable_units(self, a: int) -> int:
        """How many units of `a` the budget left pays for (unbounded for a free action)."""
        return int(np.floor(self.budget_left / self.costs[a] + EPS)) if self.costs[a] > 0 else 1 << 40

    def gain_and_run(self, a: int) -> tuple[float, int]:
        """The objective one more unit of `a` gains, and for how many units that gain stays the same (until
        a count it moves toward its target crosses it)."""
        gain = float(self.values[a])
        run = 1 << 40
        for kind, g, delta in self.effects[a]:
            gap = self.counts[kind][g] - self.targets[kind][g]
            gain += self.weights[kind] * (abs(gap) - abs(gap + delta))
            if gap * delta < 0:  # moving toward the target: constant gain until it is crossed
                run = min(run, max(1, int(np.floor(abs(gap) / abs(delta) + EPS))))
        return gain, run

    def queue(self, heap: list[tuple[float, int]], a: int) -> None:
        """Put `a` on the heap by its gain per token, when one more unit of it gains anything."""
        gain, _ = self.gain_and_run(a)
        if gain > EPS:
            heapq.heappush(heap, (-gain / max(self.costs[a], EPS), a))

    def add(self, a: int, k: int) -> None:
        """Plan `k` more units of `a`: spend their cost, and move the counts they change."""
        if a < self.n_rows:
            self.plan.rows[a] += k
            self.members_left[self.classes.row_class[a]] -= k
            if self.is_removal[a]:
                self.removals_left -= k
        else:
            self.plan.options[a - self.n_rows] += k
        self.budget_left -= k * self.costs[a]
        for kind, g, delta in self.effects[a]:
            self.counts[kind][g] += k * delta


def greedy_fill(c: Compiled, classes: Classes, start: ClassPlan | None = None,
                budget: float | None = None) -> ClassPlan:
    """Add the action with the best marginal objective per token until nothing positive fits.

    Marginal gains are piecewise constant in the counts (they change only when a cell or bucket crosses
    its target), so each step takes a whole run of units at once; a lazy heap re-evaluates an action
    only when it reaches the top. Gains that rose after an action was queued are not revisited: a
    heuristic, as greedy is.
    """
    fill = _GreedyFill(c, classes, start, budget)
    heap: list[tuple[float, int]] = []
    for a in range(len(fill.values)):
        if fill.fits(a):
            fill.queue(heap, a)
    while heap:
        _, a = heapq.heappop(heap)
        if not fill.fits(a):
            continue
        gain, run = fill.gain_and_run(a)
        if gain <= EPS:
            continue
        ratio = gain / max(fill.costs[a], EPS)
        if heap and ratio < -heap[0][0] - EPS:
            heapq.heappush(heap, (-ratio, a))  # stale: let the better one go first
            continue
        k = min(run, fill.units_left(a), fill.affordable_units(a))
        if k <= 0:
            continue
        fill.add(a, k)
        if fill.units_left(a) > 0:
            fill.queue(heap, a)
    return fill.plan


def round_down(classes: Classes, c: Compiled, rows: np.ndarray, options: np.ndarray) -> ClassPlan:
    """Floor an LP solution (tolerating solver noise just below an integer) within the bounds."""
    r = np.floor(np.asarray(rows, dtype=float) + 1e-6).astype(np.int64)
    o = np.floor(np.asarray(options, dtype=float) + 1e-6).astype(np.int64)
    r = np.clip(r, 0, classes.count[classes.row_class])
    o = np.clip(o, 0, c.opt_ub)
    plan = ClassPlan(r, o)
    # per-class capacity after flooring each row separately (sum of floors <= floor of sum, but be safe)
    for k in np.flatnonzero(np.bincount(classes.row_class, weights=r, minlength=classes.n_classes) > classes.count):
        idx = np.flatnonzero(classes.row_class == k)
        excess = int(plan.rows[idx].sum() - classes.count[k])
        for i in idx[np.argsort(classes.row_value[idx] / np.maximum(classes.row_cost[idx], EPS))]:
            take = min(excess, int(plan.rows[i]))
            plan.rows[i] -= take
            excess -= take
            if excess == 0:
                break
    if c.max_removals is not None and plan.removals(classes) > c.max_removals:  # the size floor
        removal_rows = np.flatnonzero(classes.row_op == OP_CODE[Op.REMOVE])
        excess = plan.removals(classes) - c.max_removals
        for i in removal_rows[np.argsort(classes.row_value[removal_rows], kind="stable")]:
            take = min(excess, int(plan.rows[i]))
            plan.rows[i] -= take
            excess -= take
            if excess == 0:
                break
    return plan


def repair_budget(c: Compiled, sel: Selection) -> Selection:
    """Drop the lowest value-per-token edits (then new items) until the exact cost is within budget."""
    budget = c.problem.budget
    rows = sel.row_of_item.copy()
    counts = sel.counts.copy()
    total = float(c.row_cost[rows[rows != NONE]].sum() + (counts * c.opt_cost).sum())
    if total <= budget + EPS:
        return Selection(rows, counts)
    items = np.flatnonzero(rows != NONE)
    density = c.row_value[rows[items]] / np.maximum(c.row_cost[rows[items]], EPS)
    for i in items[np.argsort(density, kind="stable")]:
        if total <= budget + EPS:
            break
        total -= c.row_cost[rows[i]]
        rows[i] = NONE
    for o in np.argsort(-c.opt_cost):
        while total > budget + EPS and counts[o] > 0:
            counts[o] -= 1
            total -= c.opt_cost[o]
    return Selection(rows, counts)


def random_selection(c: Compiled, rng: np.random.Generator) -> Selection:
    """The random baseline: candidate edits and new-item units in random order, each taken if its item is
    still free and it fits the remaining budget (no look at gains)."""
    budget_left = c.problem.budget
    n_rows = len(c.row_item)
    units = np.concatenate([np.arange(n_rows), n_rows + np.repeat(np.arange(len(c.opt_cost)), c.opt_ub)])
    rng.shuffle(units)
    rows = np.full(c.n_items, NONE, dtype=np.int64)
    counts = np.zeros(len(c.opt_cost), dtype=np.int64)
    costs = np.concatenate([c.row_cost, c.opt_cost])
    removals_left = 1 << 40 if c.max_removals is None else c.max_removals
    min_cost = float(costs.min()) if costs.size else 0.0
    for u in units.tolist():
        if budget_left < min_cost - EPS:
            break
        cost = costs[u] if u < n_rows else c.opt_cost[u - n_rows]
        if cost > budget_left + EPS:
            continue
        if u < n_rows:
            item = c.row_item[u]
            if rows[item] != NONE:
                continue
            if c.row_op[u] == OP_CODE[Op.REMOVE]:
                if removals_left <= 0:
                    continue
                removals_left -= 1
            rows[item] = u
        else:
            counts[u - n_rows] += 1
        budget_left -= cost
    return Selection(rows, counts)
