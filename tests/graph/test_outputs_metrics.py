"""The before/after figures of report.json: what an edit may claim in them."""

from __future__ import annotations

from pathlib import Path

from refinelab.graph.outputs import metrics
from refinelab.schema import Diagnostic, Provenance, QAItem
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel


def _item(i: int, created_by: str = "original") -> QAItem:
    return QAItem(id=f"q{i}", question=f"Question {i}?", choices=["a", "b", "c", "d"], answer=0,
                  provenance=Provenance(created_by=created_by))


def test_only_a_committed_fix_clears_an_items_expected_error(tmp_path: Path) -> None:
    """A distractor rewrite keeps the key it was given: its item still counts the p_error the profile
    measured (a demo once reported 3.90 -> 3.42 expected errors from four distractor rewrites)."""
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"))
    before = [_item(1), _item(2), _item(3)]
    ctx.store.load_items(before)
    ctx.store.put_diagnostics([Diagnostic(item_id=f"q{i}", check="error", flag=False, score=0.5,
                                          evidence={"p_error": 0.5}) for i in (1, 2, 3)])
    after = [_item(1), _item(2, "rewrite_distractors"), _item(3, "fix"), _item(4, "expand")]
    assert metrics(ctx, before)["expected_errors"] == 1.5
    assert metrics(ctx, after)["expected_errors"] == 1.0
