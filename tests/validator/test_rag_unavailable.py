"""Retrieval that cannot run (no embedder, an unreadable corpus) falls back to the answer check; a bug in
the retrieval code does not: it propagates instead of passing as a degraded verdict."""

from __future__ import annotations

import pytest

from refinelab.agents.validation import rag
from refinelab.agents.validation.rag import rag_check
from refinelab.errors import DataError
from refinelab.state import EditTask
from refinelab.tools.embeddings import EmbeddingsUnavailable
from tests.support.validator_helpers import answer, mcq, scripted

TASK = EditTask(edit_id="e1", item_id="t1", operation="fix", round=1)
CAPITAL = mcq("What is the capital city of France?", ["Rome", "Paris", "Tokyo", "Berlin"], 1, subject="geography")


def _failing(exc: BaseException):  # noqa: ANN202
    def retrieve(*args: object, **kwargs: object) -> list:
        raise exc
    return retrieve


@pytest.mark.parametrize("exc", [EmbeddingsUnavailable("pip install refinelab[embed]"),
                                 FileNotFoundError("corpus.jsonl"), DataError("corpus.jsonl", 3, "text", "missing"),
                                 RuntimeError("faiss: index damaged")])
def test_retrieval_that_cannot_run_falls_back_to_the_answer_check(make_ctx, monkeypatch, exc) -> None:
    monkeypatch.setattr(rag, "retrieve", _failing(exc))
    script = scripted(answer=answer("B"))
    verdict = rag_check(make_ctx(script), TASK, CAPITAL)
    assert verdict.passed and verdict.evidence["rag_verdict"] == "unavailable"
    assert verdict.evidence["error"].startswith(type(exc).__name__) and "retrieval unavailable" in verdict.reason
    assert script.kinds() == ["answer"]


@pytest.mark.parametrize("exc", [TypeError("search() got an unexpected keyword"), KeyError("score")])
def test_a_bug_in_retrieval_is_not_passed_off_as_unavailable(make_ctx, monkeypatch, exc) -> None:
    monkeypatch.setattr(rag, "retrieve", _failing(exc))
    script = scripted(answer=answer("B"))
    with pytest.raises(type(exc)):
        rag_check(make_ctx(script), TASK, CAPITAL)
    assert script.kinds() == []
