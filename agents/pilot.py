"""Pilot: measure what each operation really costs and how often it passes, before the first plan.

A few edits per operation (default 5, `ctx.extras["pilot_per_op"]`; 0 = plan on priors) go through the
real refiner and validator, with the graph's loop-back on rejection. Their calls are charged to node
"pilot" in the ledger; each attempt's tokens are what the ledger charged for it, or the provider-reported
usage when that is larger (a response replayed from the cache after a resume costs the budget nothing,
but a new edit will cost what the original call did). The outcomes feed `Catalogue.updated` through the
store, the same path that refits costs after every round.

Pilot edits are real edits, chosen where they help (the most likely errors, the weakest distractor
sets, moves into under-filled buckets, new items for under-filled cells and buckets), stratified over
cells. They are recorded as round 0 in the store and committed exactly as the graph commits (a passed
edit replaces the item or adds a new one); every pilot-touched item is frozen for later rounds, so each
input item still ends kept, edited or removed exactly once. `remove` is never piloted: the graph makes
no model call for it, and measuring it would delete items the plan may want.

The pilot spends at most `pilot_share` (default 25%) of the budget left, by prior estimate; a
`BudgetExhausted` stops it, and the plan is made on priors plus whatever finished.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from refinelab.agents.context import AgentContext
from refinelab.agents.planner_agent import edit_catalogue, item_length_tokens, make_problem
from refinelab.agents.refiner import Candidate, EditTask, refine
from refinelab.agents.validator import Verdict, validate
from refinelab.errors import BudgetExhausted
from refinelab.operations import Op
from refinelab.planner.catalogue import Catalogue
from refinelab.planner.problem import Problem
from refinelab.schema import QAItem
from refinelab.tools.ledger import CallTag, Ledger, Reservation

DEFAULT_PER_OP = 5
DEFAULT_SHARE = 0.25
ITEM_OPS = (Op.FIX, Op.REWRITE_DISTRACTORS, Op.CALIBRATE)  # in the order they claim items
NEW_OPS = (Op.EXPAND, Op.GENERATE)
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


class PilotLedger:
    """The run's ledger seen through the pilot: calls are attributed to node "pilot", and what each
    (operation, item) was charged is counted, so the pilot reads its tokens from the ledger itself."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self.charged: Counter[tuple[str, str]] = Counter()

    def reserve(self, tokens: int, tag: CallTag, **kwargs: Any) -> Reservation:
        return self._ledger.reserve(tokens, dataclasses.replace(tag, node="pilot"), **kwargs)

    def settle(self, reservation: Reservation, prompt_tokens: int, completion_tokens: int, **kwargs: Any) -> None:
        self._ledger.settle(reservation, prompt_tokens, completion_tokens, **kwargs)
        with self._lock:  # the ledger clips usage to the reservation; count what it counts
            self.charged[(reservation.tag.operation, reservation.tag.item_id)] += min(
                prompt_tokens + completion_tokens, reservation.tokens)

    def tokens(self, operation: str, item_id: str) -> int:
        with self._lock:
            return self.charged[(operation, item_id)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


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


def _edit_id(op: Op, key: str) -> str:
    return f"r0-{op.value}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def choose_sample(ctx: AgentContext, enabled: list[str], per_op: int, catalogue: Catalogue) -> list[EditTask]:
    """Up to `per_op` useful edits per enabled operation (remove excepted), stratified over cells."""
    problem = make_problem(ctx, 1e9, enabled, catalogue)
    cell_gap, bucket_gap = _deficits(problem)
    tasks: list[EditTask] = []
    used: set[str] = set()
    for op in ITEM_OPS:
        if op.value not in enabled:
            continue
        scored: list[tuple[str, str, float, str]] = []
        for item in problem.items:
            if item.id in used:
                continue
            best: tuple[float, str] | None = None
            for cand in item.candidates:
                if cand.op is not op:
                    continue
                if op is Op.CALIBRATE:
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
            tasks.append(EditTask(f"r0-{op.value}-{item_id}", item_id, op.value, 0, target=target))
    tasks += _new_item_tasks(ctx, enabled, per_op, cell_gap, bucket_gap)
    return tasks


def _new_item_tasks(ctx: AgentContext, enabled: list[str], per_op: int, cell_gap: dict[str, float],
                    bucket_gap: dict[str, float]) -> list[EditTask]:
    """New items go to the groups furthest below target; each task gets its own template item (the
    ledger attributes by operation and item, so the pilot can tell the tasks apart)."""
    pool = ctx.store.items(("kept", "edited"))
    tasks: list[EditTask] = []
    for op, gaps in ((Op.EXPAND, cell_gap), (Op.GENERATE, bucket_gap)):
        if op.value not in enabled:
            continue
        left = {g: v for g, v in gaps.items() if v > 0}
        taken: set[str] = set()
        for k in range(per_op):
            if not left:
                break
            group = max(sorted(left), key=lambda g: left[g])
            left[group] -= 1
            if left[group] <= 0:
                del left[group]
            template = _template(pool, group if op is Op.EXPAND else None, taken, k)
            if template is None:
                break
            taken.add(template.id)
            tasks.append(EditTask(_edit_id(op, f"{group}|{template.id}|{k}"), template.id, op.value, 0,
                                  target=group))
    return tasks


def _template(pool: list[QAItem], cell: str | None, taken: set[str], k: int) -> QAItem | None:
    """An unused item to seed a new one: same cell, then same domain, then any (spread by `k`)."""
    free = [i for i in pool if i.id not in taken]
    if not free:
        return None
    if cell is not None:
        domain, _, skill = cell.partition("|")
        for match in ([i for i in free if i.domain == domain and i.skill == skill],
                      [i for i in free if i.domain == domain]):
            if match:
                return match[0]
    return free[(k * 7) % len(free)]


def _within_share(tasks: list[EditTask], catalogue: Catalogue, store_items: dict[str, QAItem],
                  cap: float | None) -> list[EditTask]:
    """Keep tasks round-robin over operations while their prior cost fits the pilot's share."""
    by_op: dict[str, list[EditTask]] = defaultdict(list)
    for task in tasks:
        by_op[task.operation].append(task)
    mean = (sum(item_length_tokens(i) for i in store_items.values()) / len(store_items)) if store_items else 100.0
    kept: list[EditTask] = []
    spent = 0.0
    for rank in range(max((len(v) for v in by_op.values()), default=0)):
        for op in sorted(by_op):
            if rank >= len(by_op[op]):
                continue
            task = by_op[op][rank]
            new = task.operation in ("expand", "generate")
            length = mean if new else item_length_tokens(store_items[task.item_id])
            cost = catalogue.cost(task.operation, length)
            if cap is not None and spent + cost > cap:
                continue
            spent += cost
            kept.append(task)
    return kept


# -------------------------------------------------------------------------------------------- run

def _run_edit(ctx: AgentContext, ledger: PilotLedger, task: EditTask) -> str:
    """One pilot edit, the graph's way: refine → validate → retry with the reason | commit | give up.
    Returns the outcome: committed, gave_up or budget."""
    from refinelab.graph.nodes import _commit  # the graph's commit, so pilot edits land identically

    store, feedback = ctx.store, ""
    before = store.item(task.item_id)
    verdict = Verdict(False, "not tried", "none")
    for attempt in range(ctx.settings.max_attempts):
        step = dataclasses.replace(task, attempt=attempt, feedback=feedback)
        start = ledger.tokens(task.operation, task.item_id)
        out_of_budget = False
        try:
            candidate = refine(ctx, step)
        except BudgetExhausted as exc:
            candidate, out_of_budget = Candidate(None, "", 0, error=f"budget exhausted: {exc}"), True
        refined = ledger.tokens(task.operation, task.item_id)
        store.record_attempt(step.edit_id, attempt, 0, task.item_id, task.operation, task.target, before,
                             candidate.item, candidate.raw, max(refined - start, candidate.tokens),
                             candidate.error)
        if out_of_budget:
            verdict = Verdict(False, candidate.error, "budget")
        else:
            try:
                verdict = validate(ctx, step, candidate)
            except BudgetExhausted as exc:
                verdict = Verdict(False, f"budget exhausted: {exc}", "budget")
        store.record_verdict(step.edit_id, attempt, "pass" if verdict.passed else "fail", verdict.reason,
                             {"method": verdict.method, **verdict.evidence},
                             max(ledger.tokens(task.operation, task.item_id) - refined, verdict.tokens))
        if verdict.passed:
            _commit(ctx, step, candidate.item)
            store.set_outcome(task.edit_id, task.item_id, task.operation, 0, "committed", verdict.reason,
                              attempt + 1)
            return "committed"
        if verdict.method == "budget":
            store.set_outcome(task.edit_id, task.item_id, task.operation, 0, "gave_up",
                              f"kept the original: {verdict.reason}", attempt + 1)
            return "budget"
        feedback = verdict.reason
    store.set_outcome(task.edit_id, task.item_id, task.operation, 0, "gave_up",
                      f"kept the original: {verdict.reason}", ctx.settings.max_attempts)
    return "gave_up"


def _pilot_rows(ctx: AgentContext) -> Iterator[tuple[str, str, int]]:
    """(operation, outcome, tokens) of each finished pilot edit."""
    tokens: Counter[str] = Counter()
    for edit in ctx.store.edits():
        if edit["round"] == 0:
            tokens[edit["edit_id"]] += int(edit["tokens"])
    for outcome in ctx.store.outcomes(0):
        yield outcome["operation"], outcome["status"] if "budget exhausted" not in outcome["reason"] else "budget", \
            tokens[outcome["edit_id"]]


def _summary(ctx: AgentContext, status: str, reason: str, n_tasks: int) -> PilotResult:
    by_op: dict[str, dict[str, float]] = {}
    finished = committed = total = 0
    for op, outcome, tokens in _pilot_rows(ctx):
        row = by_op.setdefault(op, {"edits": 0, "committed": 0, "tokens": 0})
        total += tokens
        if outcome == "budget":
            continue
        finished += 1
        committed += outcome == "committed"
        row["edits"] += 1
        row["committed"] += outcome == "committed"
        row["tokens"] += tokens
    for row in by_op.values():
        row["mean_tokens"] = round(row["tokens"] / row["edits"], 1) if row["edits"] else 0.0
    return PilotResult(status=status, reason=reason, tasks=n_tasks, finished=finished, committed=committed,
                       tokens=total, by_op=by_op)


def run_pilot(ctx: AgentContext, enabled: list[str]) -> PilotResult:
    """Run (or, after a resume, finish) the pilot; its results reach the planner through the store."""
    saved = ctx.store.get_meta(META_RESULT)
    if saved is not None:
        return PilotResult(**saved)
    per_op = int(ctx.extras.get("pilot_per_op", DEFAULT_PER_OP))
    share = float(ctx.extras.get("pilot_share", DEFAULT_SHARE))
    with ctx.tracer.span("pilot", "chain", {"per_op": per_op, "share": share, "enabled": enabled}) as run:
        result = _pilot(ctx, enabled, per_op, share)
        run.outputs = dataclasses.asdict(result)
    ctx.store.set_meta(META_RESULT, dataclasses.asdict(result))
    return result


def _pilot(ctx: AgentContext, enabled: list[str], per_op: int, share: float) -> PilotResult:
    if per_op <= 0:
        return PilotResult(status="skipped", reason="pilot_per_op is 0: the plan uses the catalogue priors")
    catalogue = edit_catalogue(enabled, ctx.settings.max_attempts)
    saved_tasks = ctx.store.get_meta(META_TASKS)
    if saved_tasks is None:  # chosen once and persisted, so a resumed run finishes the same pilot
        available = ctx.ledger.available
        cap = None if available is None else available * share
        items = {i.id: i for i in ctx.store.items(("kept", "edited", "new"))}
        tasks = _within_share(choose_sample(ctx, enabled, per_op, catalogue), catalogue, items, cap)
        ctx.store.set_meta(META_TASKS, [dataclasses.asdict(t) for t in tasks])
    else:
        tasks = [EditTask(**t) for t in saved_tasks]
    if not tasks:
        return PilotResult(status="skipped", reason="no pilot edit fits the pilot's share of the budget "
                                                    "or applies: the plan uses the catalogue priors")
    finished = {o["edit_id"] for o in ctx.store.outcomes(0)}
    todo = [t for t in tasks if t.edit_id not in finished]
    ledger = PilotLedger(ctx.ledger)
    pilot_ctx = dataclasses.replace(ctx, ledger=cast(Ledger, ledger), _clients={})
    stop = threading.Event()

    def one(task: EditTask) -> None:
        if stop.is_set():
            return
        if _run_edit(pilot_ctx, ledger, task) == "budget":
            stop.set()

    workers = max(1, min(len(todo), ctx.settings.roles.writer.concurrency))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # copy_context: runs nest under the pilot span
        for future in [pool.submit(contextvars.copy_context().run, one, t) for t in todo]:
            future.result()
    if stop.is_set():
        return _summary(ctx, "budget", "the budget ran out during the pilot; finished edits are used, "
                                       "priors for the rest", len(tasks))
    return _summary(ctx, "done", "", len(tasks))
