"""FAISS retrieval over a passage corpus, persisted and reused; the RAG validator's evidence source.

Why faiss directly rather than langchain-community's ``FAISS`` vector store as the core:

- measured (``evals/bench_retrieval.py``), the wrapper adds docstore lookups and ``Document`` objects on
  every query for no gain, and its ``load_local`` unpickles the docstore (``allow_dangerous_deserialization``);
  here the index is ``faiss.write_index`` and the passages are plain JSONL, so loading a cache runs no code;
- it lets the index type follow the corpus size: exact ``IndexFlatIP`` up to 50k passages (the built-in
  corpus is ~11.5k: well under a millisecond), HNSW above (a flat scan of 100k x 384 floats reads 150 MB
  per query, ~6 ms on this machine; HNSW answers in well under 1 ms).

The LangChain view is still there: :meth:`Retriever.as_langchain_vectorstore` wraps the *same* index in
langchain-community's ``FAISS`` and :func:`wikipedia_search_tool` is a ``StructuredTool`` whose calls show
up in the validator agent's trace, with the passages (ids = evidence) as the tool artifact.

Cache layout: ``<cache_dir>/<fingerprint[:16]>/{index.faiss, passages.jsonl, meta.json}``; the fingerprint
hashes the passage ids+titles+texts, the embedding model id and the index settings, so any change to
those builds a new index and nothing else does. Document vectors go through the embedding cache, so a
rebuild after a small corpus edit only embeds the new passages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from refinelab.tools.corpus import Corpus, Passage, load_corpus
from refinelab.tools.embeddings import Embedder, default_cache_root, get_embedder, limit_threads, normalize

FORMAT_VERSION = 1
FLAT_MAX = 50_000  # above this many passages "auto" picks HNSW
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
SINGLE_THREAD_MAX_QUERIES = 8  # small query batches run single-threaded (see embeddings.limit_threads)
EMBED_CHUNK = 256  # passages per embedding call: each chunk lands in the cache, so a killed build resumes

IndexType = Literal["auto", "flat", "hnsw"]

logger = logging.getLogger(__name__)


def _faiss() -> Any:
    """faiss, imported when an index is first used: it takes a noticeable part of a second to load, which
    commands that never retrieve should not pay."""
    import faiss

    return faiss


def default_index_dir() -> Path:
    return default_cache_root() / "indexes"


def logged_progress(what: str) -> Callable[[int, int], None]:
    """A long build's progress as log records (logger `refinelab.tools.retrieval`, INFO, one per 10%): the
    default when no caller passed a `progress`. Library code writing to stderr showed as red text in a
    notebook, beside the caller's own progress; the CLI passes its stderr writer (`cli/progress.py`)."""
    started = time.monotonic()
    shown = [-1]

    def report(done: int, total: int) -> None:
        share = done / total if total else 1.0
        if int(share * 10) > shown[0] or done >= total:
            shown[0] = int(share * 10)
            logger.info("%s: %d/%d (%.0f%%, %.0f s)", what, done, total, share * 100, time.monotonic() - started)

    return report


def passage_text_for_embedding(p: Passage) -> str:
    """Title + text: section titles carry the topic that the paragraph itself often omits."""
    return f"{p.title}. {p.text}" if p.title else p.text


def resolve_index_type(index_type: IndexType, n: int) -> str:
    if index_type == "auto":
        return "flat" if n <= FLAT_MAX else "hnsw"
    if index_type not in ("flat", "hnsw"):
        raise ValueError(f"index_type must be auto, flat or hnsw, not {index_type!r}")
    return index_type


def index_fingerprint(corpus: Corpus, model_id: str, index_type: str) -> str:
    spec = {"v": FORMAT_VERSION, "corpus": corpus.fingerprint(), "model": model_id, "index": index_type}
    if index_type == "hnsw":
        spec["hnsw"] = [HNSW_M, HNSW_EF_CONSTRUCTION]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def build_faiss_index(vectors: np.ndarray, index_type: str) -> Any:
    """Inner-product index over L2-normalised vectors (scores are cosine similarities)."""
    faiss = _faiss()
    d = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class Retriever:
    """Top-k passage search over one corpus. Build with :meth:`build_or_load`."""

    def __init__(self, passages: Sequence[Passage], index: Any, embedder: Embedder,
                 fingerprint: str = "", path: Path | None = None, info: dict | None = None) -> None:
        if index.ntotal != len(passages):
            raise ValueError(f"index holds {index.ntotal} vectors but there are {len(passages)} passages")
        self.passages = list(passages)
        self.index = index
        self.embedder = embedder
        self.fingerprint = fingerprint
        self.path = path
        self.info = info or {}
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(index.hnsw.efSearch, HNSW_EF_SEARCH)

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return f"Retriever({len(self)} passages, {self.info.get('index_type', '?')}, {self.path})"

    # ----------------------------------------------------------------------------------------- build

    @classmethod
    def build_or_load(cls, corpus: Corpus | Iterable[Passage] | str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None, embedder: Embedder | None = None,
                      index_type: IndexType = "auto",
                      progress: Callable[[int, int], None] | None = None) -> Retriever:
        """Load the persisted index for this corpus+model, or embed and build it (then persist it).

        ``corpus``: a :class:`Corpus`, passages, a user corpus path (JSONL / folder of .txt) or None for
        the built-in Wikipedia corpus. ``cache_dir`` defaults to ``~/.cache/refinelab/indexes``.
        ``progress(done, total)`` is called while embedding; None logs it (`logged_progress`)."""
        if corpus is None or isinstance(corpus, str | os.PathLike):
            corpus = load_corpus(corpus)
        elif not isinstance(corpus, Corpus):
            corpus = Corpus(corpus)
        embedder = embedder if embedder is not None else get_embedder()
        kind = resolve_index_type(index_type, len(corpus))
        fp = index_fingerprint(corpus, embedder.model_id, kind)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_index_dir()
        final = root / fp[:16]
        loaded = cls._load_dir(final, fp, corpus, embedder)
        if loaded is not None:
            return loaded

        if progress is None:  # a cold start takes minutes: say so, once per machine, to whoever listens
            progress = logged_progress(f"embedding the retrieval corpus {corpus.name} (once per machine, "
                                       f"reused from {root})")
        t0 = time.perf_counter()
        texts = [passage_text_for_embedding(p) for p in corpus]
        chunks = []
        for i in range(0, len(texts), EMBED_CHUNK):
            chunks.append(embedder.embed(texts[i:i + EMBED_CHUNK]))
            if progress is not None:
                progress(min(i + EMBED_CHUNK, len(texts)), len(texts))
        vectors = normalize(np.concatenate(chunks)) if chunks else np.zeros((0, embedder.dim), np.float32)
        t_embed = time.perf_counter() - t0
        index = build_faiss_index(vectors, kind)
        info = {
            "format": FORMAT_VERSION, "fingerprint": fp, "corpus_fingerprint": corpus.fingerprint(),
            "corpus_name": corpus.name, "model_id": embedder.model_id, "dim": int(embedder.dim),
            "index_type": kind, "count": len(corpus), "by_source": corpus.by_source(),
            "embed_seconds": round(t_embed, 3), "build_seconds": round(time.perf_counter() - t0, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        cls._persist(final, index, corpus, info)
        return cls(corpus.passages, index, embedder, fp, final, info)

    @classmethod
    def _load_dir(cls, path: Path, fp: str, corpus: Corpus, embedder: Embedder) -> Retriever | None:
        meta = path / "meta.json"
        if not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
            if info.get("fingerprint") != fp:
                return None
            index = _faiss().read_index(str(path / "index.faiss"))
        except (OSError, ValueError, RuntimeError):
            return None  # damaged cache entry: rebuild over it
        if index.ntotal != len(corpus):
            return None
        # The fingerprint proves the stored passages equal the corpus, so reuse the in-memory ones.
        return cls(corpus.passages, index, embedder, fp, path, info)

    @staticmethod
    def _persist(final: Path, index: Any, corpus: Corpus, info: dict) -> None:
        """Write to a temp dir and rename: readers never see a half-written index; racing builders are
        harmless (the loser's copy is dropped)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            _faiss().write_index(index, str(tmp / "index.faiss"))
            corpus.save_jsonl(tmp / "passages.jsonl")
            (tmp / "meta.json").write_text(json.dumps(info, indent=2))
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)  # stale or damaged entry with this fingerprint
            with contextlib.suppress(OSError):  # another process won the race with an identical index
                os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, path: str | os.PathLike, embedder: Embedder | None = None) -> Retriever:
        """Open a persisted index folder directly (passages from its passages.jsonl)."""
        p = Path(path)
        info = json.loads((p / "meta.json").read_text())
        with open(p / "passages.jsonl", encoding="utf-8") as f:
            passages = [Passage.from_dict(json.loads(line)) for line in f if line.strip()]
        embedder = embedder if embedder is not None else get_embedder()
        if info.get("model_id") != embedder.model_id:
            raise ValueError(f"index at {p} was built with {info.get('model_id')}, not {embedder.model_id}")
        return cls(passages, _faiss().read_index(str(p / "index.faiss")), embedder, info["fingerprint"], p, info)

    # ---------------------------------------------------------------------------------------- search

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """The ``k`` passages most similar to ``query``, best first, each with its cosine ``score``."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Passage]]:
        if not queries:
            return []
        # Queries skip the disk embedding cache (a write per query costs more than the ~10 ms embedding).
        embedder = getattr(self.embedder, "inner", self.embedder)
        if len(queries) > SINGLE_THREAD_MAX_QUERIES:
            return self.search_vectors(embedder.embed(list(queries)), k)
        with limit_threads(1):
            return self.search_vectors(embedder.embed(list(queries)), k)

    def search_vectors(self, vectors: np.ndarray, k: int = 5) -> list[list[Passage]]:
        if k < 1:
            raise ValueError("k must be >= 1")
        if len(self.passages) == 0:
            return [[] for _ in range(len(vectors))]
        q = normalize(vectors)
        scores, ids = self.index.search(q, min(k, len(self.passages)))
        return [[self.passages[i].with_score(s) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                for row_s, row_i in zip(scores, ids, strict=True)]

    # ------------------------------------------------------------------------------------- LangChain

    def as_langchain_vectorstore(self) -> Any:
        """langchain-community ``FAISS`` over the same index (no copy, no re-embedding)."""
        from langchain_core.documents import Document

        with warnings.catch_warnings():  # langchain-community announces its sunset on import
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.docstore.in_memory import InMemoryDocstore
            from langchain_community.vectorstores import FAISS
            from langchain_community.vectorstores.utils import DistanceStrategy
        from refinelab.tools.embeddings import LangChainEmbeddings

        docs = {p.id: Document(page_content=p.text, metadata={"id": p.id, "title": p.title, "source": p.source})
                for p in self.passages}
        return FAISS(embedding_function=LangChainEmbeddings(self.embedder), index=self.index,
                     docstore=InMemoryDocstore(docs),
                     index_to_docstore_id={i: p.id for i, p in enumerate(self.passages)},
                     distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)


# ------------------------------------------------------------------------------------------ the tool

WIKIPEDIA_SEARCH_DESCRIPTION = (
    "Search an offline Wikipedia passage index. Returns the k most relevant passages, each with its id "
    "(cite it as evidence), title and text. Use a short factual query, e.g. an entity plus the fact to check."
)

_DEFAULT_RETRIEVER: Retriever | None = None
_DEFAULT_LOCK = threading.Lock()


def default_retriever(progress: Callable[[int, int], None] | None = None) -> Retriever:
    """The built-in Wikipedia retriever, built (or loaded from cache) once per process; `progress` follows
    the build when this call makes it (`Retriever.build_or_load`)."""
    global _DEFAULT_RETRIEVER
    with _DEFAULT_LOCK:
        if _DEFAULT_RETRIEVER is None:
            _DEFAULT_RETRIEVER = Retriever.build_or_load(progress=progress)
        return _DEFAULT_RETRIEVER


def format_passages(passages: Sequence[Passage], max_chars: int = 1200) -> str:
    """Passages as the judge sees them: ``[id] title (score)`` then the text."""
    blocks = []
    for p in passages:
        head = f"[{p.id}] {p.title}".rstrip() + (f" (score {p.score:.3f})" if p.score is not None else "")
        text = p.text if len(p.text) <= max_chars else p.text[:max_chars].rsplit(" ", 1)[0] + " …"
        blocks.append(f"{head}\n{text}")
    return "\n\n".join(blocks) if blocks else "No passages found."


def wikipedia_search_tool(retriever: Retriever | Callable[[], Retriever] | None = None,
                          max_k: int = 10) -> Any:
    """A LangChain ``StructuredTool`` ``wikipedia_search(query, k=5)``.

    Content (what the model reads) is :func:`format_passages`; the artifact is the list of passage dicts
    (id, title, text, source, score) so the validator can keep the ids as evidence. ``retriever`` may be a
    zero-argument factory, so the index is only loaded when the tool is first called."""
    from langchain_core.tools import StructuredTool
    from pydantic import BaseModel, Field

    class WikipediaSearchInput(BaseModel):
        query: str = Field(description="what to look up, e.g. 'boiling point of ethanol'")
        k: int = Field(default=5, ge=1, le=max_k, description="number of passages to return")

    holder: dict[str, Retriever] = {}

    def get() -> Retriever:
        if "r" not in holder:
            if isinstance(retriever, Retriever):
                holder["r"] = retriever
            elif retriever is None:
                holder["r"] = default_retriever()
            else:
                holder["r"] = retriever()
        return holder["r"]

    def wikipedia_search(query: str, k: int = 5) -> tuple[str, list[dict]]:
        hits = get().search(query, k=k)
        return format_passages(hits), [p.to_dict() for p in hits]

    return StructuredTool.from_function(
        func=wikipedia_search, name="wikipedia_search", description=WIKIPEDIA_SEARCH_DESCRIPTION,
        args_schema=WikipediaSearchInput, response_format="content_and_artifact",
    )
