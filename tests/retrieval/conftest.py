"""Retrieval test fixtures: the real corpus (parsed once), a cheap deterministic fake embedder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from refinelab.tools.corpus import Corpus, build_wikipedia_corpus
from tests.support.corpus_helpers import first_passages_per_source


class HashEmbedder:
    """Bag-of-words feature hashing into 384 dims: deterministic, instant, and lexically meaningful, so
    mechanics tests can still check that a query finds its passage. Counts every text it embeds."""

    dim = 384

    def __init__(self, model_id: str = "test/hash-bow-384") -> None:
        self.model_id = model_id
        self.embedded = 0
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return out / norms


@pytest.fixture
def make_embedder() -> type[HashEmbedder]:
    """The fake embedder class (a fixture, since test modules cannot import conftest by name)."""
    return HashEmbedder


@pytest.fixture(scope="session")
def wiki_corpus(data_root: Path) -> Corpus:
    return build_wikipedia_corpus(data_root)


@pytest.fixture(scope="session")
def small_corpus(wiki_corpus: Corpus) -> Corpus:
    """45 passages per source (180 in all), in file order: what the real-model tests embed.

    NQ tables split into dozens of chunks; keeping only the first two chunks of each gold paragraph
    lets the sample cover more NQ questions."""
    light = Corpus((p for p in wiki_corpus if not (p.source == "nq" and not p.id.endswith((":0", ":1")))),
                   name=wiki_corpus.name)
    return first_passages_per_source(light, 45)
