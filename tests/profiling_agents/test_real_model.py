"""Profiling on the real embedded llama.cpp server (SmolLM2-135M): labels, Elo, a one-model panel."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from refinelab.agents.options import RunHooks
from refinelab.api.profiling import profile as run_profile
from refinelab.config import load_settings
from refinelab.io import load_dataset
from refinelab.metrics.targets import load_targets

REPO = Path(__file__).resolve().parents[2]
MMLU_DEV = REPO.parent / "shared" / "data" / "mmlu" / "dev"


def _smollm_judge(embedded_server: Any, tmp_path: Path) -> tuple[Any, Any]:
    """The embedded SmolLM2-135M as the judge (a LangChain chat model on the test server) and settings that
    name it, with a response cache of the test's own."""
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0.0, max_tokens=60, max_retries=0)
    settings = load_settings(overrides={"cache_path": str(tmp_path / "cache.sqlite"),
                                        "roles": {"judge": {"model": "smollm2-135m", "max_tokens": 60}}})
    return chat, settings


@pytest.mark.llm
@pytest.mark.timeout(900)
def test_profile_five_items_on_the_embedded_model(embedded_server, tmp_path: Path) -> None:
    chat, settings = _smollm_judge(embedded_server, tmp_path)
    dataset = load_dataset(MMLU_DEV, on_invalid="quarantine").filter(limit=5)
    result = run_profile(
        dataset, out_dir=tmp_path / "prof", targets=load_targets(REPO / "targets" / "uniform_mmlu.yaml"),
        settings=settings, budget=200_000,
        options={"difficulty_method": "elo", "elo_extra_rounds": 0, "elo_bootstrap": 20, "skill_method": "model",
                "panel": ["smollm2-135m"], "validate_suspects": False},
        hooks=RunHooks(chat_models={"judge": chat, "panel:smollm2-135m": chat}),
    )
    report = json.loads(result.path.read_text())
    assert report["profiled"] == 5 and report["stop_reason"] == ""
    components = report["ledger_by_component"]
    assert {"label", "elo", "panel"} <= set(components)
    assert components["panel"]["calls"] >= 5 and components["elo"]["calls"] >= 8  # 3 Swiss rounds × 2 pairs × 2 orders = 12
    assert 0 < report["ledger"]["spent"] <= 200_000
    for item in report["items_detail"]:
        assert item["skill"] and 0.0 <= item["difficulty"] <= 1.0
        diags = item["diagnostics"]
        assert diags["difficulty"]["evidence"]["method"] == "elo"
        assert 0.0 <= diags["error"]["evidence"]["p_error"] <= 1.0
        assert diags["panel"]["evidence"]["key"] is not None


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_member_difficulty_on_the_embedded_1_5b_reads_the_reference(tmp_path: Path) -> None:
    """The default profile (the judge alone, logprobs, IRT) on the real 1.5B: each item's p(key) is placed in
    the model's reference population, so difficulties spread instead of all landing in "medium"."""
    settings = load_settings(overrides={"cache_path": str(tmp_path / "cache.sqlite")})
    dataset = load_dataset(MMLU_DEV, on_invalid="quarantine").filter(limit=6)
    result = run_profile(dataset, out_dir=tmp_path / "prof", settings=settings, budget=100_000,
                         targets=load_targets(REPO / "targets" / "uniform_mmlu.yaml"),
                         options={"validate_suspects": False})
    report = json.loads(result.path.read_text())
    evidence = [item["diagnostics"]["difficulty"]["evidence"] for item in report["items_detail"]]
    assert all(e["method"] == "irt" and e["reference"] and e["soft"] for e in evidence), evidence
    scores = [item["difficulty"] for item in report["items_detail"]]
    assert len({round(s, 3) for s in scores}) >= 3, scores  # not one constant bucket


@pytest.mark.llm
@pytest.mark.timeout(900)
def test_skill_probe_on_the_embedded_model(embedded_server, tmp_path: Path) -> None:
    """skill_method="probs" through the real llama.cpp server: the first token's alternatives carry the
    skill numbers, so every item gets a taxonomy skill with a calibrated distribution, never a failure."""
    chat, settings = _smollm_judge(embedded_server, tmp_path)
    dataset = load_dataset(MMLU_DEV, on_invalid="quarantine").filter(limit=4)
    result = run_profile(
        dataset, out_dir=tmp_path / "prof", targets=load_targets(REPO / "targets" / "uniform_mmlu.yaml"),
        settings=settings, budget=200_000,
        options={"difficulty_method": "irt", "skill_method": "probs", "validate_suspects": False},
        hooks=RunHooks(chat_models={"judge": chat}),
    )
    report = json.loads(result.path.read_text())
    names = {"recall", "comprehension", "application", "reasoning", "calculation"}
    probed = [i for i in report["items_detail"] if i["diagnostics"]["label"]["evidence"]["by"] == "probs"]
    # two orders per probed item and the content-free prior's two; a computable item is not probed
    assert report["profiled"] == 4 and len(probed) >= 3
    assert report["ledger_by_component"]["label"]["calls"] >= 2 * len(probed) + 2
    for item in report["items_detail"]:
        label = item["diagnostics"]["label"]
        assert not label["flag"] and item["skill"] in names, label
        if label["evidence"]["by"] == "probs":
            assert abs(sum(label["evidence"]["skill_probs"].values()) - 1.0) < 0.01
            assert abs(sum(label["evidence"]["skill_prior"]) - 1.0) < 0.01


@pytest.mark.llm
@pytest.mark.timeout(900)
def test_label_batches_on_the_embedded_model(embedded_server, tmp_path: Path) -> None:
    """`label_batch` through the real llama.cpp server: four items, one schema-bound label call, a
    taxonomy skill each, and the tokens the items carry are what the ledger charged for labels."""
    from langchain_openai import ChatOpenAI

    from refinelab.metrics.item_signals import regex_route, route_signals
    from refinelab.schema import Dataset

    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0.0, max_tokens=200, max_retries=0)
    settings = load_settings(overrides={"cache_path": str(tmp_path / "cache.sqlite"),
                                        "roles": {"judge": {"model": "smollm2-135m", "max_tokens": 200}}})
    wordy = [i for i in load_dataset(MMLU_DEV, on_invalid="quarantine").items
             if regex_route(route_signals(i)) != "pot"][:4]  # the judge's to label, not the signals'
    result = run_profile(
        Dataset(wordy, "mmlu-dev"), out_dir=tmp_path / "prof", settings=settings, budget=200_000,
        targets=load_targets(REPO / "targets" / "uniform_mmlu.yaml"),
        options={"difficulty_method": "rating", "skill_method": "model", "label_batch": 4,
                 "validate_suspects": False, "distractors": False},
        hooks=RunHooks(chat_models={"judge": chat}),
    )
    report = json.loads(result.path.read_text())
    names = {"recall", "comprehension", "application", "reasoning", "calculation", "unsure"}
    labels = [item["diagnostics"]["label"]["evidence"] for item in report["items_detail"]]
    assert report["profiled"] == 4 and all(label["skill"] in names for label in labels), labels
    # one label request for the four; a parse retry of it is a second ledger row (the shared server's
    # batching with another test's leftover request once changed the 135M's answer in a full-suite run)
    with sqlite3.connect(next((tmp_path / "prof").rglob("ledger.sqlite"))) as db:
        first_tries = db.execute("SELECT COUNT(*) FROM calls WHERE operation='label' AND is_retry=0").fetchone()[0]
    assert first_tries == 1 and all(label["batch"] == 4 for label in labels)
    assert sum(label["tokens"] for label in labels) == report["ledger_by_component"]["label"]["tokens"] > 0
