"""The fault proxy itself, and the model client against each fault kind it injects."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import BaseModel

from refinelab.config import ModelSpec
from refinelab.errors import LLMCallFailed
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.fault_proxy import FAULT_KINDS, FaultPlan, FaultProxy
from tests.support.rl_helpers import KEY_ENV, quick_backoff


class Answer(BaseModel):
    answer: str


def _answer(messages: list[dict[str, str]]) -> str:
    return json.dumps({"answer": "A"})


def _post(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json=body, timeout=5)


def test_fault_decisions_are_seeded_and_rates_hold() -> None:
    plan = FaultPlan.uniform(0.3, seed=7)
    draws = [plan.decide(f"request {i}".encode(), 1) for i in range(3000)]
    assert draws == [FaultPlan.uniform(0.3, seed=7).decide(f"request {i}".encode(), 1) for i in range(3000)]
    rate = sum(d is not None for d in draws) / len(draws)
    assert 0.26 < rate < 0.34
    assert {d for d in draws if d} == set(FAULT_KINDS)
    with pytest.raises(ValueError):
        FaultPlan({"teapot": 0.1})
    with pytest.raises(ValueError):
        FaultPlan({"429": 0.7, "500": 0.7})


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_on_the_wire(kind: str) -> None:
    with FaultProxy(_answer, FaultPlan({kind: 1.0}, timeout_sleep_s=0.3)) as proxy:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        if kind == "truncated":
            with pytest.raises(httpx.HTTPError):
                _post(proxy.url, body)
        else:
            response = _post(proxy.url, body)
            if kind == "malformed":
                with pytest.raises(json.JSONDecodeError):
                    response.json()
            elif kind == "wrong_schema":
                content = json.loads(response.json()["choices"][0]["message"]["content"])
                assert "answer" not in content
            else:
                assert response.status_code == {"429": 429, "500": 500, "timeout": 504}[kind]
        assert proxy.injected[kind] == 1 and proxy.counts["requests"] == 1


def test_forwards_to_a_real_upstream_and_stops() -> None:
    with FaultProxy(_answer) as upstream, FaultProxy(upstream.url, FaultPlan({"429": 0.0})) as proxy:
        response = _post(proxy.url, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert response.json()["choices"][0]["message"]["content"] == '{"answer": "A"}'
        assert proxy.counts["forwarded"] == 1 and upstream.counts["forwarded"] == 1
        assert proxy.billed_tokens == upstream.billed_tokens > 0
        url = proxy.url
    with pytest.raises(httpx.ConnectError):
        _post(url, {"model": "m", "messages": []})


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_client_recovers_from_one_fault_and_fails_cleanly_on_persistent_ones(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fault then a good answer: the call succeeds. Faults every time: a typed LLMCallFailed,
    with the ledger charged within its cap and nothing left reserved."""
    monkeypatch.setenv(KEY_ENV, "sk-reliability")
    spec = ModelSpec(endpoint="http://placeholder/v1", model="m", api_key_env=KEY_ENV, timeout_s=0.3,
                     max_transport_retries=2, max_parse_retries=1)
    for persistent in (False, True):
        plan = FaultPlan({kind: 1.0}, timeout_sleep_s=0.6)
        if not persistent:  # fault on the first sighting of a request body only
            plan.decide = lambda body, n, _k=kind: _k if n == 1 else None  # type: ignore[method-assign]
        with FaultProxy(_answer, plan) as proxy, quick_backoff():
            ledger = Ledger(cap=5_000)
            client = ChatClient(spec.model_copy(update={"endpoint": proxy.url}), ledger, role="judge")
            if persistent:
                with pytest.raises(LLMCallFailed):
                    client.structured([{"role": "user", "content": "hi"}], Answer, CallTag("test"))
            else:
                result = client.structured([{"role": "user", "content": "hi"}], Answer, CallTag("test"))
                assert result.parsed.answer == "A"
            summary = ledger.summary()
            assert summary["spent"] <= 5_000 and summary["in_flight"] == 0
            assert proxy.billed_tokens <= summary["spent"]  # the ledger never under-counts the provider
