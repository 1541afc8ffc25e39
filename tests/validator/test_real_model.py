"""One real-model check per method on the embedded llama.cpp server (SmolLM2-135M): the verdict is
well-formed and carries its evidence. Whether the tiny model is right is the evals' business."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refinelab.agents.validation.pot import pot_check
from refinelab.agents.validation.rag import rag_check
from refinelab.config import load_settings
from refinelab.state import EditTask
from tests.support.validator_helpers import mcq

pytestmark = pytest.mark.llm
SMALL = "smollm2-135m"
TASK = EditTask(edit_id="e1", item_id="t1", operation="fix", round=1)


def _ctx(tmp_path: Path, server: Any, **options: Any) -> Any:
    from langchain_openai import ChatOpenAI

    from tests.support.contexts import context_for

    settings = load_settings(overrides={"cache_path": str(tmp_path / "cache.sqlite"), "use_cache": False,
                                        "roles": {"validator": {"model": SMALL, "max_tokens": 200}}})
    chat = ChatOpenAI(base_url=server.base_url, api_key="sk-local", model=SMALL, temperature=0, max_tokens=200,
                      max_retries=0)
    return context_for(tmp_path / "run", settings, chat_models={"validator": chat}, **options)


def test_pot_on_the_real_model(embedded_server, sandbox, tmp_path: Path) -> None:
    item = mcq("Tom has 4 boxes with 6 pencils in each box. How many pencils does he have?",
               ["10", "24", "20", "46"], 1)
    ctx = _ctx(tmp_path, embedded_server, sandbox=sandbox, pot_attempts=1)
    verdict = pot_check(ctx, TASK, item)
    ev = verdict.evidence
    assert verdict.method == "pot" and verdict.reason and isinstance(verdict.passed, bool)
    assert ev["outcome"] in {"match_key", "match_other", "no_match", "error"}
    assert ev["attempts"] and ctx.ledger.spent > 0  # failed parses are paid for too
    ran = [a for a in ev["attempts"] if a.get("code")]
    if ran:  # a program came back: it really ran in the sandbox
        assert "stdout" in ran[0] and "exit_code" in ran[0]
    if ev["outcome"] == "error":
        assert ev["fallback"] == "answer" and "answer_check" in ev


def test_rag_on_the_real_model_and_real_embeddings(embedded_server, data_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from refinelab.tools.corpus import Corpus, load_wikitext
    from refinelab.tools.embeddings import CachedEmbedder, EmbeddingCache, SentenceEmbedder
    from refinelab.tools.retrieval import Retriever

    passages = load_wikitext(data_root / "wikipedia" / "wikitext-2-raw" / "wiki.test.raw")[:40]
    retriever = Retriever.build_or_load(
        Corpus(passages, name="wikitext-40"), cache_dir=tmp_path / "idx",
        embedder=CachedEmbedder(SentenceEmbedder(batch_size=16), EmbeddingCache(tmp_path / "emb.sqlite")))
    assert passages[0].title.startswith("Robert Boulter")
    item = mcq("What is Robert Boulter's profession?",
               ["Film, television and theatre actor", "Chemist", "Football player", "Poet"], 0,
               subject="miscellaneous")
    verdict = rag_check(_ctx(tmp_path, embedded_server, rag_corpus=retriever), TASK, item)
    ev = verdict.evidence
    assert verdict.method == "rag" and verdict.reason and isinstance(verdict.passed, bool)
    assert ev["passage_ids"] and set(ev["passage_ids"]) <= {p.id for p in passages}
    assert all(p["title"] and isinstance(p["score"], float) for p in ev["passages"])
    assert ev["rag_verdict"] in {"supported", "contradicted", "insufficient", "unusable"}
    if ev["rag_verdict"] in {"insufficient", "unusable"}:
        assert ev["fallback"] == "answer"
