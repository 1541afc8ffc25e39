"""Whole runs through the fault proxy: 20% of model requests fail in one of six ways, and still every
input item ends kept, edited, removed or failed (with a reason), once, and spend stays under the cap."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from refinelab.api import refine
from tests.support.fault_proxy import FAULT_KINDS, FaultPlan, FaultProxy
from tests.support.rl_helpers import (
    KEY_ENV,
    SMALL_MODEL,
    accounting,
    distinct_respond,
    mmlu,
    proxied_settings,
    quick_backoff,
    spend_within,
)
from tests.support.scripted import EXTRAS

FIGURES = Path(os.environ.get("RELIABILITY_FIGURES", Path(tempfile.gettempdir()) / "refinelab-reliability"))


def record(name: str, figures: dict) -> None:
    """Keep each run's figures (faults injected by kind, statuses, spend) for docs/reliability.md."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=1, default=str))


def faulty_run(tmp: Path, items: int, budget: int, seed: int, rate: float = 0.2,
               operations: list[str] | None = None) -> dict:
    dataset = mmlu(items)
    extras = {**EXTRAS, **({"operations": operations} if operations else {})}
    with FaultProxy(distinct_respond, FaultPlan.uniform(rate, seed=seed, timeout_sleep_s=0.6)) as proxy, \
            quick_backoff():
        result = refine(dataset, budget=budget, settings=proxied_settings(tmp, proxy.url, timeout_s=0.4),
                        run_id=f"faults-{seed}", options=extras)
    figures = accounting(result.run_dir, dataset)
    spent = spend_within(result.run_dir, budget)
    assert proxy.billed_tokens <= spent  # what a provider billed is within what the ledger counted
    assert result.report["stop_reason"]
    return {"items": items, "budget": budget, "spent": spent, "requests": proxy.counts["requests"],
            "injected": proxy.injected, "fault_rate": proxy.total_injected / proxy.counts["requests"],
            "retries": result.report["ledger"]["retries"], "parse_failures": result.report["ledger"]["parse_failures"],
            **figures}


def test_twenty_percent_faults_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-reliability")
    figures = faulty_run(tmp_path, 12, 40_000, seed=3)
    record("faults-default", figures)
    assert figures["requests"] > 40 and 0.1 < figures["fault_rate"] < 0.35
    assert sum(1 for k in FAULT_KINDS if figures["injected"][k]) >= 4, figures["injected"]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "items", "rate"), [(1, 24, 0.2), (2, 16, 0.2), (5, 16, 0.35)])
def test_faulty_runs_many_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, items: int,
                                rate: float) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-reliability")
    figures = faulty_run(tmp_path, items, 60_000, seed=seed, rate=rate)
    record(f"faults-seed{seed}", figures)
    # Which kinds a seeded run draws depends on the request bodies; each kind is exercised on its own in
    # test_fault_proxy.py, so a run only has to mix most of them.
    assert sum(1 for k in FAULT_KINDS if figures["injected"][k]) >= 4, figures["injected"]


@pytest.mark.slow
@pytest.mark.llm
def test_faults_in_front_of_the_real_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     embedded_server: object) -> None:
    """The real small model behind the proxy: same guarantees, real usage numbers."""

    monkeypatch.setenv(KEY_ENV, "sk-local")
    dataset = mmlu(4)
    base = embedded_server.base_url  # type: ignore[attr-defined]
    with FaultProxy(base, FaultPlan.uniform(0.2, seed=4, timeout_sleep_s=1.0)) as proxy, quick_backoff():
        settings = proxied_settings(tmp_path, proxy.url, model=SMALL_MODEL, timeout_s=0.8 * 60)
        result = refine(dataset, budget=12_000, settings=settings, run_id="real",
                        options={**EXTRAS, "operations": ["rewrite_distractors", "remove"], "pilot_per_op": 0,
                                 "rounds": 1})
    figures = accounting(result.run_dir, dataset)
    spent = spend_within(result.run_dir, 12_000)
    assert proxy.billed_tokens <= spent
    record("faults-embedded", {"requests": proxy.counts["requests"], "injected": proxy.injected, "spent": spent,
                               **figures})
