"""The whole graph on the real embedded llama.cpp server (small model): it finishes, writes its
outputs, never overspends, and the trace's LLM usage adds up to the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from refinelab.api import refine
from refinelab.config import ModelSpec, Roles, Settings, load_settings
from refinelab.io import load_dataset
from refinelab.tools.tracing import read_trace
from tests.support.scripted import EXTRAS

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _small_model_settings(embedded_server, tmp_path: Path,  # noqa: ANN001
                          monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every role on the embedded server's smallest model (the runs below are of one round)."""
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    spec = {"endpoint": embedded_server.base_url, "model": "smollm2-135m", "api_key_env": "LOCAL_KEY",
            "concurrency": 2, "max_parse_retries": 1}
    roles = Roles(judge=ModelSpec(**spec, max_tokens=120), writer=ModelSpec(**spec, max_tokens=300),
                  validator=ModelSpec(**spec, max_tokens=160))
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    return settings.model_copy(update={"roles": roles})


@pytest.mark.llm
def test_end_to_end_on_embedded_server(embedded_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _small_model_settings(embedded_server, tmp_path, monkeypatch)
    dataset = load_dataset(DATA / "mmlu" / "test" / "astronomy_test.csv").filter(limit=6)
    budget = 8_000
    result = refine(dataset, budget=budget, settings=settings,
                    options={**EXTRAS, "operations": ["remove", "generate"], "rounds": 1, "max_attempts": 2})
    for name in ("refined.jsonl", "changes.jsonl", "report.json", "trace.jsonl"):
        assert (result.run_dir / name).exists()
    report = result.report
    assert 0 < report["ledger"]["spent"] <= budget
    assert sum(report["items_by_status"].values()) == 6
    runs = read_trace(result.run_dir / "trace.jsonl")
    llm = [r for r in runs if r["run_type"] == "llm"]
    assert llm and sum(r["usage"]["total_tokens"] for r in llm if r["usage"]) == report["ledger"]["spent"]


@pytest.mark.llm
def test_decontaminated_run_on_embedded_server(embedded_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`decontaminate=` through the real server: the two items the reference holds leave before profiling and
    the run around them finishes within its budget."""
    from refinelab.api.overlap import find_overlap
    from refinelab.io import read_jsonl
    from refinelab.schema import Dataset

    settings = _small_model_settings(embedded_server, tmp_path, monkeypatch)
    dataset = load_dataset(DATA / "mmlu" / "test" / "astronomy_test.csv").filter(limit=6)
    reference = Dataset(name="leaked", items=[i.model_copy(update={"id": f"leak-{i.id}"}) for i in dataset.items[1:3]])
    result = refine(dataset, budget=5_000, settings=settings, decontaminate=reference,
                    options={**EXTRAS, "operations": ["generate"], "pilot_per_op": 0, "rounds": 1, "max_attempts": 1})
    report = result.report
    assert report["decontamination"]["found"] == 2 and report["items_by_status"]["removed"] == 2
    assert 0 < report["ledger"]["spent"] <= 5_000
    refined = read_jsonl(result.run_dir / "refined.jsonl")
    assert not {i.id for i in refined} & {i.id for i in dataset.items[1:3]}
    # nothing of the reference is back: neither the items removed nor a new item the writer made
    assert find_overlap(refined, reference).matches == []
