"""Replies from an endpoint are untrusted: a live answer or a Batch API result file that is too large,
nested without end, or not the shape of a chat completion is a failed call (retried or sent live), never a
crash, an unbounded read, or a token count that refunds the budget."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from refinelab.tools import transport
from refinelab.tools.batch import _answer, _result_lines
from refinelab.tools.transport import ChatTransport, MalformedReply


def _completion(**usage: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"content": "B"}, "finish_reason": "stop"}], "usage": usage or None}


def _transport(body: bytes, *, chunked: bool = False) -> ChatTransport:
    """A transport whose server answers `body`: with its length declared, or in chunks without one."""
    chat = ChatTransport("http://127.0.0.1:9/v1", "sk-test", "m", timeout_s=5, connections=1)

    def answer(request: httpx.Request) -> httpx.Response:
        if chunked:
            return httpx.Response(200, content=iter([body[i:i + 256] for i in range(0, len(body), 256)]))
        return httpx.Response(200, content=body)

    chat._http = httpx.Client(base_url="http://127.0.0.1:9/v1", transport=httpx.MockTransport(answer))
    return chat


def test_a_reply_nested_without_end_is_malformed_not_a_recursion_error() -> None:
    """json.loads of 100,000 '[' raised RecursionError, which the call loop did not treat as a bad reply."""
    with pytest.raises(MalformedReply, match="not JSON: RecursionError"):
        _transport(b"[" * 100_000).complete([{"role": "user", "content": "q"}], {})


def test_a_reply_larger_than_the_cap_is_refused_while_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_REPLY_BYTES", 1000)
    padded = json.dumps({**_completion(prompt_tokens=1, completion_tokens=1), "pad": "x" * 5000}).encode()
    with pytest.raises(MalformedReply, match="5,[0-9]{3} bytes \\(at most 1,000\\)"):  # said by Content-Length
        _transport(padded).complete([{"role": "user", "content": "q"}], {})
    with pytest.raises(MalformedReply, match="longer than 1,000 bytes"):  # no length said: counted as read
        _transport(padded, chunked=True).complete([{"role": "user", "content": "q"}], {})
    small = json.dumps(_completion(prompt_tokens=1, completion_tokens=1)).encode()
    assert _transport(small).complete([{"role": "user", "content": "q"}], {}).text == "B"


def test_batch_result_lines_that_are_not_json_objects_are_skipped() -> None:
    good = {"custom_id": "a", "response": {"status_code": 200, "body": _completion(prompt_tokens=5,
                                                                                   completion_tokens=1)}}
    text = "\n".join(["not json", "[1, 2]", "[" * 100_000, json.dumps({"custom_id": 7}), json.dumps(good), ""])
    assert list(_result_lines(text)) == ["a"]


@pytest.mark.parametrize(("row", "why"), [
    ({"custom_id": "a", "response": ["x"]}, "a response that is not an object"),
    ({"custom_id": "a", "response": {"status_code": 200, "body": {"choices": "B"}}}, "choices not a list"),
    ({"custom_id": "a", "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": ["B"]}}]}}}, "content not text"),
    ({"custom_id": "a", "response": {"status_code": 500, "body": _completion()}}, "a failed status"),
    ({"custom_id": "a", "error": {"code": "x"}, "response": None}, "an error line"),
])
def test_a_batch_line_that_is_not_a_completion_is_a_failed_call(row: dict[str, Any], why: str) -> None:
    assert _answer(row) is None, why


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -500, "completion_tokens": 1},  # int() of it was settled: a refund to the budget
    {"prompt_tokens": "12", "completion_tokens": 1},
    {"prompt_tokens": 12},  # no completion count: was settled as 12 + 0
    {},
])
def test_batch_usage_is_believed_only_as_whole_counts(usage: dict[str, Any]) -> None:
    reply = _answer({"custom_id": "a", "response": {"status_code": 200, "body": {**_completion(), "usage": usage}}})
    assert reply is not None and reply.text == "B"
    assert not reply.reported  # the runner then settles on the reservation, never less
