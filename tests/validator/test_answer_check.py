"""The answer check on a distractor rewrite: only a new distractor the solver picks fails it."""

from __future__ import annotations

from refinelab.agents.validation.answer import answer_check
from refinelab.state import EditTask
from tests.support.validator_helpers import answer, mcq, scripted

ORIGINAL = mcq("Which planet is closest to the Sun?", ["Venus", "Mercury", "Earth", "Mars"], 1, subject="astronomy")
REWRITE = ORIGINAL.model_copy(update={"choices": ["Venus", "Mercury", "Jupiter", "Saturn"]})
TASK = EditTask(edit_id="e1", item_id=ORIGINAL.id, operation="rewrite_distractors", round=1)


def _ctx(make_ctx, letter: str):
    ctx = make_ctx(scripted(answer=answer(letter)))
    ctx.store.load_items([ORIGINAL])
    return ctx


def test_solver_picking_a_kept_original_distractor_passes_and_says_so(make_ctx) -> None:
    verdict = answer_check(_ctx(make_ctx, "A"), TASK, REWRITE)
    assert verdict.passed and verdict.evidence["picked_original_distractor"] == "Venus"
    assert "already had" in verdict.reason


def test_solver_picking_a_new_distractor_fails(make_ctx) -> None:
    verdict = answer_check(_ctx(make_ctx, "C"), TASK, REWRITE)
    assert not verdict.passed and "'Jupiter'" in verdict.reason


def test_other_operations_keep_the_strict_check(make_ctx) -> None:
    fix = EditTask(edit_id="e2", item_id=ORIGINAL.id, operation="fix", round=1)
    verdict = answer_check(_ctx(make_ctx, "A"), fix, REWRITE)
    assert not verdict.passed and "picked_original_distractor" not in verdict.evidence
