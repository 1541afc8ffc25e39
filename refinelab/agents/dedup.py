"""Reject new items that are too close to an existing one, by sentence-embedding similarity; and, in a
batch, find each item's closest in another dataset (`refinelab data overlap`).

Item texts (stem + options) are embedded with the shared MiniLM embedder (disk-cached, so each text
is embedded once per machine). `lexical` mode (word-set Jaccard) needs no model; it is for tests and
machines without torch.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from refinelab.schema import QAItem, normalise_text

EMBEDDING_THRESHOLD = 0.92  # cosine; paraphrases of one question score above this
LEXICAL_THRESHOLD = 0.8  # Jaccard over word sets


@dataclass
class NearDuplicate:
    item_id: str
    similarity: float
    method: str


def _text(item: QAItem) -> str:
    return item.question + "\n" + "\n".join(item.choices)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", normalise_text(text)))


class DuplicateIndex:
    """The items of a run, embedded once; `nearest` answers "is this new item a duplicate?"."""

    def __init__(self, method: str = "embedding") -> None:
        if method not in {"embedding", "lexical"}:
            raise ValueError(f"dedup method must be 'embedding' or 'lexical', got {method!r}")
        self.method = method
        self._ids: list[str] = []
        self._known: set[str] = set()
        self._vectors: np.ndarray | None = None
        self._vocabulary: dict[str, int] = {}  # lexical: word -> column of the item-by-word matrix
        self._word_columns: list[list[int]] = []  # lexical: each indexed item's words, as columns
        self._word_matrix: Any = None  # lexical: the indexed items' words (scipy CSR), built when first scored
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        from refinelab.tools.embeddings import get_embedder

        return get_embedder().embed(texts)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._known

    def add(self, items: list[QAItem]) -> None:
        fresh = [i for i in items if i.id not in self._known]
        if not fresh:
            return
        with self._lock:
            self._ids += [i.id for i in fresh]
            self._known.update(i.id for i in fresh)
            if self.method == "embedding":
                vectors = self._embed([_text(i) for i in fresh])
                self._vectors = vectors if self._vectors is None else np.vstack([self._vectors, vectors])
            else:
                vocabulary = self._vocabulary
                self._word_columns += [[vocabulary.setdefault(w, len(vocabulary)) for w in _words(_text(i))]
                                       for i in fresh]
                self._word_matrix = None

    def nearest(self, item: QAItem, exclude: set[str] | None = None) -> NearDuplicate | None:
        """The most similar indexed item above the threshold, or None."""
        exclude = exclude or set()
        with self._lock:
            if not self._ids:
                return None
            scores = self._scores([item])[0]
            threshold = EMBEDDING_THRESHOLD if self.method == "embedding" else LEXICAL_THRESHOLD
            for index in np.argsort(-scores):
                if self._ids[index] in exclude:
                    continue
                if scores[index] >= threshold:
                    return NearDuplicate(self._ids[index], float(scores[index]), self.method)
                return None
        return None

    def best_matches(self, items: list[QAItem], top: int = 1, chunk: int = 512) -> list[list[tuple[str, float]]]:
        """For each of `items`, the `top` most similar indexed items and their similarities, most similar
        first, thresholds aside (the batch form of `nearest`, for comparing whole datasets: `refinelab data
        overlap`). Items are embedded `chunk` at a time, so memory stays at chunk x index size."""
        with self._lock:
            if not self._ids:
                raise ValueError("the index is empty")
            matches: list[list[tuple[str, float]]] = []
            for start in range(0, len(items), chunk):
                scores = self._scores(items[start:start + chunk])
                best = np.argsort(-scores, axis=1)[:, :top]
                matches += [[(self._ids[b], float(scores[row, b])) for b in picks] for row, picks in enumerate(best)]
            return matches

    def _scores(self, items: list[QAItem]) -> np.ndarray:
        """Similarity of each of `items` (rows) to every indexed item (columns): cosine of the embeddings, or
        word-set Jaccard. The caller holds the lock."""
        if self.method == "embedding":
            assert self._vectors is not None
            return self._embed([_text(i) for i in items]) @ self._vectors.T
        return self._jaccard([_words(_text(i)) for i in items])

    def _jaccard(self, queries: list[set[str]]) -> np.ndarray:
        """|a ∩ b| / |a ∪ b| of each query's words against every indexed item's, the intersections counted by
        one sparse product: MMLU test (14,028 items) against itself in 21 s, about 16 minutes pair by pair in
        Python (evals/results/bench_overlap_lexical.md)."""
        if self._word_matrix is None:
            self._word_matrix = _binary_rows(self._word_columns, len(self._vocabulary))
        known = [[self._vocabulary[w] for w in words if w in self._vocabulary] for words in queries]
        shared = (_binary_rows(known, len(self._vocabulary)) @ self._word_matrix.T).toarray()
        sizes = np.array([len(words) for words in queries], dtype=float)[:, None]
        indexed = np.diff(self._word_matrix.indptr).astype(float)[None, :]  # each indexed item's word count
        return shared / np.maximum(1.0, sizes + indexed - shared)


def _binary_rows(columns: list[list[int]], width: int) -> Any:
    """A CSR matrix with a 1 at each row's columns (each row's columns distinct)."""
    from scipy import sparse

    pointers = np.cumsum([0, *(len(c) for c in columns)])
    indices = np.fromiter((c for row in columns for c in row), dtype=np.int64, count=int(pointers[-1]))
    return sparse.csr_matrix((np.ones(len(indices)), indices, pointers), shape=(len(columns), max(1, width)))
