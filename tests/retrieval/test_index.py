"""Index mechanics with a fake embedder: persistence, reuse without re-embedding, rebuild on change,
search shape, the LangChain views and the embedding cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import ToolMessage

from refinelab.tools import embeddings as emb_mod
from refinelab.tools.corpus import Corpus, Passage
from refinelab.tools.embeddings import (
    CachedEmbedder,
    EmbeddingCache,
    EmbeddingsUnavailable,
    LangChainEmbeddings,
)
from refinelab.tools.retrieval import Retriever, format_passages, wikipedia_search_tool


def _toy() -> Corpus:
    return Corpus([
        Passage("t:turing:0", "Alan Turing", "Alan Turing broke the Enigma cipher at Bletchley Park.", "user"),
        Passage("t:curie:0", "Marie Curie", "Marie Curie discovered polonium and radium.", "user"),
        Passage("t:nile:0", "Nile", "The Nile is a river flowing north through Egypt into the Mediterranean.", "user"),
        Passage("t:everest:0", "Mount Everest", "Mount Everest is the highest mountain above sea level.", "user"),
    ], name="toy")


def test_second_load_does_not_reembed(tmp_path: Path, small_corpus: Corpus, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    first = HashEmbedder()
    r1 = Retriever.build_or_load(small_corpus, cache_dir=tmp_path, embedder=first)
    assert first.embedded == len(small_corpus) == len(r1)
    assert (r1.path / "index.faiss").is_file() and (r1.path / "passages.jsonl").is_file()
    meta = json.loads((r1.path / "meta.json").read_text())
    assert meta["count"] == len(small_corpus) and meta["model_id"] == first.model_id
    assert meta["index_type"] == "flat"
    second = HashEmbedder()
    r2 = Retriever.build_or_load(small_corpus, cache_dir=tmp_path, embedder=second)
    assert second.embedded == 0 and r2.path == r1.path
    q = small_corpus[3].text
    assert [p.id for p in r2.search(q)] == [p.id for p in r1.search(q)]
    assert second.embedded == 1  # only the query
    assert len([d for d in tmp_path.iterdir() if not d.name.startswith(".")]) == 1


def test_rebuild_when_corpus_or_model_changes(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    toy = _toy()
    r1 = Retriever.build_or_load(toy, cache_dir=tmp_path, embedder=HashEmbedder())
    edited = Corpus([*toy.passages[:3], Passage("t:everest:0", "Mount Everest", "Everest is 8,849 m tall.", "user")])
    fake = HashEmbedder()
    r2 = Retriever.build_or_load(edited, cache_dir=tmp_path, embedder=fake)
    assert fake.embedded == 4 and r2.path != r1.path and r2.fingerprint != r1.fingerprint
    other_model = HashEmbedder(model_id="test/other-model")
    r3 = Retriever.build_or_load(toy, cache_dir=tmp_path, embedder=other_model)
    assert other_model.embedded == 4 and r3.path not in (r1.path, r2.path)
    again = HashEmbedder()
    assert Retriever.build_or_load(toy, cache_dir=tmp_path, embedder=again).path == r1.path
    assert again.embedded == 0


def test_rebuild_after_small_edit_only_embeds_the_new_text(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    toy = _toy()
    inner = HashEmbedder()
    cached = CachedEmbedder(inner, EmbeddingCache(tmp_path / "emb.sqlite"))
    Retriever.build_or_load(toy, cache_dir=tmp_path / "idx", embedder=cached)
    assert inner.embedded == 4
    edited = Corpus([*toy.passages, Passage("t:new:0", "Danube", "The Danube flows into the Black Sea.", "user")])
    r = Retriever.build_or_load(edited, cache_dir=tmp_path / "idx", embedder=cached)
    assert inner.embedded == 5 and cached.hits == 4
    assert r.search("Which sea does the Danube flow into?", k=1)[0].id == "t:new:0"


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    r1 = Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=HashEmbedder())
    (r1.path / "index.faiss").write_bytes(b"not an index")
    fake = HashEmbedder()
    r2 = Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=fake)
    assert fake.embedded == 4 and r2.path == r1.path
    assert Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=HashEmbedder()).search("radium")[0].id \
        == "t:curie:0"


def test_search_results(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    r = Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=HashEmbedder())
    hits = r.search("who discovered radium and polonium", k=3)
    assert [type(h) for h in hits] == [Passage] * 3
    assert hits[0].id == "t:curie:0" and hits[0].title == "Marie Curie"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-5
    assert len(r.search("river", k=50)) == 4
    assert [len(x) for x in r.search_many(["Enigma", "Everest"], k=2)] == [2, 2]
    with pytest.raises(ValueError):
        r.search("x", k=0)
    empty = Retriever.build_or_load(Corpus([]), cache_dir=tmp_path, embedder=HashEmbedder())
    assert empty.search("anything") == []


def test_hnsw_index_persists_and_loads(tmp_path: Path, small_corpus: Corpus, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    r = Retriever.build_or_load(small_corpus, cache_dir=tmp_path, embedder=HashEmbedder(), index_type="hnsw")
    assert r.info["index_type"] == "hnsw" and hasattr(r.index, "hnsw")
    target = small_corpus[10]
    assert r.search(target.text, k=5)[0].id == target.id
    fake = HashEmbedder()
    r2 = Retriever.load(r.path, embedder=fake)
    assert fake.embedded == 0 and [p.id for p in r2.passages] == [p.id for p in small_corpus]
    assert r2.search(target.text, k=1)[0].id == target.id
    with pytest.raises(ValueError, match="built with"):
        Retriever.load(r.path, embedder=HashEmbedder(model_id="x"))


def test_langchain_vectorstore_view_matches(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    r = Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=HashEmbedder())
    vs = r.as_langchain_vectorstore()
    docs = vs.similarity_search_with_score("highest mountain above sea level", k=2)
    ours = r.search("highest mountain above sea level", k=2)
    assert [d.metadata["id"] for d, _ in docs] == [p.id for p in ours]
    assert docs[0][1] == pytest.approx(ours[0].score, abs=1e-5)
    assert vs.as_retriever(search_kwargs={"k": 1}).invoke("Enigma cipher")[0].metadata["id"] == "t:turing:0"


def test_wikipedia_search_tool(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    r = Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=HashEmbedder())
    built = []
    tool = wikipedia_search_tool(lambda: built.append(1) or r)
    assert tool.name == "wikipedia_search" and built == []  # lazy: nothing loaded yet
    assert set(tool.args) == {"query", "k"}
    text = tool.invoke({"query": "river through Egypt", "k": 2})
    assert text.startswith("[t:nile:0] Nile (score ") and text.count("\n\n") == 1
    msg = tool.invoke({"type": "tool_call", "id": "call-1", "name": "wikipedia_search",
                       "args": {"query": "Enigma Bletchley"}})
    assert isinstance(msg, ToolMessage) and msg.tool_call_id == "call-1"
    assert msg.artifact[0]["id"] == "t:turing:0" and set(msg.artifact[0]) == {"id", "title", "text", "source",
                                                                             "score"}
    assert len(msg.artifact) == 4 and built == [1]
    with pytest.raises(Exception, match="less than or equal"):
        tool.invoke({"query": "x", "k": 99})
    assert format_passages([]) == "No passages found."


def test_embedding_cache_is_keyed_by_text_and_model(tmp_path: Path, make_embedder: type) -> None:
    HashEmbedder = make_embedder
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    inner = HashEmbedder()
    a = CachedEmbedder(inner, cache)
    v1 = a.embed(["alpha", "beta", "alpha"])
    assert inner.embedded == 2 and v1.shape == (3, 384) and v1.dtype == np.float32
    np.testing.assert_array_equal(v1[0], v1[2])
    v2 = CachedEmbedder(inner, EmbeddingCache(tmp_path / "e.sqlite")).embed(["beta", "alpha"])
    assert inner.embedded == 2  # persisted across instances
    np.testing.assert_array_equal(v2, v1[[1, 0]])
    other = HashEmbedder(model_id="other")
    CachedEmbedder(other, cache).embed(["alpha"])
    assert other.embedded == 1 and len(cache) == 3
    assert a.embed([]).shape == (0, 384)


def test_langchain_embeddings_adapter(make_embedder: type) -> None:
    HashEmbedder = make_embedder
    lc = LangChainEmbeddings(HashEmbedder())
    docs = lc.embed_documents(["a b", "c"])
    assert len(docs) == 2 and len(docs[0]) == 384 and isinstance(docs[0][0], float)
    assert lc.embed_query("a b") == pytest.approx(docs[0])


def test_missing_embedding_package_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb_mod, "_MODELS", {})
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(EmbeddingsUnavailable, match=r"refinelab\[embed\]"):
        emb_mod.load_model()


def test_batch_size_is_not_part_of_the_fingerprint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from refinelab.tools.embeddings import SentenceEmbedder, get_embedder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the default embedder opens its disk cache
    monkeypatch.setattr(emb_mod, "_DEFAULTS", {})
    assert SentenceEmbedder(batch_size=8).model_id == SentenceEmbedder(batch_size=128).model_id
    assert get_embedder(batch_size=16).model_id == get_embedder().model_id
    assert "all-MiniLM-L6-v2" in get_embedder().model_id and "==" in get_embedder().model_id
    assert (tmp_path / "refinelab" / "embeddings.sqlite").is_file()


def test_cold_build_reports_progress_once_and_the_reuse_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                  caplog: pytest.LogCaptureFixture,
                                                                  make_embedder: type) -> None:
    """The first build on a machine says what it is doing (logged, one record per 10%, when the caller passed
    no progress: library code writes nothing to stderr; the CLI passes its stderr line, cli/progress.py);
    loading the persisted index afterwards embeds nothing and reports nothing."""
    import logging

    passages = [Passage(id=f"t:{i}:0", title=f"T{i}", text=f"passage number {i} about topic {i % 7}", source="t")
                for i in range(600)]
    with caplog.at_level(logging.INFO, logger="refinelab.tools.retrieval"):
        Retriever.build_or_load(Corpus(passages, name="toy"), cache_dir=tmp_path, embedder=make_embedder())
        lines = [r.getMessage() for r in caplog.records]
        assert capsys.readouterr().err == ""
        assert lines and all("embedding the retrieval corpus toy" in line for line in lines)
        assert lines[-1].split(": ")[1].startswith("600/600 (100%")
        caplog.clear()
        again = make_embedder()
        Retriever.build_or_load(Corpus(passages, name="toy"), cache_dir=tmp_path, embedder=again)
        assert again.embedded == 0 and not caplog.records and capsys.readouterr().err == ""
