"""What the server read from its prompt cache is recorded per call and reported, and still charged.

Issue 14 asks for static instructions first and the item last so the server's prompt cache is reused;
`usage.prompt_tokens_details.cached_tokens` (llama.cpp, vLLM, OpenAI) is the measurement that shows it.
The field comes from an untrusted endpoint: only a whole count no larger than the prompt is believed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from refinelab.config import ModelSpec
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from refinelab.tools.tracing import Tracer, read_trace
from refinelab.tools.transport import _read


def _answer(usage: object) -> bytes:
    return json.dumps({"choices": [{"message": {"content": "B"}, "finish_reason": "stop"}],
                       "usage": usage}).encode()


@pytest.mark.parametrize(("details", "cached"), [
    ({"cached_tokens": 640}, 640),
    ({"cached_tokens": 0}, 0),
    ({"cached_tokens": 5000}, 650),  # more than the prompt: clipped to it
    ({"cached_tokens": -3}, 0),
    ({"cached_tokens": True}, 0),
    ({"cached_tokens": "640"}, 0),
    ({"cached_tokens": 1.5}, 0),
    ("640", 0),
    (None, 0),
])
def test_cached_prompt_tokens_read_from_usage(details: object, cached: int) -> None:
    usage: dict[str, object] = {"prompt_tokens": 650, "completion_tokens": 1}
    if details is not None:
        usage["prompt_tokens_details"] = details
    reply = _read(_answer(usage), structured=False)
    assert (reply.prompt_tokens, reply.cached_prompt_tokens) == (650, cached)


def test_no_usage_means_nothing_cached() -> None:
    reply = _read(_answer(None), structured=False)
    assert not reply.reported and reply.cached_prompt_tokens == 0


def test_the_ledger_reports_cached_prompt_tokens_but_charges_them(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", cap=10_000)
    first = ledger.reserve(1000, CallTag(node="profile"))
    ledger.settle(first, 650, 1)
    second = ledger.reserve(1000, CallTag(node="profile"))
    ledger.settle(second, 650, 1, cached_prompt_tokens=634)
    failed = ledger.reserve(1000, CallTag(node="profile"))
    ledger.settle(failed, 300, 0, failed=True, cached_prompt_tokens=300)  # a failure's prompt is not "read"
    summary = ledger.summary()
    assert ledger.spent == 650 + 1 + 650 + 1 + 300
    assert (summary["prompt_tokens"], summary["cached_prompt_tokens"]) == (1300, 634)
    assert summary["by_node"]["profile"]["cached_prompt_tokens"] == 634
    over = ledger.reserve(100, CallTag())
    ledger.settle(over, 400, 0, cached_prompt_tokens=400)  # clipped to the reservation, cached with it
    assert ledger.summary()["cached_prompt_tokens"] == 634 + 100


def test_a_ledger_written_before_the_column_opens_and_counts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the calls table as ledgers were written until this change
        db.executescript("""
            CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL DEFAULT '',
                operation TEXT NOT NULL DEFAULT '', item_id TEXT NOT NULL DEFAULT '',
                model TEXT NOT NULL DEFAULT '', attempt INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL,
                prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
                status TEXT NOT NULL, is_retry INTEGER NOT NULL DEFAULT 0,
                parse_failed INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL, finished REAL);
            INSERT INTO calls (reserved, prompt_tokens, completion_tokens, status, started)
                VALUES (500, 400, 10, 'settled', 0);
        """)
    ledger = Ledger(path, cap=10_000)
    assert ledger.spent == 410
    assert (ledger.summary()["prompt_tokens"], ledger.summary()["cached_prompt_tokens"]) == (400, 0)
    ledger.settle(ledger.reserve(1000, CallTag()), 400, 10, cached_prompt_tokens=380)
    assert ledger.summary()["cached_prompt_tokens"] == 380


@pytest.mark.llm
def test_real_server_reports_the_shared_prefix_as_cached(embedded_server, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """Two calls on the embedded llama.cpp server that share a long instruction prefix: the second
    reads most of its prompt from the cache, and the ledger and the trace say so."""
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    ledger = Ledger(cap=20_000)
    tracer = Tracer(tmp_path / "trace.jsonl")
    client = ChatClient(ModelSpec(endpoint=embedded_server.base_url, model="smollm2-135m", api_key_env="LOCAL_KEY",
                                  max_tokens=2, max_parse_retries=0, concurrency=1), ledger, role="judge",
                        tracer=tracer)
    rules = " ".join(f"Rule {i}: answer with one capital letter and nothing else." for i in range(40))
    for item in ("Which is a colour? A. red B. seven", "Which is a number? A. blue B. seven"):
        client.text([{"role": "system", "content": rules}, {"role": "user", "content": item}], CallTag())
    summary = ledger.summary()
    assert summary["calls"] == 2
    assert summary["cached_prompt_tokens"] > summary["prompt_tokens"] / 3, summary
    tracer.flush()
    traced = [r["usage"] for r in read_trace(tmp_path / "trace.jsonl") if r["run_type"] == "llm"]
    assert sum(u.get("cached_prompt_tokens", 0) for u in traced) == summary["cached_prompt_tokens"]


def test_the_trace_carries_each_calls_cache_reads(tmp_path: Path) -> None:
    """Each LLM run's usage says what the server read from its prompt cache (LangChain's
    `input_token_details.cache_read`, which LangSmith shows); a call that read none has no such field."""
    tracer = Tracer(tmp_path / "trace.jsonl")
    with tracer.span("profile", "chain", {}):
        for cached in (0, 600):
            call = tracer.llm_call("judge:m", [{"role": "user", "content": "hi"}], model="m",
                                   invocation_params={"model": "m"}, metadata={"node": "profile"})
            call.end("B", 650, 1, cached_prompt_tokens=cached)
    tracer.flush()
    usages = [r["usage"] for r in read_trace(tmp_path / "trace.jsonl") if r["run_type"] == "llm"]
    assert usages == [{"prompt_tokens": 650, "completion_tokens": 1, "total_tokens": 651},
                      {"prompt_tokens": 650, "completion_tokens": 1, "total_tokens": 651,
                       "cached_prompt_tokens": 600}]


def test_the_cli_line_says_the_share_or_nothing() -> None:
    from refinelab.api.runs import prompt_cache_line

    assert prompt_cache_line({"prompt_tokens": 20_000, "cached_prompt_tokens": 15_000}) == (
        "15,000 of 20,000 prompt tokens (75%) were read from the server's prompt cache")
    for ledger in ({}, {"prompt_tokens": 100, "cached_prompt_tokens": 0}, {"prompt_tokens": 0},
                   {"prompt_tokens": "100", "cached_prompt_tokens": "50"}):
        assert prompt_cache_line(ledger) == ""


@pytest.mark.parametrize(("cache_read", "cached"), [(600, 600), (5000, 650), (-1, 0), (None, 0)])
def test_a_plugged_in_chat_models_cache_reads_are_read_the_same_way(cache_read: object, cached: int) -> None:
    """LangChain's `input_token_details.cache_read` goes through the transport's reader (`cached_count`)."""
    from langchain_core.messages import AIMessage

    from refinelab.tools.llm import _usage

    usage: dict[str, object] = {"input_tokens": 650, "output_tokens": 1, "total_tokens": 651}
    if cache_read is not None:
        usage["input_token_details"] = {"cache_read": cache_read}
    assert _usage(AIMessage(content="B", usage_metadata=usage)) == (650, 1, True, cached)


@pytest.mark.parametrize("counts", [(-500, 1), (650, -1), (650.5, 1), (True, 1)])
def test_a_plugged_in_chat_models_usage_is_believed_only_as_whole_counts(counts: tuple[object, object]) -> None:
    """`int(input_tokens)` was settled as given: a negative count from the endpoint refunded the budget.
    Now such usage reads as unreported, and the client settles on the call's reservation."""
    from langchain_core.messages import AIMessage

    from refinelab.tools.llm import _usage

    message = AIMessage(content="B")
    message.usage_metadata = {"input_tokens": counts[0], "output_tokens": counts[1],  # type: ignore[typeddict-item]
                              "total_tokens": 0}
    assert _usage(message) == (0, 0, False, 0)
