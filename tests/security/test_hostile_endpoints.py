"""A model endpoint is untrusted: an absurd token count, a non-finite logprob, a reply dripped a byte at a
time, or credentials written into its URL must end as a failed (retried) call or a one-line refusal, never
a crash that leaves a reservation held, a silent NaN, a call that outlives its timeout, or a key stored in
a run's settings.json. Each case was reproduced against a loopback server before it was fixed."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from refinelab.config import ModelSpec, load_settings
from refinelab.errors import BudgetExhausted, ConfigError, LLMCallFailed
from refinelab.metrics.option_probs import letter_distribution, softmax
from refinelab.schema import QAItem
from refinelab.tools import transport
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient, token_logprobs_of, top_logprobs_of
from refinelab.tools.transport import ChatTransport, MalformedReply
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel

KEY_ENV = "REFINELAB_HOSTILE_TEST_KEY"
DRIP_S = 0.2  # a byte every DRIP_S seconds: each read returns before any per-read timeout
Reply = Callable[[socket.socket], None]


def _completion(content: str = "B", usage: str = '{"prompt_tokens": 5, "completion_tokens": 1}',
                logprobs: str = "null") -> bytes:
    """A chat completion's JSON with its usage and logprobs spliced in as raw text (JSON that Python's
    json.dumps would never write: 400-digit integers, -Infinity, 1e999)."""
    return (f'{{"choices": [{{"index": 0, "message": {{"role": "assistant", "content": {json.dumps(content)}}},'
            f' "finish_reason": "stop", "logprobs": {logprobs}}}], "usage": {usage}}}').encode()


def _answer(body: bytes, *, drip_head: int = 0, drip_body: int = 0) -> Reply:
    """A reply of `body`, its first `drip_head` bytes of status line and headers, or first `drip_body`
    bytes of body, sent one at a time DRIP_S apart."""
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()

    def send(conn: socket.socket) -> None:
        for data, drip in ((head, drip_head), (body, drip_body)):
            for i in range(min(drip, len(data))):
                conn.sendall(data[i:i + 1])
                time.sleep(DRIP_S)
            conn.sendall(data[min(drip, len(data)):])

    return send


@contextlib.contextmanager
def _endpoint(*replies: Reply) -> Iterator[str]:
    """A loopback server speaking raw HTTP/1.1 (so status line and headers can be dripped too): the n-th
    request gets `replies[n]` (the last one from then on); its base URL."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop, served = threading.Event(), [0]

    def handle(conn: socket.socket, reply: Reply) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536) or b"\r\n\r\n"
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length and (chunk := conn.recv(65536)):
                body += chunk
            reply(conn)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            reply = replies[min(served[0], len(replies) - 1)]
            served[0] += 1
            threading.Thread(target=handle, args=(conn, reply), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join()
        server.close()


def _client(url: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, **spec: Any) -> ChatClient:
    monkeypatch.setenv(KEY_ENV, "sk-hostile-endpoint-test-key")
    return ChatClient(ModelSpec(**{"endpoint": url, "model": "m", "api_key_env": KEY_ENV, "max_tokens": 16,
                                   "max_transport_retries": 0, **spec}), ledger, role="judge")


USER = [{"role": "user", "content": "q"}]


# ------------------------------------------------------------------ 1. a token count of 400 digits
def test_a_400_digit_usage_is_a_malformed_reply_and_frees_its_reservation(monkeypatch: pytest.MonkeyPatch) -> None:
    """It passed as a count; Ledger.settle's float scale then raised OverflowError, the reservation stayed
    held, and `refinelab model check` ended in a traceback's last line."""
    ledger = Ledger(cap=100_000)
    huge = _completion(usage='{"prompt_tokens": 1' + "0" * 400 + ', "completion_tokens": 1}')
    with (_endpoint(_answer(huge)) as url,
          pytest.raises(LLMCallFailed, match="MalformedReply: the answer's usage.prompt_tokens is over")):
        _client(url, ledger, monkeypatch).text(USER, CallTag(node="n"))
    summary = ledger.summary()
    assert summary["in_flight"] == 0 and summary["failed_calls"] == 1
    assert 0 < ledger.spent < 1_000  # charged its reservation, as a garbled reply is


def test_a_count_is_believed_only_up_to_the_cap() -> None:
    from refinelab.tools.ledger import MAX_TOKEN_COUNT, is_count

    cap = MAX_TOKEN_COUNT
    assert is_count(cap) and not is_count(cap + 1) and not is_count(10**400)
    reply = transport._read(_completion(usage='{"prompt_tokens": 9, "completion_tokens": 1,'
                                              ' "prompt_tokens_details": {"cached_tokens": 1' + "0" * 400 + "}}"),
                            structured=False)
    assert (reply.prompt_tokens, reply.cached_prompt_tokens) == (9, 0)  # a cache count past the cap: none said


@pytest.mark.parametrize(("prompt", "completion", "spent"), [
    (10**400, 1, 100),  # clipped to the reservation in integers
    (3 * 10**17, 10**17, 100),
    (float("nan"), 1, 100), ("12", 1, 100), (-50, 1, 100),  # not counts: the whole reservation
    (30, 20, 50),
])
def test_settle_charges_in_integers_and_never_raises_on_a_count(prompt: Any, completion: Any, spent: int) -> None:
    ledger = Ledger(cap=1_000)
    ledger.settle(ledger.reserve(100, CallTag()), prompt, completion, cached_prompt_tokens=10**400)
    assert ledger.spent == spent and ledger.summary()["in_flight"] == 0
    assert ledger.summary()["cached_prompt_tokens"] <= spent


def test_a_settle_that_fails_stops_others_waiting_on_its_reservation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reservation left in the live set kept another thread's reservation waiting (settle_wait_s, 300 s
    by default) for a settlement that would never come."""
    ledger = Ledger(cap=1_000, settle_wait_s=30)
    first = ledger.reserve(600, CallTag())
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            outcome["reservation"] = ledger.reserve(600, CallTag())
        except BudgetExhausted as exc:
            outcome["refused"] = exc

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive()  # waiting for the first to settle

    real = ledger._db

    class FailingUpdate:
        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("UPDATE calls SET prompt_tokens"):
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *args)

    monkeypatch.setattr(ledger, "_db", FailingUpdate())
    with pytest.raises(sqlite3.OperationalError):
        ledger.settle(first, 100, 10)
    monkeypatch.setattr(ledger, "_db", real)
    thread.join(timeout=5)
    assert not thread.is_alive(), "a failed settlement left its reservation waited on"
    assert isinstance(outcome.get("refused"), BudgetExhausted)  # its tokens still count: refused, not overspent


# ------------------------------------------------------------------ 2. -Infinity and NaN logprobs
@pytest.mark.parametrize("constant", ["-Infinity", "Infinity", "NaN"])
def test_a_reply_with_a_non_finite_constant_is_malformed(constant: str) -> None:
    logprobs = f'{{"content": [{{"token": "B", "logprob": {constant}, "top_logprobs": []}}]}}'
    with pytest.raises(MalformedReply, match=f"non-finite number {constant}"):
        transport._read(_completion(logprobs=logprobs), structured=False)


def test_the_logprob_readers_take_only_finite_numbers() -> None:
    inf, nan = float("inf"), float("nan")
    block = {"content": [{"token": "A", "logprob": -inf, "top_logprobs": [
        {"token": "A", "logprob": -inf}, {"token": "B", "logprob": -0.25}, {"token": "C", "logprob": nan},
        {"token": "D", "logprob": -10**400}, {"token": "E", "logprob": False}]}]}
    assert top_logprobs_of(block) == [("B", -0.25)]
    for bad in (-inf, nan, -10**400):
        assert token_logprobs_of({"content": [{"token": "Par", "logprob": -0.5}, {"token": "is", "logprob": bad}]}) is None
    assert token_logprobs_of({"content": [{"token": "Par", "logprob": -0.5}]}) == [("Par", -0.5)]


def test_a_forced_reply_scored_minus_infinity_is_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """1e999 is valid JSON and parses to inf without any constant: the reader's own check refuses it."""
    body = _completion("Paris", logprobs='{"content": [{"token": "Paris", "logprob": -1e999}]}')
    with (_endpoint(_answer(body)) as url,
          pytest.raises(LLMCallFailed, match="did not score a forced reply")):
        _client(url, Ledger(), monkeypatch).forced_text_logprobs(USER, "Paris", CallTag(node="n"))


def test_option_arithmetic_refuses_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        softmax([float("-inf"), float("-inf")])  # was [nan, nan]: compares false with every threshold
    probs, mass = letter_distribution([("A", float("-inf")), ("B", float("nan")), ("C", 800.0), ("A", -0.5)], 3)
    assert probs == [1.0, 0.0, 0.0] and math.isclose(mass, math.exp(-0.5))


def test_a_cloze_member_whose_logprobs_overflow_fails_instead_of_answering_nan(tmp_path: Path) -> None:
    from refinelab.agents.panel import cloze_member

    item = QAItem(id="q1", question="Which city is the capital of France?", choices=["Paris", "Lyon"], answer=0)
    member = ScriptedChatModel(respond=lambda m: "{}", respond_forced=lambda m, text: [(text[:2], -1.7e308),
                                                                                      (text[2:], -1.7e308)])
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"cloze:m": member},
                       options={"panel": ["cloze:m"], "panel_method": "logprobs"})
    with pytest.raises(LLMCallFailed, match="not finite numbers"):
        cloze_member(ctx, "cloze:m", item)


# ------------------------------------------------------------------ 3. a reply dripped a byte at a time
@pytest.mark.parametrize("where", ["body", "head"])
def test_timeout_s_bounds_the_whole_call_however_slowly_the_server_sends(where: str) -> None:
    """httpx's timeout is per read: 40 bytes DRIP_S apart kept a 0.5 s call open 8 s, and it succeeded.
    The next call on the same pooled transport is not cut short by the first one's deadline."""
    body = b" " * 40 + _completion()  # leading spaces are valid JSON
    drip = _answer(body, drip_body=40) if where == "body" else _answer(body, drip_head=40)
    with _endpoint(drip, _answer(body)) as url:
        chat = ChatTransport(url, "sk-test", "m", timeout_s=0.5, connections=1)
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            chat.complete(USER, {})
        assert time.monotonic() - started < 2.5
        assert chat.complete(USER, {}).text == "B"
        chat.close()


def test_a_dripped_reply_is_a_timed_out_call_retried_as_timeouts_are(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b" " * 40 + _completion()
    ledger = Ledger(cap=100_000)
    with _endpoint(_answer(body, drip_body=40), _answer(body)) as url:
        result = _client(url, ledger, monkeypatch, timeout_s=0.5, max_transport_retries=1).text(USER, CallTag())
    assert result.text == "B" and ledger.summary()["retries"] == 1


# ------------------------------------------------------------------ 4. credentials in an endpoint URL
@pytest.mark.parametrize("spec", [{"endpoint": "https://alice:hunter2@llm.example.com/v1"},
                                  {"endpoint": "https://hunter2-token@llm.example.com/v1"},
                                  {"endpoints": ["http://127.0.0.1:8080/v1", "https://alice:hunter2@b.example/v1#4"]}])
def test_an_endpoint_url_with_credentials_is_refused(spec: dict[str, Any]) -> None:
    """It was written verbatim into the run's settings.json; keys belong in the variable api_key_env names."""
    with pytest.raises(ValueError, match="must not carry credentials.*api_key_env"):
        ModelSpec(**spec)
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"roles": {"judge": spec}})
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message and "api_key_env" in message


def test_openai_base_url_with_credentials_is_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://alice:hunter2@llm.example.com/v1")
    with pytest.raises(ConfigError, match="must not carry credentials") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)


def test_an_at_sign_outside_the_host_part_is_no_credential() -> None:
    url = "https://llm.example.com/v1/deployments/a@b?user=x@y"
    assert ModelSpec(endpoint=url).endpoint == url
