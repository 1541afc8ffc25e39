"""The model client: structured output, parse retries, transient-error backoff, cache, ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from refinelab.config import ModelSpec
from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.tools.cache import ResponseCache
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient, estimate_prompt_tokens
from refinelab.tools.tracing import Tracer, read_trace
from tests.support.scripted_model import ScriptedChatModel


class Answer(BaseModel):
    answer: Literal["A", "B", "C", "D"]


MESSAGES = [{"role": "user", "content": "Which is prime? A. 4 B. 6 C. 7 D. 9"}]


def client(respond, ledger: Ledger, **kwargs) -> ChatClient:
    spec = ModelSpec(max_tokens=50, max_parse_retries=kwargs.pop("parse_retries", 2),
                     max_transport_retries=kwargs.pop("transport_retries", 3))
    return ChatClient(spec, ledger, chat_model=ScriptedChatModel(respond=respond), **kwargs)


def test_bad_parse_is_retried_and_counted() -> None:
    replies = iter(['{"answer": "Z"}', "not json", '```json\n{"answer": "C"}\n```'])
    ledger = Ledger(cap=10_000)
    result = client(lambda m: next(replies), ledger).structured(MESSAGES, Answer, CallTag(node="t"))
    assert result.parsed.answer == "C" and result.attempts == 3
    summary = ledger.summary()
    assert summary["calls"] == 3 and summary["parse_failures"] == 2 and summary["retries"] == 2
    assert summary["spent"] == result.tokens


def test_parse_failure_raises_with_raw_outputs_never_none() -> None:
    ledger = Ledger(cap=10_000)
    with pytest.raises(LLMCallFailed) as info:
        client(lambda m: "nope", ledger, parse_retries=1).structured(MESSAGES, Answer, CallTag())
    assert info.value.raw_outputs == ["nope", "nope"]


def _status_error(code: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.APIStatusError("fault", response=httpx.Response(code, request=request), body=None)


def test_backoff_on_429_and_5xx_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("refinelab.tools.llm.time.sleep", lambda s: None)
    faults = iter([_status_error(429), _status_error(503)])

    def respond(messages):
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return '{"answer": "C"}'

    ledger = Ledger(cap=10_000)
    result = client(respond, ledger).structured(MESSAGES, Answer, CallTag())
    assert result.parsed.answer == "C"
    summary = ledger.summary()
    assert summary["failed_calls"] == 2 and summary["retries"] == 2
    assert summary["spent"] == result.tokens  # refused requests cost nothing


def test_cache_hit_costs_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    ledger = Ledger(cap=10_000)
    model = ScriptedChatModel(respond=lambda m: '{"answer": "C"}')
    spec = ModelSpec(max_tokens=50)
    first = ChatClient(spec, ledger, cache=cache, chat_model=model).structured(MESSAGES, Answer, CallTag())
    spent = ledger.spent
    # a different concurrency and timeout: operational settings must not change the key
    spec2 = ModelSpec(max_tokens=50, concurrency=7, timeout_s=5)
    second = ChatClient(spec2, ledger, cache=cache, chat_model=model).structured(MESSAGES, Answer, CallTag())
    assert second.cached and not first.cached and ledger.spent == spent and model.calls == 1


def test_a_named_sample_is_its_own_draw_and_replays_only_itself(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    drafts = iter(['{"answer": "A"}', '{"answer": "B"}'])
    model = ScriptedChatModel(respond=lambda m: next(drafts))
    chat = ChatClient(ModelSpec(max_tokens=50), Ledger(cap=10_000), cache=cache, chat_model=model)
    first = chat.structured(MESSAGES, Answer, CallTag(), sample="expand-1")
    second = chat.structured(MESSAGES, Answer, CallTag(), sample="expand-2")
    again = chat.structured(MESSAGES, Answer, CallTag(), sample="expand-1")
    assert (first.parsed.answer, second.parsed.answer) == ("A", "B") and model.calls == 2
    assert again.cached and again.parsed.answer == "A"


def test_budget_exhausted_before_calling() -> None:
    model = ScriptedChatModel(respond=lambda m: '{"answer": "C"}')
    ledger = Ledger(cap=estimate_prompt_tokens(MESSAGES) + 49)  # one token short of the worst case
    with pytest.raises(BudgetExhausted):
        ChatClient(ModelSpec(max_tokens=50), ledger, chat_model=model).structured(MESSAGES, Answer, CallTag())
    assert model.calls == 0


@pytest.mark.llm
def test_real_embedded_server_structured_call_settles_reported_usage(embedded_server, tmp_path: Path) -> None:
    """Through ChatOpenAI over HTTP: the ledger's settled tokens equal what the server reported."""
    from langchain_openai import ChatOpenAI

    seen: list[dict] = []

    def record(response: httpx.Response) -> None:
        response.read()
        body = response.json()
        if "usage" in body:
            seen.append(body["usage"])

    http = httpx.Client(event_hooks={"response": [record]})
    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0, max_tokens=60, max_retries=0, http_client=http)
    ledger = Ledger(cap=5_000)
    tracer = Tracer(tmp_path / "trace.jsonl")
    spec = ModelSpec(model="smollm2-135m", max_tokens=60, max_parse_retries=3)
    result = ChatClient(spec, ledger, chat_model=chat, tracer=tracer).structured(MESSAGES, Answer, CallTag(node="t"))
    assert result.parsed.answer in {"A", "B", "C", "D"}
    reported = sum(u["prompt_tokens"] + u["completion_tokens"] for u in seen)
    assert len(seen) == result.attempts
    assert ledger.spent == reported == result.tokens
    runs = read_trace(tmp_path / "trace.jsonl")
    assert sum(r["usage"]["total_tokens"] for r in runs if r["run_type"] == "llm") == ledger.spent


def test_another_runs_cached_answer_uses_budget_once_but_costs_nothing(tmp_path: Path) -> None:
    """A replayed answer is free (spent 0) yet uses the re-run's budget as the paid call used the first
    run's, once per key, so an identical re-run plans on the same budget; its own answers do not."""
    cache = ResponseCache(tmp_path / "c.sqlite")
    model = ScriptedChatModel(respond=lambda m: '{"answer": "C"}')
    first_ledger = Ledger(tmp_path / "first.sqlite", cap=10_000)
    first = ChatClient(ModelSpec(max_tokens=50), first_ledger, cache=cache, chat_model=model)
    paid = first.structured(MESSAGES, Answer, CallTag())
    first.structured(MESSAGES, Answer, CallTag())  # its own answer again: already in `spent`
    assert first_ledger.replayed == 0 and first_ledger.available == 10_000 - paid.tokens

    again_ledger = Ledger(tmp_path / "again.sqlite", cap=10_000)
    again = ChatClient(ModelSpec(max_tokens=50), again_ledger, cache=cache, chat_model=model)
    replay = again.structured(MESSAGES, Answer, CallTag())
    again.structured(MESSAGES, Answer, CallTag())  # the same key twice counts once
    assert replay.cached and model.calls == 1
    assert again_ledger.spent == 0 and again_ledger.replayed == paid.tokens
    assert again_ledger.available == first_ledger.available
    assert again_ledger.summary()["replayed"] == paid.tokens
    assert Ledger(tmp_path / "again.sqlite").replayed == paid.tokens  # a resumed run keeps it


def test_replayed_tokens_count_toward_the_cap(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", cap=1_000)
    ledger.note_replayed("k", 900)
    with pytest.raises(BudgetExhausted) as info:
        ledger.reserve(200, CallTag())
    assert info.value.available == 100 and ledger.spent == 0
