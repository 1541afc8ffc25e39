"""Small corpora for the retrieval tests: a deterministic slice of the real one, cheap to embed with a real
model (moved out of `refinelab.tools.corpus.Corpus`, where only tests used it)."""

from __future__ import annotations

from refinelab.tools.corpus import Corpus


def first_passages_per_source(corpus: Corpus, per_source: int) -> Corpus:
    """The first `per_source` passages of each source, in file order: a small sub-corpus that is the same
    on every run, named after the corpus and the count."""
    taken: dict[str, int] = {}
    out = []
    for passage in corpus.passages:
        if taken.get(passage.source, 0) < per_source:
            taken[passage.source] = taken.get(passage.source, 0) + 1
            out.append(passage)
    return Corpus(out, name=f"{corpus.name}[{per_source}/source]")
