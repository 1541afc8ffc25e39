"""A pack with its own corpus (`corpus:` in the pack file) gets its own persisted index, separate from the
run's corpus and from another pack's; items of that pack retrieve from it. The embedder is the cheap
deterministic one (index mechanics, not search quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.agents import retrieval as agent_retrieval
from refinelab.agents.options import RunOptions
from refinelab.agents.validation import rag
from refinelab.api.context import open_run_context
from refinelab.config import load_settings
from refinelab.schema import QAItem
from refinelab.tools import retrieval


def _corpus(path: Path, topic: str) -> Path:
    rows = [{"id": f"{topic}-{i}", "title": f"{topic} {i}", "text": f"{topic} fact number {i} about {topic} things"}
            for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_each_pack_corpus_has_its_own_persisted_index(tmp_path: Path, make_embedder: type,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = make_embedder()
    monkeypatch.setattr(retrieval, "get_embedder", lambda: embedder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    prompts = tmp_path / "prompts"
    (prompts / "packs").mkdir(parents=True)
    _corpus(prompts / "packs" / "law_corpus.jsonl", "statute")
    (prompts / "packs" / "law.yaml").write_text("include: default\nvalidator: rag\ncorpus: law_corpus.jsonl\n")
    (prompts / "packs" / "math.yaml").write_text(f"include: default\nvalidator: rag\ncorpus: "
                                                 f"{_corpus(tmp_path / 'math.jsonl', 'integral')}\n")
    run_corpus = _corpus(tmp_path / "run.jsonl", "history")
    ctx = open_run_context(tmp_path / "run", settings=load_settings(overrides={"runs_dir": str(tmp_path)}),
                           options=RunOptions(rag_corpus=str(run_corpus)), prompts_dir=prompts)
    law = QAItem(id="l", question="Which statute applies?", choices=["a", "b", "c", "d"], answer=0,
                 subject="international_law")
    math = QAItem(id="m", question="What is the integral?", choices=["1", "2", "3", "4"], answer=0,
                  subject="college_mathematics")
    other = QAItem(id="o", question="When was it?", choices=["1", "2", "3", "4"], answer=0, subject="world_history",
                   domain="humanities")
    assert ctx.pack(law).corpus == str((prompts / "packs" / "law_corpus.jsonl").resolve())
    found = {name: rag.retrieve(ctx, item, 2) for name, item in (("law", law), ("math", math), ("other", other))}
    assert {p.id.split("-")[0] for p in found["law"]} == {"statute"}
    assert {p.id.split("-")[0] for p in found["math"]} == {"integral"}
    assert {p.id.split("-")[0] for p in found["other"]} == {"history"}  # no pack corpus: the run's
    indexes = sorted((tmp_path / "xdg" / "refinelab" / "indexes").glob("*/meta.json"))
    names = sorted(json.loads(m.read_text())["corpus_name"] for m in indexes)
    assert names == ["user:law_corpus.jsonl", "user:math.jsonl", "user:run.jsonl"]
    embedded = embedder.embedded
    agent_retrieval._RETRIEVERS.clear()  # a new process: the persisted index is loaded, nothing is embedded again
    rag.retrieve(ctx, law, 2)
    assert embedder.embedded - embedded <= 2  # only the two queries
