"""RAG verdicts on a scripted judge over a tiny corpus embedded with a deterministic fake embedder."""

from __future__ import annotations

import json

from refinelab.agents.validation.rag import rag_check
from refinelab.state import EditTask
from refinelab.tools.tracing import read_trace
from tests.support.validator_helpers import answer, mcq, scripted

TASK = EditTask(edit_id="e1", item_id="t1", operation="fix", round=1)
CAPITAL = mcq("What is the capital city of France?", ["Rome", "Paris", "Tokyo", "Berlin"], 1,
              subject="geography")


def judge(verdict: str, ids: list[str], option: str = "none", key: str = "B") -> str:
    """The blind judge's reply that yields `verdict` for an item keyed `key`."""
    if verdict == "supported":
        option = key
    return json.dumps({"reasoning": f"[{ids[0] if ids else ''}] says so", "passage_ids": ids,
                       "supported_option": option})


def test_supported_passes_with_passage_evidence(make_ctx, tiny_retriever) -> None:
    script = scripted(rag=judge("supported", ["p:paris", "p:invented"]))
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever), TASK, CAPITAL)
    assert verdict.passed and verdict.method == "rag"
    ev = verdict.evidence
    assert ev["rag_verdict"] == "supported" and ev["passage_ids"][0] == "p:paris"
    assert ev["cited_ids"] == ["p:paris"]  # ids the judge made up are dropped
    top = ev["passages"][0]
    assert top["title"] == "Paris" and 0 < top["score"] <= 1
    assert "p:paris" in verdict.reason and script.kinds() == ["rag"]
    prompt = script.seen[0][1][-1]["content"]
    assert "[p:paris] Paris" in prompt and "Answer key" not in prompt  # the judge is blind to the key


def test_contradicted_fails_with_a_reason_the_refiner_can_use(make_ctx, tiny_retriever) -> None:
    wrong = CAPITAL.model_copy(update={"answer": 0})
    script = scripted(rag=judge("contradicted", ["p:paris"], "B"))
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever), TASK, wrong)
    assert not verdict.passed and verdict.evidence["rag_verdict"] == "contradicted"
    assert "contradict the key A ('Rome')" in verdict.reason and "support B ('Paris')" in verdict.reason
    assert "p:paris" in verdict.reason


def test_insufficient_falls_back_to_the_answer_check(make_ctx, tiny_retriever) -> None:
    script = scripted(rag=judge("insufficient", []), answer=answer("B"))
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever), TASK, CAPITAL)
    assert script.kinds() == ["rag", "answer"]
    assert verdict.passed and verdict.method == "rag"
    ev = verdict.evidence
    assert ev["rag_verdict"] == "insufficient" and ev["fallback"] == "answer"
    assert ev["answer_check"]["validator_answer"] == "B" and ev["passage_ids"]
    assert verdict.tokens > 0


def test_insufficient_then_wrong_independent_answer_fails(make_ctx, tiny_retriever) -> None:
    script = scripted(rag=judge("insufficient", []), answer=answer("C"))
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever), TASK, CAPITAL)
    assert not verdict.passed and "independent solver chose C" in verdict.reason


def test_off_topic_passages_skip_the_judge(make_ctx, tiny_retriever) -> None:
    item = mcq("Which enzyme unwinds the DNA double helix?", ["Helicase", "Ligase", "Primase", "Kinase"], 0,
               subject="biology")
    script = scripted(answer=answer("A"))
    # the fake embedder scores stop-word overlap, so the threshold is set above it
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever, rag_min_score=0.5), TASK, item)
    assert script.kinds() == ["answer"] and verdict.passed
    assert verdict.evidence["rag_verdict"] == "insufficient"


def test_unusable_judge_output_falls_back(make_ctx, tiny_retriever) -> None:
    script = scripted(rag="not json at all", answer=answer("B"))
    verdict = rag_check(make_ctx(script, rag_corpus=tiny_retriever), TASK, CAPITAL)
    assert verdict.passed and verdict.evidence["rag_verdict"] == "unusable"
    assert script.kinds().count("rag") == 3  # first try + the client's parse retries


def test_retrieval_is_a_tool_span_with_passages(make_ctx, tiny_retriever) -> None:
    ctx = make_ctx(scripted(rag=judge("supported", ["p:paris"])), rag_corpus=tiny_retriever)
    rag_check(ctx, TASK, CAPITAL)
    tools = [r for r in read_trace(ctx.run_dir / "trace.jsonl") if r["run_type"] == "tool"]
    assert [t["name"] for t in tools] == ["wikipedia_search"]
    assert "France" in tools[0]["inputs"]["queries"][0] and "Paris" in tools[0]["inputs"]["queries"][0]
    assert tools[0]["outputs"]["passages"][0]["id"] == "p:paris"


def test_user_corpus_path_is_loaded_once(make_ctx, tmp_path, monkeypatch) -> None:
    from refinelab.agents import retrieval as agent_retrieval
    from refinelab.tools import retrieval
    from tests.support.validator_helpers import PASSAGES, HashEmbedder

    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "title": t, "text": x}) for i, t, x in PASSAGES))
    built: list[object] = []
    original = retrieval.Retriever.build_or_load.__func__

    def build(cls, corpus, **kwargs):  # type: ignore[no-untyped-def]
        built.append(corpus)
        return original(cls, corpus, cache_dir=tmp_path / "idx", embedder=HashEmbedder())

    monkeypatch.setattr(retrieval.Retriever, "build_or_load", classmethod(build))
    monkeypatch.setattr(agent_retrieval, "_RETRIEVERS", {})
    for _ in range(2):
        verdict = rag_check(make_ctx(scripted(rag=judge("supported", ["p:paris"])), rag_corpus=str(path)),
                            TASK, CAPITAL)
        assert verdict.passed and verdict.evidence["passage_ids"][0] == "p:paris"
    assert len(built) == 1
