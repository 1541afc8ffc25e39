"""Pilot: measure what each operation really costs and how often it passes, before the first plan.

The pilot is round 0 of the graph: the plan node, on its first visit, asks `pilot_tasks` for a few edits
per operation (default 5, `options.pilot_per_op`; 0 = plan on priors) and sends them through the same
refine → validate → (retry | commit | give up) path and the same ledger as every later round; their calls
are charged to node "pilot". When round 0 is collected, `pilot_summary` reads the outcomes from the
store, and the first plan refits the catalogue from them (`planner_agent.observations`), the same path
that refits costs after every round.

Pilot edits are real edits, chosen where they help (the most likely errors, the weakest distractor
sets, moves into under-filled buckets, new items for under-filled cells and buckets), stratified over
cells. Every pilot-touched item is frozen for later rounds, so each input item still ends kept, edited
or removed exactly once. Operations that call no model (`remove`) are never piloted: measuring a
removal would delete items the plan may want.

The pilot spends at most `options.pilot_share` (default 25%) of the budget left, by prior estimate; a
`BudgetExhausted` gives up the edits it hits, and the plan is made on priors plus whatever finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from refinelab.agents.context import AgentContext
from refinelab.agents.edit_tasks import edit_id
from refinelab.agents.planner_agent import edit_catalogue, item_length_tokens, make_problem
from refinelab.operations import REGISTRY, Op, operation
from refinelab.planner.catalogue import Catalogue
from refinelab.planner.problem import Problem
from refinelab.schema import Cell, QAItem
from refinelab.state import PILOT_ROUND, SUCCEEDED, EditTask

#: Piloted operations in the order they claim items (edits of existing items first, then new items).
PILOTED: tuple[Op, ...] = tuple(sorted((op for op, spec in REGISTRY.items() if spec.pilot_order is not None),
                                       key=lambda op: REGISTRY[op].pilot_order or 0))
META_TASKS, META_RESULT = "pilot_tasks", "pilot"


@dataclass
class PilotResult:
    """What the pilot did; `status` is done, skipped or budget (stopped by BudgetExhausted)."""

    status: str
    reason: str = ""
    tasks: int = 0
    finished: int = 0
    committed: int = 0
    tokens: int = 0
    by_op: dict[str, dict[str, float]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- sample

def _deficits(problem: Problem) -> tuple[dict[str, float], dict[str, float]]:
    """Target count minus current count, per cell and per bucket."""
    n = problem.target_total
    cells: dict[str, float] = {c: share * n for c, share in problem.targets.coverage.items()}
    buckets: dict[str, float] = {b: share * n for b, share in problem.targets.difficulty.items()}
    for item in problem.items:
        cells[item.cell] = cells.get(item.cell, 0.0) - 1
        buckets[item.bucket] = buckets.get(item.bucket, 0.0) - 1
    return cells, buckets


def _stratified(scored: list[tuple[str, str, float, str]], k: int) -> list[tuple[str, str]]:
    """(cell, item id, value, target) rows → k (item id, target) picks, round-robin over cells, the best
    item of each cell first and the cells with the best items first."""
    by_cell: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for cell, item_id, value, target in scored:
        by_cell[cell].append((-value, item_id, target))
    queues = sorted((sorted(rows) for rows in by_cell.values()), key=lambda rows: rows[0])
    picks: list[tuple[str, str]] = []
    while len(picks) < k and any(queues):
        for rows in queues:
            if rows and len(picks) < k:
                _, item_id, target = rows.pop(0)
                picks.append((item_id, target))
    return picks


def _new_item_edit_id(op: Op, key: str) -> str:
    """A piloted new item's edit id: its group, template and position hashed (no item id names it)."""
    return edit_id(PILOT_ROUND, op, hashlib.sha1(key.encode()).hexdigest()[:8])


def choose_sample(ctx: AgentContext, enabled: list[str], per_op: int, catalogue: Catalogue) -> list[EditTask]:
    """Up to `per_op` useful edits per enabled operation (remove excepted), stratified over cells."""
    problem = make_problem(ctx, 1e9, enabled, catalogue)
    cell_gap, bucket_gap = _deficits(problem)
    tasks: list[EditTask] = []
    used: set[str] = set()
    for op in PILOTED:
        if op.value not in enabled or REGISTRY[op].creates_item:
            continue
        scored: list[tuple[str, str, float, str]] = []
        for item in problem.items:
            if item.id in used:
                continue
            best: tuple[float, str] | None = None
            for cand in item.candidates:
                if cand.op is not op:
                    continue
                if REGISTRY[op].moves_bucket:
                    to = cand.to_bucket or ""
                    if bucket_gap.get(to, 0.0) <= 0 or bucket_gap.get(item.bucket, 0.0) >= 0:
                        continue  # only moves from an over-full bucket into an under-filled one
                    value = bucket_gap[to] - bucket_gap[item.bucket]
                else:
                    value = cand.errors_fixed + cand.distractor_gain
                if value > 0 and (best is None or value > best[0]):
                    best = (value, cand.to_bucket or "")
            if best is not None:
                scored.append((item.cell, item.id, best[0], best[1]))
        for item_id, target in _stratified(scored, per_op):
            used.add(item_id)
            tasks.append(EditTask(edit_id(PILOT_ROUND, op, item_id), item_id, op.value, PILOT_ROUND, target=target))
    tasks += _new_item_tasks(ctx, enabled, per_op, cell_gap, bucket_gap)
    return tasks


def _new_item_tasks(ctx: AgentContext, enabled: list[str], per_op: int, cell_gap: dict[str, float],
                    bucket_gap: dict[str, float]) -> list[EditTask]:
    """New items go to the groups furthest below target; each task gets its own template item (the
    ledger attributes by operation and item, so the pilot can tell the tasks apart)."""
    pool = ctx.store.items(("kept", "edited"))
    tasks: list[EditTask] = []
    for op in PILOTED:
        spec = REGISTRY[op]
        if op.value not in enabled or not spec.creates_item:
            continue
        gaps = cell_gap if spec.target == "cell" else bucket_gap
        left = {g: v for g, v in gaps.items() if v > 0}
        taken: set[str] = set()
        for k in range(per_op):
            if not left:
                break
            group = max(sorted(left), key=lambda g: left[g])
            left[group] -= 1
            if left[group] <= 0:
                del left[group]
            template = _template(pool, group if spec.target == "cell" else None, taken, k)
            if template is None:
                break
            taken.add(template.id)
            tasks.append(EditTask(_new_item_edit_id(op, f"{group}|{template.id}|{k}"), template.id, op.value, PILOT_ROUND,
                                  target=group))
    return tasks


def _template(pool: list[QAItem], cell: str | None, taken: set[str], k: int) -> QAItem | None:
    """An unused item to seed a new one: same cell, then same domain, then any (spread by `k`)."""
    free = [i for i in pool if i.id not in taken]
    if not free:
        return None
    if cell is not None:
        domain, skill = Cell.parse(cell)
        for match in ([i for i in free if i.domain == domain and i.skill == skill],
                      [i for i in free if i.domain == domain]):
            if match:
                return match[0]
    return free[(k * 7) % len(free)]


def _within_share(tasks: list[EditTask], catalogue: Catalogue, store_items: dict[str, QAItem],
                  cap: float | None) -> list[EditTask]:
    """Keep tasks round-robin over operations, in pilot order (the cheap item edits first, new items
    last), while their prior cost fits the pilot's share. Alphabetical order had let one calibrate (the
    dearest edit, three measured drafts) take the demo's whole share before a rewrite was tried."""
    by_op: dict[str, list[EditTask]] = defaultdict(list)
    for task in tasks:
        by_op[task.operation].append(task)
    mean = (sum(item_length_tokens(i) for i in store_items.values()) / len(store_items)) if store_items else 100.0
    kept: list[EditTask] = []
    spent = 0.0
    for rank in range(max((len(v) for v in by_op.values()), default=0)):
        for op in sorted(by_op, key=lambda name: REGISTRY[Op(name)].pilot_order or 0):
            if rank >= len(by_op[op]):
                continue
            task = by_op[op][rank]
            length = mean if operation(task.operation).creates_item else item_length_tokens(store_items[task.item_id])
            cost = catalogue.cost(task.operation, length)
            if cap is not None and spent + cost > cap:
                continue
            spent += cost
            kept.append(task)
    return kept


# ------------------------------------------------------------------------------------------ round 0

def _pilot_rows(ctx: AgentContext) -> Iterator[tuple[str, str, int]]:
    """(operation, outcome, tokens) of each finished pilot edit."""
    tokens: Counter[str] = Counter()
    for edit in ctx.store.edits():
        if edit["round"] == PILOT_ROUND:
            tokens[edit["edit_id"]] += int(edit["tokens"])
    for outcome in ctx.store.outcomes(PILOT_ROUND):
        yield outcome["operation"], outcome["status"] if "budget exhausted" not in outcome["reason"] else "budget", \
            tokens[outcome["edit_id"]]


def pilot_summary(ctx: AgentContext) -> PilotResult:
    """What round 0 did, read from the store once its edits are final; saved for the report and resume."""
    saved = ctx.store.get_meta(META_RESULT)
    if saved is not None:
        return PilotResult(**saved)
    n_tasks = len(ctx.store.get_meta(META_TASKS) or [])
    by_op: dict[str, dict[str, float]] = {}
    finished = committed = total = 0
    budget_cut = False
    for op, outcome, tokens in _pilot_rows(ctx):
        row = by_op.setdefault(op, {"edits": 0, "committed": 0, "tokens": 0})
        total += tokens
        if outcome == "budget":
            budget_cut = True
            continue
        finished += 1
        committed += outcome in SUCCEEDED
        row["edits"] += 1
        row["committed"] += outcome in SUCCEEDED
        row["tokens"] += tokens
    for row in by_op.values():
        row["mean_tokens"] = round(row["tokens"] / row["edits"], 1) if row["edits"] else 0.0
    status, reason = (("budget", "the budget ran out during the pilot; finished edits are used, priors for the rest")
                      if budget_cut else ("done", ""))
    result = PilotResult(status=status, reason=reason, tasks=n_tasks, finished=finished, committed=committed,
                         tokens=total, by_op=by_op)
    ctx.store.set_meta(META_RESULT, dataclasses.asdict(result))
    return result


def pilot_tasks(ctx: AgentContext, enabled: list[str]) -> list[EditTask] | PilotResult:
    """Round 0's edit tasks, or why there are none (a `PilotResult`, saved: the pilot is decided once).

    The sample is chosen once and persisted, so a resumed run finishes the same pilot."""
    saved = ctx.store.get_meta(META_RESULT)
    if saved is not None:
        return PilotResult(**saved)
    per_op, share = ctx.options.pilot_per_op, ctx.options.pilot_share
    tasks: list[EditTask] = []
    if per_op <= 0:
        skipped = PilotResult(status="skipped", reason="pilot_per_op is 0: the plan uses the catalogue priors")
    else:
        saved_tasks = ctx.store.get_meta(META_TASKS)
        if saved_tasks is None:
            catalogue = edit_catalogue(enabled, ctx.options.max_attempts, ctx.options)
            available = ctx.ledger.available
            cap = None if available is None else available * share
            items = {i.id: i for i in ctx.store.items(("kept", "edited", "new"))}
            tasks = _within_share(choose_sample(ctx, enabled, per_op, catalogue), catalogue, items, cap)
            ctx.store.set_meta(META_TASKS, [dataclasses.asdict(t) for t in tasks])
        else:
            tasks = [EditTask(**t) for t in saved_tasks]
        finished = {o["edit_id"] for o in ctx.store.outcomes(PILOT_ROUND)}
        tasks = [t for t in tasks if t.edit_id not in finished]
        skipped = PilotResult(status="skipped", reason="no pilot edit fits the pilot's share of the budget "
                                                       "or applies: the plan uses the catalogue priors")
    if tasks:
        return tasks
    if ctx.store.get_meta(META_TASKS):  # every chosen edit is already final (a resume after round 0)
        return pilot_summary(ctx)
    ctx.store.set_meta(META_RESULT, dataclasses.asdict(skipped))
    return skipped
