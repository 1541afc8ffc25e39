"""The run's retriever: FAISS over the built-in Wikipedia corpus, a `wikipedia:NAME` subset, a user corpus
(`options.rag_corpus`, or the item's pack's `corpus:`) or a ready one (`hooks.retriever`), built or loaded once per process.

Its own module because two agents read passages: the RAG validator and the retrieval-conditioned panel
member.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from refinelab.agents.context import AgentContext
from refinelab.schema import QAItem
from refinelab.tools.corpus import Corpus
from refinelab.tools.retrieval import Retriever, default_retriever, logged_progress

_RETRIEVERS: dict[str, Retriever] = {}
_RETRIEVER_LOCK = threading.Lock()


def get_retriever(ctx: AgentContext, item: QAItem | None = None) -> Retriever:
    """The retriever for this item's corpus — `hooks.retriever`, else its pack's `corpus:` (docs/packs.md),
    else the run's — built or loaded once per process (its index persisted per corpus fingerprint)."""
    pack_corpus = ctx.pack(item).corpus if item is not None else None
    # `is not None`, not `or`: a Retriever or Corpus with no passages is falsy, and was silently swapped
    # for the built-in Wikipedia corpus
    given = (ctx.hooks.retriever, pack_corpus, ctx.options.rag_corpus)
    spec: Retriever | Corpus | str | None = next((s for s in given if s is not None and s != ""), None)
    if isinstance(spec, Retriever):
        return spec
    # the build's progress goes where the caller said (hooks.index_progress), not to stderr from library code
    label = getattr(spec, "name", None) or spec or "wikipedia"
    progress = (ctx.hooks.index_progress or logged_progress)(f"embedding the retrieval corpus {label} "
                                                            "(once per machine)")
    if spec is None or str(spec) == "wikipedia":
        return default_retriever(progress)
    if isinstance(spec, str) and spec.startswith("wikipedia:"):  # a subset of the built-in sources
        from refinelab.tools.corpus import load_corpus

        with _RETRIEVER_LOCK:
            if spec not in _RETRIEVERS:
                _RETRIEVERS[spec] = Retriever.build_or_load(load_corpus(spec), progress=progress)
            return _RETRIEVERS[spec]
    if isinstance(spec, Corpus):
        key = f"corpus:{spec.fingerprint()}"
    elif isinstance(spec, str | os.PathLike):
        key = f"path:{Path(spec).expanduser().resolve()}"
    else:
        raise TypeError(f"rag_corpus must be a path, a Corpus or a Retriever, not {type(spec).__name__}")
    with _RETRIEVER_LOCK:
        if key not in _RETRIEVERS:
            _RETRIEVERS[key] = Retriever.build_or_load(spec, progress=progress)
        return _RETRIEVERS[key]
