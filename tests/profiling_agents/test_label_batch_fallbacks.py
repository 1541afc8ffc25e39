"""Why a label batch labelled nothing (`label_batches.BatchLabels`): no batch prompt, a failed call or a
reply that cannot be matched to its items, each told apart, with the tokens it cost, in the trace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from refinelab.agents.label_batches import label_batch, label_in_batches
from refinelab.schema import QAItem
from refinelab.tools.tracing import read_trace
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel

FACTS = [QAItem(id=f"f{i}", question=f"Which organelle is named in fact number {i}?",
                choices=["Nucleus", "Mitochondrion", "Ribosome", "Golgi body"], answer=1, subject="biology")
         for i in range(2)]


def _judge(batch_reply: str) -> ScriptedChatModel:
    def respond(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if "Classify each of the" in text:
            return batch_reply
        if "Classify the question" in text:
            return json.dumps({"skill": "recall", "difficulty": 3})
        raise AssertionError(text[:80])
    return ScriptedChatModel(respond=respond)


def _numbered(order: list[int]) -> str:
    return json.dumps({"labels": [{"item": k, "skill": "recall", "difficulty": 2} for k in order]})


def _context(tmp_path: Path, batch_reply: str):  # type: ignore[no-untyped-def]
    ctx = make_context(tmp_path, _judge(batch_reply), options={"skill_method": "model", "label_batch": 2})
    ctx.store.load_items(FACTS)
    return ctx


def test_a_matched_reply_labels_every_item_and_says_no_fallback(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _numbered([1, 2]))
    result = label_batch(ctx, FACTS)
    assert result.fallback is None and len(result.diagnostics) == 2
    assert result.tokens == ctx.ledger.spent == sum(d.evidence["tokens"] for d in result.diagnostics)


@pytest.mark.parametrize(("reply", "reason"), [(_numbered([2, 1]), "reply_mismatch"),
                                               ("no json here", "call_failed")])
def test_a_batch_that_labels_nothing_says_why_and_what_it_cost(tmp_path: Path, reply: str, reason: str) -> None:
    ctx = _context(tmp_path, reply)
    result = label_batch(ctx, FACTS)
    assert (result.diagnostics, result.fallback) == ([], reason) and result.detail
    assert result.tokens == ctx.ledger.spent > 0  # charged by the ledger, and reported, not dropped


def test_a_pack_without_the_batch_prompt_is_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("refinelab.agents.label_batches.BATCH_PROMPT", "no_such_prompt")
    ctx = _context(tmp_path, _numbered([1, 2]))
    result = label_batch(ctx, FACTS)
    assert (result.diagnostics, result.fallback, result.tokens) == ([], "no_batch_prompt", 0)
    assert "no_such_prompt" in result.detail and ctx.ledger.spent == 0


def test_the_fallback_is_in_the_trace_and_the_items_are_left_for_single_labels(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _numbered([2, 1]))
    assert label_in_batches(ctx, FACTS) == 0
    assert all(ctx.store.diagnostic(i.id, "label") is None for i in FACTS)
    ctx.tracer.flush()
    span = next(r for r in read_trace(ctx.run_dir / "trace.jsonl") if r["name"] == "label_batches")
    (fallback,) = span["outputs"]["fallbacks"]
    assert fallback["items"] == ["f0", "f1"] and fallback["reason"] == "reply_mismatch"
    assert fallback["tokens"] == ctx.ledger.spent > 0 and re.search(r"\[2, 1\]", fallback["detail"])
