"""The plan → tasks step (agents/edit_tasks.py) pinned: edit ids and task fields as run folders hold them.

The run store keys attempts, verdicts and outcomes by edit id, and a resumed run folder's checkpoint holds
the round's task dicts; the expected tasks below are what the graph module's hand-built dicts gave before
the step moved to agents/edit_tasks.py, field for field and in key order."""

from __future__ import annotations

from pathlib import Path

from refinelab.agents.edit_tasks import edit_id, tasks_from_plan
from refinelab.metrics.targets import Targets
from refinelab.operations import Op
from refinelab.planner.ilp import Assignment, NewItems, Plan
from refinelab.schema import QAItem
from tests.refiners.test_refiners import make_ctx

EXPECTED = [
    {'edit_id': 'r2-fix-astro-3', 'item_id': 'astro-3', 'operation': 'fix', 'round': 2, 'attempt': 0, 'target': '', 'feedback': ''},
    {'edit_id': 'r2-calibrate-astro-4', 'item_id': 'astro-4', 'operation': 'calibrate', 'round': 2, 'attempt': 0, 'target': 'hard', 'feedback': ''},
    {'edit_id': 'r2-remove-astro-5', 'item_id': 'astro-5', 'operation': 'remove', 'round': 2, 'attempt': 0, 'target': '', 'feedback': ''},
    {'edit_id': 'r2-expand-50a25bd2', 'item_id': 'astro-3', 'operation': 'expand', 'round': 2, 'attempt': 0, 'target': 'STEM|reasoning', 'feedback': '', 'batch': 'r2-STEM|reasoning-0#0/2+1', 'aims': 'hard,hard,hard'},
    {'edit_id': 'r2-expand-11fdfea4', 'item_id': 'astro-3', 'operation': 'expand', 'round': 2, 'attempt': 0, 'target': 'STEM|reasoning', 'feedback': '', 'batch': 'r2-STEM|reasoning-0#1/2+1', 'aims': 'hard,hard,hard'},
    {'edit_id': 'r2-expand-f6f75492', 'item_id': 'astro-4', 'operation': 'expand', 'round': 2, 'attempt': 0, 'target': 'STEM|reasoning', 'feedback': '', 'batch': 'r2-STEM|reasoning-2#0/1+1', 'aims': 'medium,hard'},
    {'edit_id': 'r2-generate-ced57bdf', 'item_id': 'astro-1', 'operation': 'generate', 'round': 2, 'attempt': 0, 'target': 'hard', 'feedback': '', 'batch': '', 'aims': ''},
]


def _plan() -> Plan:
    return Plan(mode="ilp", status="optimal", budget=1e4, assignments=[
        Assignment(item_id="astro-3", op=Op.FIX, cost=1, success=0.5, expected_gain=1),
        Assignment(item_id="astro-4", op=Op.CALIBRATE, cost=1, success=0.5, expected_gain=1, to_bucket="hard"),
        Assignment(item_id="astro-5", op=Op.REMOVE, cost=0, success=1, expected_gain=1)],
        new_items=[NewItems(op=Op.EXPAND, cell="STEM|reasoning", bucket=None, count=3, cost_each=1, success=0.5,
                            expected_gain=1),
                   NewItems(op=Op.GENERATE, cell=None, bucket="hard", count=1, cost_each=1, success=0.5,
                            expected_gain=1)])


def test_a_small_plan_gives_the_same_edit_ids_and_task_fields(tmp_path: Path) -> None:
    """Item edits first (no batch or aims keys, as they were always stored), then batched expands with a
    spare and dealt aims, then an unbatched generate."""
    ctx = make_ctx(tmp_path)
    ctx.store.load_items([QAItem(id=f"astro-{k}", question=f"Question number {k} about the planets?",
                                 choices=["a", "b", "c", "d"], answer=0, subject="astronomy", domain="STEM",
                                 skill="reasoning", difficulty=0.1 * k) for k in range(3, 6)])
    ctx.options = ctx.options.model_copy(update={"expand_batch": 2, "expand_spares": 1, "expand_aims_difficulty": True})
    ctx.targets = Targets(difficulty={"easy": 1 / 3, "medium": 1 / 3, "hard": 1 / 3})
    tasks = tasks_from_plan(ctx, _plan(), 2)
    assert tasks == EXPECTED
    assert [list(t) for t in tasks] == [list(t) for t in EXPECTED]  # the key order a checkpoint serialises


def test_edit_ids_name_the_round_the_operation_and_the_key() -> None:
    assert edit_id(2, Op.FIX, "astro-3") == "r2-fix-astro-3"
    assert edit_id(0, "rewrite_distractors", "x") == "r0-rewrite_distractors-x"
