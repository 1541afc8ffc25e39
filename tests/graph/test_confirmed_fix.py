"""A fix that passes with the item unchanged confirmed its key: the item is kept, not counted "edited".

A fresh `make demo` committed a fix on "Why is the sky blue?" that returned the item as it was; retrieval
agreed with the key, so it passed, and the report counted the item "edited" although no text changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from refinelab.agents.planner_agent import item_profiles, observations
from refinelab.graph.nodes import leftover_requests, route_after_validate
from refinelab.graph.outputs import change_lines, metrics
from refinelab.schema import Diagnostic, Provenance, QAItem
from refinelab.state import COMMITTED, CONFIRMED, EditTask, Verdict
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel


def _item(i: int, question: str | None = None, answer: int = 0) -> QAItem:
    return QAItem(id=f"q{i}", question=question or f"Why is the sky blue, case {i}?",
                  choices=["Rayleigh scattering", "Reflection of the sea", "Ozone", "Dust"], answer=answer,
                  provenance=Provenance(source="mmlu/test/astronomy.csv", row=i))


def _fix(ctx, i: int, before: QAItem, after: QAItem) -> None:  # type: ignore[no-untyped-def]
    task = EditTask(edit_id=f"r1-fix-q{i}", item_id=f"q{i}", operation="fix", round=1)
    ctx.store.record_attempt(task.edit_id, 0, 1, task.item_id, "fix", "", before, after, "{}", 120)
    verdict = Verdict(True, "retrieval supports the key", "rag", {"rag_verdict": "supported"}, 80,
                      outcome="supported")
    ctx.store.record_verdict(task.edit_id, 0, "pass", verdict.reason, {"method": verdict.method, **verdict.evidence},
                             verdict.tokens)
    route_after_validate(ctx, task, verdict, after)


def test_an_unchanged_fix_is_confirmed_and_a_changed_one_committed(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"))
    originals = [_item(1), _item(2)]
    ctx.store.load_items(originals)
    ctx.store.put_diagnostics([Diagnostic(item_id=f"q{i}", check="error", flag=True, score=0.6,
                                          evidence={"p_error": 0.6}) for i in (1, 2)])
    # q1's draft differs only in case and spacing: the same item. q2's draft moves the key.
    same = originals[0].model_copy(update={"question": "  why is the SKY blue, case 1? ",
                                           "provenance": Provenance(created_by="fix", parent_id="q1")})
    moved = originals[1].model_copy(update={"answer": 2, "provenance": Provenance(created_by="fix")})
    _fix(ctx, 1, originals[0], same)
    _fix(ctx, 2, originals[1], moved)

    assert ctx.store.status("q1") == "kept" and ctx.store.status("q2") == "edited"
    outcomes = {o["item_id"]: o["status"] for o in ctx.store.outcomes()}
    assert outcomes == {"q1": CONFIRMED, "q2": COMMITTED}
    kept = ctx.store.item("q1")
    # the input's own text, origin and source row stay; the provenance names the fix that confirmed the key
    assert kept.question == originals[0].question and kept.provenance.row == 1
    assert kept.provenance.created_by == "original" and kept.provenance.confirmed_by == "fix"
    # settled: neither flag goes to review as "no edit fixed it", and the confirmed key's p_error is cleared
    assert ctx.store.unsettled_flags() == [] and leftover_requests(ctx) == []
    assert metrics(ctx, ctx.store.items())["expected_errors"] == 0.0
    assert all(p.p_error == 0.0 for p in item_profiles(ctx))
    # the planner learns a confirmed fix as a success, as it learns a committed one
    assert {o.passed for o in observations(ctx)} == {True}
    lines = [json.loads(line) for line in change_lines(ctx, ctx.store.edits())]
    assert {line["item_id"]: line["outcome"] for line in lines} == {"q1": CONFIRMED, "q2": COMMITTED}


def test_a_flag_no_fix_settled_still_goes_to_review(tmp_path: Path) -> None:
    """The other side of `unsettled_flags`: a flagged item no edit touched is still a leftover."""
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), options={"review": "auto-accept"})
    ctx.store.load_items([_item(1), _item(2)])
    ctx.store.put_diagnostics([Diagnostic(item_id="q1", check="error", flag=True, score=0.6,
                                          evidence={"p_error": 0.6})])
    assert [d.item_id for d in ctx.store.unsettled_flags()] == ["q1"]
    assert [r.item_id for r in leftover_requests(ctx)] == ["q1"]


def test_a_confirmed_fix_keeps_the_status_an_earlier_edit_gave(tmp_path: Path) -> None:
    """An item a distractor rewrite edited in round 1 and a fix confirmed in round 2 is still "edited": the
    confirmation does not turn it back into an input item."""
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"))
    original = _item(1)
    ctx.store.load_items([original])
    rewritten = original.model_copy(update={"choices": ["Rayleigh scattering", "Sunsets", "Ozone", "Dust"],
                                            "provenance": Provenance(created_by="rewrite_distractors")})
    ctx.store.replace_item(rewritten, "edited")
    _fix(ctx, 1, rewritten, rewritten.model_copy(update={"provenance": Provenance(created_by="fix")}))
    assert ctx.store.status("q1") == "edited"
    kept = ctx.store.item("q1")
    assert kept.choices == rewritten.choices and kept.provenance.created_by == "rewrite_distractors"
    assert kept.provenance.confirmed_by == "fix"
    assert [o["status"] for o in ctx.store.outcomes()] == [CONFIRMED]
