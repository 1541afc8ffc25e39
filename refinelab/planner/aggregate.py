"""Columnar view of a Problem, equivalence classes of items, exact plan evaluation and disaggregation.

Why classes: the ILP (docs/planner.md) has one binary per (item, operation). Items with identical
(cell, bucket, candidate edits with identical cost/success/gains) are interchangeable in that model, so
replacing their binaries by one integer count per (class, edit) with `sum over edits <= class size` is an
exact reformulation: any integer count vector maps to a per-item assignment with the same objective and
cost, and vice versa. At scale (many distinct items) we also *bin* costs (geometric bins) and gains
(uniform bins) before forming classes; then the model is an approximation whose class cost is the
**maximum** member cost (so a plan never exceeds the budget once disaggregated to real items) and whose
class gains are member means. The plan is always re-evaluated exactly on the disaggregated items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from refinelab.operations import Op
from refinelab.planner.problem import Problem

OPS: tuple[Op, ...] = tuple(Op)
OP_CODE: dict[Op, int] = {op: i for i, op in enumerate(OPS)}
NONE = -1


class AggregationPolicy(BaseModel):
    """When and how coarsely to bin items into classes.

    Below `exact_below` items only exact merging happens (identical items), so small instances are solved
    exactly. Above it, bins start at `cost_ratio`/`gain_step` and are widened until there are at most
    `max_classes` classes (the model then has roughly classes x edits integer variables; its LP
    relaxation takes about a second at 8,000 classes on one core).
    """

    model_config = ConfigDict(extra="forbid")

    exact_below: int = Field(3000, ge=0)
    max_classes: int = Field(8000, ge=1)
    cost_ratio: float = Field(1.1, gt=1.0)  # geometric bins of an item's mean edit cost
    gain_step: float = Field(0.02, gt=0.0)  # uniform bins of weighted errors-fixed / distractor gain
    max_rounds: int = Field(20, ge=1)


@dataclass
class Compiled:
    """The problem as flat numpy arrays (one row per candidate edit), built once per solve."""

    problem: Problem
    cells: list[str]
    buckets: list[str]
    t_cell: np.ndarray  # target counts t[g] * N
    t_bucket: np.ndarray
    n0_cell: np.ndarray
    n0_bucket: np.ndarray
    item_cell: np.ndarray
    item_bucket: np.ndarray
    # candidate rows
    row_item: np.ndarray
    row_slot: np.ndarray
    row_op: np.ndarray
    row_cost: np.ndarray
    row_success: np.ndarray
    row_err: np.ndarray
    row_dist: np.ndarray
    row_to_bucket: np.ndarray  # NONE unless calibrate
    slots: list[tuple[Op, str | None, int]]
    # new-item options
    opt_cost: np.ndarray
    opt_success: np.ndarray
    opt_cell: np.ndarray
    opt_bucket: np.ndarray
    opt_ub: np.ndarray  # a count beyond which another unit cannot help (exact bound, see _option_bounds)

    @property
    def n_items(self) -> int:
        return len(self.item_cell)

    @property
    def row_value(self) -> np.ndarray:
        """The direct (group-independent) objective value of each candidate edit: errors fixed and
        distractor gain, less the price of deleting data for a removal (`Weights.removal`)."""
        w = self.problem.weights
        value = w.errors * self.row_err + w.distractors * self.row_dist
        if w.removal:
            value = value - w.removal * self.row_success * (self.row_op == OP_CODE[Op.REMOVE])
        return value

    @property
    def max_removals(self) -> int | None:
        """Removals the size floor allows (None: no floor)."""
        return self.problem.max_removals

    def removals(self, sel: Selection) -> int:
        """Removals a selection buys."""
        return int((self.row_op[sel.chosen_rows()] == OP_CODE[Op.REMOVE]).sum())


def compile_problem(problem: Problem) -> Compiled:
    """Flatten a Problem into arrays; group effects are derived from op, item cell/bucket and to_bucket."""
    cells = problem.cells()
    buckets = problem.bucket_names()
    ci = {c: i for i, c in enumerate(cells)}
    bi = {b: i for i, b in enumerate(buckets)}
    n_total = problem.target_total
    t_cell = np.array([problem.targets.coverage.get(c, 0.0) * n_total for c in cells])
    t_bucket = np.array([problem.targets.difficulty.get(b, 0.0) * n_total for b in buckets])
    item_cell = np.fromiter((ci[i.cell] for i in problem.items), dtype=np.int64, count=len(problem.items))
    item_bucket = np.fromiter((bi[i.bucket] for i in problem.items), dtype=np.int64, count=len(problem.items))
    n0_cell = np.bincount(item_cell, minlength=len(cells)).astype(float)
    n0_bucket = np.bincount(item_bucket, minlength=len(buckets)).astype(float)

    flat = [cand for item in problem.items for cand in item.candidates]
    per_item = np.fromiter((len(item.candidates) for item in problem.items), dtype=np.int64,
                           count=len(problem.items))
    fields = attrgetter("op", "to_bucket", "cost", "success", "errors_fixed", "distractor_gain")
    rows = list(map(fields, flat))
    r_ops, r_to_names, r_cost, r_succ, r_err, r_dist = (list(col) for col in zip(*rows, strict=True)) \
        if rows else ([], [], [], [], [], [])
    r_item = np.repeat(np.arange(len(problem.items), dtype=np.int64), per_item)
    # slot = (op, to_bucket, k) where k numbers repeats of the same (op, to_bucket) within one item
    base_index: dict[tuple[Op, str | None], int] = {}
    r_base = [base_index.setdefault(key, len(base_index)) for key in zip(r_ops, r_to_names, strict=True)]
    item_arr = r_item
    base_arr = np.array(r_base, dtype=np.int64)
    dup = np.zeros(len(rows), dtype=np.int64)
    if rows:
        pair = item_arr * len(base_index) + base_arr
        order = np.argsort(pair, kind="stable")
        sorted_pair = pair[order]
        run_start = np.r_[True, sorted_pair[1:] != sorted_pair[:-1]]
        run_id = np.cumsum(run_start) - 1
        first_pos = np.flatnonzero(run_start)
        dup[order] = np.arange(len(order)) - first_pos[run_id]
    bases = list(base_index)
    slot_index: dict[tuple[Op, str | None, int], int] = {}
    r_slot = [slot_index.setdefault((*bases[b], d), len(slot_index))
              for b, d in zip(base_arr.tolist(), dup.tolist(), strict=True)]
    r_op = [OP_CODE[op] for op in r_ops]
    r_to = [bi[name] if name is not None else NONE for name in r_to_names]
    opts = problem.new_options
    compiled = Compiled(
        problem=problem, cells=cells, buckets=buckets, t_cell=t_cell, t_bucket=t_bucket,
        n0_cell=n0_cell, n0_bucket=n0_bucket, item_cell=item_cell, item_bucket=item_bucket,
        row_item=r_item, row_slot=np.array(r_slot, dtype=np.int64),
        row_op=np.array(r_op, dtype=np.int64), row_cost=np.array(r_cost, dtype=float),
        row_success=np.array(r_succ, dtype=float), row_err=np.array(r_err, dtype=float),
        row_dist=np.array(r_dist, dtype=float), row_to_bucket=np.array(r_to, dtype=np.int64),
        slots=sorted(slot_index, key=slot_index.__getitem__),
        opt_cost=np.array([o.cost for o in opts], dtype=float),
        opt_success=np.array([o.success for o in opts], dtype=float),
        opt_cell=np.array([ci[o.cell] if o.cell is not None else NONE for o in opts], dtype=np.int64),
        opt_bucket=np.array([bi[o.bucket] if o.bucket is not None else NONE for o in opts], dtype=np.int64),
        opt_ub=np.zeros(len(opts), dtype=np.int64),
    )
    compiled.opt_ub = _option_bounds(compiled)
    return compiled


def _option_bounds(c: Compiled) -> np.ndarray:
    """Largest useful count per new-item option.

    Past ceil(T/s) successful-in-expectation units every group the option feeds is above target whatever
    else the plan does (removals only lower counts, and counts start >= 0), so one more unit lowers the
    objective: the bound is exact. Also capped by what the budget can pay and by `max_count`.
    """
    budget = c.problem.budget
    ubs = np.zeros(len(c.opt_cost), dtype=np.int64)
    for o, opt in enumerate(c.problem.new_options):
        s = c.opt_success[o]
        if s <= 0:
            continue
        # n[g] = (n0 - removed/moved out) + moved in + added >= added, so once y*s >= T[g] for every
        # group the option feeds, a further unit only moves them further above target.
        targets = []
        if c.opt_cell[o] != NONE:
            targets.append(c.t_cell[c.opt_cell[o]])
        if c.opt_bucket[o] != NONE:
            targets.append(c.t_bucket[c.opt_bucket[o]])
        useful = int(np.ceil(max(targets) / s)) + 1
        affordable = int(np.floor(budget / c.opt_cost[o] + 1e-9))
        ub = min(useful, affordable)
        if opt.max_count is not None:
            ub = min(ub, opt.max_count)
        ubs[o] = max(ub, 0)
    return ubs


# ---------------------------------------------------------------------------------------------------
# exact evaluation


@dataclass
class Selection:
    """A concrete plan: the chosen candidate row per item (NONE = untouched) and counts per option."""

    row_of_item: np.ndarray
    counts: np.ndarray

    def chosen_rows(self) -> np.ndarray:
        return self.row_of_item[self.row_of_item != NONE]


def empty_selection(c: Compiled) -> Selection:
    return Selection(np.full(c.n_items, NONE, dtype=np.int64), np.zeros(len(c.opt_cost), dtype=np.int64))


def group_counts(c: Compiled, sel: Selection) -> tuple[np.ndarray, np.ndarray]:
    """Expected final counts per cell and per bucket under a selection."""
    n_cell = c.n0_cell.copy()
    n_bucket = c.n0_bucket.copy()
    rows = sel.chosen_rows()
    if rows.size:
        s = c.row_success[rows]
        items = c.row_item[rows]
        leave = c.row_op[rows] == OP_CODE[Op.REMOVE]
        move = c.row_to_bucket[rows] != NONE
        np.add.at(n_cell, c.item_cell[items[leave]], -s[leave])
        np.add.at(n_bucket, c.item_bucket[items[leave | move]], -s[leave | move])
        np.add.at(n_bucket, c.row_to_bucket[rows[move]], s[move])
    add_new_items(c, sel.counts, n_cell, n_bucket)
    return n_cell, n_bucket


def add_new_items(c: Compiled, counts: np.ndarray, n_cell: np.ndarray, n_bucket: np.ndarray) -> None:
    """Add the expected new items of `counts` attempts per new-item option to the cell and bucket counts
    (in place): each attempt succeeds with the option's probability, into its cell or its bucket."""
    added = counts * c.opt_success
    has_cell = c.opt_cell != NONE
    has_bucket = c.opt_bucket != NONE
    np.add.at(n_cell, c.opt_cell[has_cell], added[has_cell])
    np.add.at(n_bucket, c.opt_bucket[has_bucket], added[has_bucket])


def deviation_penalty(c: Compiled, n_cell: np.ndarray, n_bucket: np.ndarray) -> float:
    w = c.problem.weights
    return float(w.coverage * np.abs(n_cell - c.t_cell).sum() + w.difficulty * np.abs(n_bucket - c.t_bucket).sum())


def objective(c: Compiled, sel: Selection) -> float:
    """Objective gained over doing nothing (the value every mode is compared on)."""
    rows = sel.chosen_rows()
    direct = float(c.row_value[rows].sum())
    before = deviation_penalty(c, c.n0_cell, c.n0_bucket)
    after = deviation_penalty(c, *group_counts(c, sel))
    return direct + before - after


def cost(c: Compiled, sel: Selection) -> float:
    return float(c.row_cost[sel.chosen_rows()].sum() + (sel.counts * c.opt_cost).sum())


# ---------------------------------------------------------------------------------------------------
# classes


@dataclass
class Classes:
    """Items grouped into interchangeable classes; one candidate row per (class, slot)."""

    count: np.ndarray  # members per class
    item_class: np.ndarray  # class of each item
    cell: np.ndarray
    bucket: np.ndarray
    # class rows
    row_class: np.ndarray
    row_slot: np.ndarray
    row_op: np.ndarray
    row_cost: np.ndarray  # max member cost (conservative)
    row_success: np.ndarray
    row_value: np.ndarray  # mean member direct value
    row_to_bucket: np.ndarray
    binned: bool = False
    bins: dict[str, float] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.count)


def _group_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with equal values in every column get one id: (first index, inverse, counts) per group.

    Columns are dense-ranked one by one and folded into an int64 code (re-densified before it could
    overflow); much faster than `np.unique(axis=0)` on a float matrix.
    """
    n = len(columns[0]) if columns else 0
    code = np.zeros(n, dtype=np.int64)
    for col in columns:
        _, rank = np.unique(col, return_inverse=True)
        rank = rank.reshape(-1)
        k = int(rank.max()) + 1 if n else 1
        if n and int(code.max()) >= (1 << 62) // k:
            _, code = np.unique(code, return_inverse=True)
            code = code.reshape(-1)
        code = code * k + rank
    _, first, inverse, counts = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
    return first, inverse.reshape(-1), counts


def _per_slot(c: Compiled, values: np.ndarray) -> list[np.ndarray]:
    """One item-level column per slot holding `values` of that slot's row (-1 where absent)."""
    n_slots = max(len(c.slots), 1)
    mat = np.full((n_slots, c.n_items), -1.0)
    mat[c.row_slot, c.row_item] = values
    return list(mat)


def _classes_from_groups(c: Compiled, first: np.ndarray, inverse: np.ndarray, counts: np.ndarray,
                         binned: bool, bins: dict[str, float]) -> Classes:
    n_classes = len(counts)
    n_slots = max(len(c.slots), 1)
    flat = inverse[c.row_item] * n_slots + c.row_slot
    uniq, row_inverse = np.unique(flat, return_inverse=True)
    row_inverse = row_inverse.reshape(-1)
    n_rows = len(uniq)
    cost_max = np.zeros(n_rows)
    np.maximum.at(cost_max, row_inverse, c.row_cost)
    size = np.bincount(row_inverse, minlength=n_rows).astype(float)
    value_mean = np.bincount(row_inverse, weights=c.row_value, minlength=n_rows) / size
    succ_mean = np.bincount(row_inverse, weights=c.row_success, minlength=n_rows) / size
    # op and to_bucket are fixed by the slot
    slot_of = uniq % n_slots
    slot_op = np.zeros(n_slots, dtype=np.int64)
    slot_to = np.full(n_slots, NONE, dtype=np.int64)
    slot_op[c.row_slot] = c.row_op
    slot_to[c.row_slot] = c.row_to_bucket
    return Classes(
        count=counts.astype(np.int64), item_class=inverse.astype(np.int64),
        cell=c.item_cell[first] if n_classes else np.zeros(0, dtype=np.int64),
        bucket=c.item_bucket[first] if n_classes else np.zeros(0, dtype=np.int64),
        row_class=(uniq // n_slots).astype(np.int64), row_slot=slot_of.astype(np.int64),
        row_op=slot_op[slot_of], row_cost=cost_max, row_success=succ_mean, row_value=value_mean,
        row_to_bucket=slot_to[slot_of], binned=binned, bins=bins,
    )


def build_classes(c: Compiled, policy: AggregationPolicy | None = None) -> Classes:
    """Exact classes for small instances; binned, adaptively coarsened classes for large ones.

    The binned key is (cell, bucket, which edits apply and their success, a geometric bin of the item's
    mean edit cost, a uniform bin of its best weighted errors-fixed and of its best weighted distractor
    gain). An item's edit costs all grow with its length and its error gains all scale with p_error, so
    one bin each keeps classes few; per edit, the class cost is still the exact member maximum and the
    class value the member mean.
    """
    policy = policy or AggregationPolicy()
    fixed = [c.item_cell, c.item_bucket, *_per_slot(c, np.round(c.row_success, 6))]
    if c.n_items < policy.exact_below:
        exact = _group_rows(fixed + _per_slot(c, c.row_cost) + _per_slot(c, c.row_value))
        if c.n_items < policy.exact_below or len(exact[2]) <= policy.max_classes:
            return _classes_from_groups(c, *exact, binned=False, bins={})
    fixed = [_group_rows(fixed)[1]]
    n_per_item = np.maximum(np.bincount(c.row_item, minlength=c.n_items), 1)
    mean_log_cost = np.bincount(c.row_item, weights=np.log(np.maximum(c.row_cost, 1e-9)),
                                minlength=c.n_items) / n_per_item
    w = c.problem.weights
    err_value = np.zeros(c.n_items)
    dist_value = np.zeros(c.n_items)
    np.maximum.at(err_value, c.row_item, w.errors * c.row_err)
    np.maximum.at(dist_value, c.row_item, w.distractors * c.row_dist)
    ratio, step = policy.cost_ratio, policy.gain_step
    previous = c.n_items + 1
    for _ in range(policy.max_rounds):
        groups = _group_rows([*fixed, np.floor(mean_log_cost / np.log(ratio)), np.floor(err_value / step),
                              np.floor(dist_value / step)])
        excess = len(groups[2]) / policy.max_classes
        if excess <= 1.0 or len(groups[2]) >= previous:  # small enough, or bins no longer matter
            break
        previous = len(groups[2])
        factor = min(3.0, max(1.15, excess ** 0.5))  # classes grow roughly with the square of resolution
        ratio = 1.0 + (ratio - 1.0) * factor
        step *= factor
    return _classes_from_groups(c, *groups, binned=True, bins={"cost_ratio": ratio, "gain_step": step})


def disaggregate(c: Compiled, classes: Classes, row_counts: np.ndarray,
                 start: np.ndarray | None = None) -> np.ndarray:
    """Per-item rows from per-(class, slot) counts, placed on members that `start` leaves free.

    Within a class, slots with the highest class value per token pick first, and each slot takes the
    free members with the best own value (then lowest own cost). For exact classes every choice is
    equivalent; for binned ones this recovers most of what binning blurred.
    """
    row_of_item = np.full(c.n_items, NONE, dtype=np.int64) if start is None else start.copy()
    chosen = np.flatnonzero(row_counts > 0)
    if chosen.size == 0:
        return row_of_item
    n_slots = max(len(c.slots), 1)
    # per item, the compiled row index of each slot
    item_slot_row = np.full((c.n_items, n_slots), NONE, dtype=np.int64)
    item_slot_row[c.row_item, c.row_slot] = np.arange(len(c.row_item))
    order = np.argsort(classes.item_class, kind="stable")
    starts = np.concatenate([[0], np.cumsum(classes.count)])
    density = classes.row_value / np.maximum(classes.row_cost, 1e-9)
    by_class: dict[int, list[int]] = {}
    for r in chosen[np.argsort(-density[chosen], kind="stable")]:
        by_class.setdefault(int(classes.row_class[r]), []).append(int(r))
    for k, rows in by_class.items():
        members = order[starts[k]:starts[k + 1]]
        free = row_of_item[members] == NONE
        for r in rows:
            need = int(row_counts[r])
            cand_rows = item_slot_row[members, classes.row_slot[r]]
            ok = free & (cand_rows != NONE)
            idx = np.flatnonzero(ok)
            if need < idx.size:
                own = cand_rows[idx]
                rank = np.lexsort((c.row_cost[own], -c.row_value[own]))
                idx = idx[rank[:need]]
            row_of_item[members[idx]] = cand_rows[idx]
            free[idx] = False
    return row_of_item
