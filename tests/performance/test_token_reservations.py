"""Reservations from the server's own token counts: a run spends >= 97% of its budget, never overruns,
and falls back to the byte bound where the server cannot count."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from refinelab.config import ModelSpec
from refinelab.errors import BudgetExhausted
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient, estimate_prompt_tokens
from refinelab.tools.tokens import PromptTokenCounter, with_margin
from tests.support.fake_openai import FakeServer, ServerProfile


class Echo(BaseModel):
    answer: str


MESSAGES = [{"role": "system", "content": "You repeat the last word of the question, as JSON."},
            {"role": "user", "content": "Which word comes last in this rather long question about nothing? zebra"}]


def _spend_until_exhausted(url: str, cap: int, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    monkeypatch.setenv("TOKENS_TEST_KEY", "sk-test")
    ledger = Ledger(cap=cap)
    client = ChatClient(ModelSpec(endpoint=url, model="fake", api_key_env="TOKENS_TEST_KEY", max_tokens=16,
                                  concurrency=1), ledger, role="judge")
    for i in range(10_000):
        messages = [MESSAGES[0], {"role": "user", "content": f"{MESSAGES[1]['content']} {i}"}]
        try:
            client.structured(messages, Echo, CallTag(item_id=str(i)))
        except BudgetExhausted:
            return ledger
    raise AssertionError("the budget never ran out")


def test_counted_reservations_spend_at_least_97_percent_and_never_overrun(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = 4_000
    with FakeServer(profile=ServerProfile(tokenize=True)) as counting, FakeServer() as mute:
        counted = _spend_until_exhausted(counting.url, cap, monkeypatch)
        byte_bound = _spend_until_exhausted(mute.url, cap, monkeypatch)
    summary = counted.summary()
    assert summary["overrun_calls"] == 0 and summary["in_flight"] == 0
    assert counted.spent <= cap and counted.spent / cap >= 0.97, counted.spent
    # without a count the byte bound holds back a whole worst-case prompt: the last calls do not fit
    assert byte_bound.summary()["overrun_calls"] == 0
    assert byte_bound.spent < counted.spent


def test_no_count_is_asked_while_the_budget_is_far_from_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """A count costs a request; far from the cap the byte bound holds nothing back, so none is asked
    (and reservations are the byte bound); near the cap every call is counted."""
    monkeypatch.setenv("TOKENS_TEST_KEY", "sk-test")
    spec = ModelSpec(model="fake", api_key_env="TOKENS_TEST_KEY", max_tokens=16, concurrency=2)
    with FakeServer(profile=ServerProfile(tokenize=True)) as server:
        roomy = ChatClient(spec.model_copy(update={"endpoint": server.url}), Ledger(cap=10**9), role="judge")
        for i in range(3):
            roomy.structured([MESSAGES[0], {"role": "user", "content": f"{MESSAGES[1]['content']} {i}"}], Echo,
                             CallTag())
        assert server.counters.counted == 0
        tight = ChatClient(spec.model_copy(update={"endpoint": server.url}), Ledger(cap=2_000), role="judge")
        for i in range(3):
            tight.structured([MESSAGES[0], {"role": "user", "content": f"{MESSAGES[1]['content']} {i}"}], Echo,
                             CallTag())
        assert server.counters.counted == 3


def test_a_budget_with_no_room_for_the_answer_asks_no_count_and_starts_no_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the ledger cannot hold even the answer's `max_tokens`, no count can make the call fit: it is
    refused without a request to the server, and the embedded server is not started to count (a
    `--budget 0` run spent 7 s starting the 1.5B for nothing)."""
    from refinelab.config import EMBEDDED
    from refinelab.tools import embedded_server

    started: list[str] = []
    monkeypatch.setattr(embedded_server, "ensure_server", lambda model, **kw: started.append(model))
    monkeypatch.setenv("TOKENS_TEST_KEY", "sk-test")
    with FakeServer(profile=ServerProfile(tokenize=True)) as server:
        spec = ModelSpec(endpoint=server.url, model="fake", api_key_env="TOKENS_TEST_KEY", max_tokens=16)
        for cap in (0, 16):
            with pytest.raises(BudgetExhausted):
                ChatClient(spec, Ledger(cap=cap), role="judge").structured(MESSAGES, Echo, CallTag())
        assert server.counters.counted == 0
        # one token more and a short prompt might fit: then it is counted
        with pytest.raises(BudgetExhausted):
            ChatClient(spec, Ledger(cap=17), role="judge").structured(MESSAGES, Echo, CallTag())
        assert server.counters.counted == 1
    embedded = ModelSpec(endpoint=EMBEDDED, model="qwen2.5-coder-1.5b", max_tokens=16)
    with pytest.raises(BudgetExhausted):
        ChatClient(embedded, Ledger(cap=0), role="judge").structured(MESSAGES, Echo, CallTag())
    assert started == []


def test_counter_falls_back_when_the_server_cannot_count() -> None:
    with FakeServer() as mute:
        counter = PromptTokenCounter(mute.url, "fake")
        assert counter.count(MESSAGES) is None and counter._kind == "none"
        assert counter.count(MESSAGES) is None  # remembered: no more probing
        counter.close()
    assert with_margin(100) == 110 and with_margin(0) == 8


@pytest.mark.parametrize("tokenize", [b"[]", b"[" * 100_000, b'{"tokens": 5}', b'{"count": -3}', b"not json"])
def test_a_counting_route_that_answers_another_shape_means_no_count(tokenize: bytes) -> None:
    """A list from /tokenize raised AttributeError, and deep nesting RecursionError, out of `count()` and
    into the reservation; any shape but the documented one now means the server cannot count."""
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<|user|>Hi"})
        return httpx.Response(200, content=tokenize)

    counter = PromptTokenCounter("http://127.0.0.1:9/v1", "fake")
    counter._http = httpx.Client(transport=httpx.MockTransport(answer))
    assert counter.count(MESSAGES) is None and counter._kind == "none"
    counter.close()


@pytest.mark.llm
def test_llama_cpp_count_matches_reported_prompt_usage(embedded_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real llama.cpp server the count is the prompt usage it reports, template included."""
    counter = PromptTokenCounter(embedded_server.base_url, "smollm2-135m")
    count = counter.count(MESSAGES)
    counter.close()
    assert count is not None and count < estimate_prompt_tokens(MESSAGES) / 2
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    ledger = Ledger(cap=1_000)  # close enough to the end of the budget that the client counts
    client = ChatClient(ModelSpec(endpoint=embedded_server.base_url, model="smollm2-135m", api_key_env="LOCAL_KEY",
                                  max_tokens=8, structured_method="json_mode", max_parse_retries=0),
                        ledger, role="judge")
    result = client.text(MESSAGES, CallTag())
    assert result.prompt_tokens == count
    reserved = ledger._db.execute("SELECT reserved FROM calls").fetchone()[0]
    assert reserved == with_margin(count) + 8


def test_a_counting_answer_over_the_reply_cap_means_no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter's answers were read whole; they are read within the chat replies' cap (transport.capped_body)."""
    import httpx

    from refinelab.tools import transport

    monkeypatch.setattr(transport, "MAX_REPLY_BYTES", 1000)
    counter = PromptTokenCounter("http://127.0.0.1:9/v1", "fake")
    counter._http = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"prompt": "x" * 5000, "tokens": [1] * 2000})))
    assert counter.count(MESSAGES) is None and counter._kind == "none"
    counter.close()
