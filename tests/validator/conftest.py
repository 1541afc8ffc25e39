"""Validator test fixtures: a context on a scripted model, a real warm sandbox, a tiny fake-embedded corpus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from refinelab.agents.context import AgentContext
from refinelab.config import load_settings
from tests.support.validator_helpers import PASSAGES, HashEmbedder, Script


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., AgentContext]:
    from tests.support.contexts import context_for

    def make(script: Script | None = None, **options: Any) -> AgentContext:
        settings = load_settings(overrides={"cache_path": str(tmp_path / "cache.sqlite"), "use_cache": False})
        models = {"validator": script.model} if script is not None else None
        return context_for(tmp_path / "run", settings, chat_models=models, **options)

    return make


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    """One real warm bubblewrap sandbox for the whole session (PoT code really runs)."""
    from refinelab.tools.sandbox_base import SandboxLimits, SandboxUnavailable
    from refinelab.tools.sandbox_local import LocalSandbox

    try:
        box = LocalSandbox(SandboxLimits(timeout_s=5), mode="warm", workers=1, preload=("math", "fractions"))
    except SandboxUnavailable as exc:
        pytest.skip(f"local sandbox unavailable: {exc}")
    yield box
    box.close()


@pytest.fixture
def tiny_retriever(tmp_path: Path) -> Any:
    from refinelab.tools.corpus import Corpus, Passage
    from refinelab.tools.retrieval import Retriever

    corpus = Corpus([Passage(i, t, x, "test") for i, t, x in PASSAGES], name="tiny")
    return Retriever.build_or_load(corpus, cache_dir=tmp_path / "idx", embedder=HashEmbedder())
