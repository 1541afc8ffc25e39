"""A corpus index build's progress goes where the caller says: library code logs it (a notebook showed it as
red stderr text beside the caller's own progress), a run's `hooks.index_progress` gets it, and the CLI passes
its stderr line."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from refinelab.agents import retrieval as agent_retrieval
from refinelab.tools.corpus import Corpus, Passage
from refinelab.tools.retrieval import Retriever


def _toy() -> Corpus:
    return Corpus([Passage(f"t:{i}", f"Title {i}", f"Passage number {i} about topic {i}.", "user")
                   for i in range(5)], name="toy")


def test_a_build_with_no_progress_logs_and_writes_nothing_to_stderr(
        tmp_path: Path, make_embedder: type, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="refinelab.tools.retrieval"):
        Retriever.build_or_load(_toy(), cache_dir=tmp_path, embedder=make_embedder())
    assert capsys.readouterr().err == ""
    assert any("embedding the retrieval corpus toy" in r.getMessage() and "5/5" in r.getMessage()
               for r in caplog.records)


def test_a_run_passes_its_hooks_index_progress_to_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int, int]] = []

    def index_progress(what: str) -> Any:
        return lambda done, total: seen.append((what, done, total))

    def build_or_load(spec: Any, progress: Any = None, **_: Any) -> str:
        progress(5, 5)
        return "built"

    monkeypatch.setattr(agent_retrieval.Retriever, "build_or_load", build_or_load)
    monkeypatch.setattr(agent_retrieval, "_RETRIEVERS", {})
    corpus = _toy()
    ctx = SimpleNamespace(hooks=SimpleNamespace(retriever=None, index_progress=index_progress),
                          options=SimpleNamespace(rag_corpus=corpus))
    assert agent_retrieval.get_retriever(ctx) == "built"  # type: ignore[arg-type]
    assert seen == [("embedding the retrieval corpus toy (once per machine)", 5, 5)]


def test_the_cli_passes_its_stderr_line() -> None:
    from refinelab.cli.progress import cli_hooks, stderr_progress

    assert cli_hooks().index_progress is stderr_progress
    out = io.StringIO()
    report = stderr_progress("embedding", out)
    report(5, 10)
    report(10, 10)
    assert out.getvalue().splitlines()[-1].startswith("embedding: 10/10 (100%")
