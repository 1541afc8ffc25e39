"""Property: whatever the budget, concurrency, fault pattern and operation mix, spend never exceeds the
budget — in the ledger, in report.json, and in what the (proxied) provider actually billed."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from refinelab.api import refine
from refinelab.config import ModelSpec
from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.fault_proxy import FAULT_KINDS, FaultPlan, FaultProxy
from tests.support.rl_helpers import (
    ALL_OPERATIONS,
    KEY_ENV,
    accounting,
    distinct_respond,
    mmlu,
    proxied_settings,
    quick_backoff,
    spend_within,
)
from tests.support.scripted import EXTRAS

os.environ.setdefault(KEY_ENV, "sk-reliability")


class Answer(BaseModel):
    answer: str


@st.composite
def fault_plans(draw: st.DrawFn) -> FaultPlan:
    kinds = draw(st.lists(st.sampled_from(FAULT_KINDS), unique=True, max_size=len(FAULT_KINDS)))
    total = draw(st.sampled_from([0.0, 0.1, 0.2, 0.4]))
    rates = {k: total / len(kinds) for k in kinds} if kinds else {}
    return FaultPlan(rates, seed=draw(st.integers(0, 10_000)), timeout_sleep_s=0.4)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(cap=st.integers(0, 6_000), concurrency=st.integers(1, 4), plan=fault_plans(),
       calls=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 300)), min_size=1, max_size=10))
def test_client_calls_never_overspend(cap: int, concurrency: int, plan: FaultPlan,
                                      calls: list[tuple[int, int]]) -> None:
    """Concurrent structured calls of random sizes against a faulty provider and a random cap."""
    with FaultProxy(lambda m: '{"answer": "A"}', plan) as proxy, quick_backoff():
        ledger = Ledger(cap=cap)
        spec = ModelSpec(endpoint=proxy.url, model="m", api_key_env=KEY_ENV, timeout_s=0.25, concurrency=concurrency,
                         max_transport_retries=2, max_parse_retries=1, max_tokens=300)
        client = ChatClient(spec, ledger, role="judge")

        def one(size: int, max_tokens: int) -> None:
            with contextlib.suppress(BudgetExhausted, LLMCallFailed):
                client.structured([{"role": "user", "content": "x" * size}], Answer, CallTag("prop"),
                                  max_tokens=max_tokens)

        threads = [threading.Thread(target=one, args=c) for c in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        summary = ledger.summary()
    assert summary["spent"] <= cap and summary["in_flight"] == 0
    assert proxy.billed_tokens <= summary["spent"]


def _graph_run(budget: int, concurrency: int, plan: FaultPlan, operations: list[str], items: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FaultProxy(distinct_respond, plan) as proxy, quick_backoff():
        dataset = mmlu(items)
        result = refine(dataset, budget=budget,
                        settings=proxied_settings(Path(tmp), proxy.url, timeout_s=0.3, concurrency=concurrency),
                        run_id="prop", options={**EXTRAS, "operations": operations})
        spent = spend_within(result.run_dir, budget)
        accounting(result.run_dir, dataset)
        assert proxy.billed_tokens <= spent
        assert sum(result.report["ledger"]["by_node"][n]["tokens"] for n in result.report["ledger"]["by_node"]) == spent


graph_cases = given(budget=st.integers(0, 30_000), concurrency=st.integers(1, 4), plan=fault_plans(),
                    operations=st.lists(st.sampled_from(ALL_OPERATIONS), unique=True, min_size=1),
                    items=st.integers(4, 10))


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@graph_cases
def test_graph_runs_never_overspend(budget: int, concurrency: int, plan: FaultPlan, operations: list[str],
                                    items: int) -> None:
    _graph_run(budget, concurrency, plan, operations, items)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@graph_cases
def test_graph_runs_never_overspend_many(budget: int, concurrency: int, plan: FaultPlan, operations: list[str],
                                         items: int) -> None:
    _graph_run(budget, concurrency, plan, operations, items)
