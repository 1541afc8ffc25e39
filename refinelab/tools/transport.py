"""One chat-completion request to an OpenAI-compatible server, over a plain HTTP connection pool.

Why: the client spends its CPU per call, and with a fleet of 256 slots the client's CPU is what bounds
throughput (one Python process, one thread at a time). Sampling a 256-slot fleet run showed about 40%
of the interpreter's time inside LangChain's `ChatOpenAI` and the openai SDK building each request —
recursive type-driven transforms of the body, response-format parsing, model objects — for a request
whose body we already hold as JSON and an answer of which we read five fields. This module sends the
same body (`model`, `messages`, `stream: false`, `temperature`, `max_completion_tokens`, plus the call's
`response_format` / `logprobs` / `top_logprobs`) and reads those fields itself.

A model the caller plugs in as a LangChain chat model still goes through LangChain (`ChatClient`); this
is only for servers the client reaches by URL. The reply is untrusted endpoint output: anything that
is not the documented shape raises `MalformedReply` (retried like a garbled body), never a KeyError.

`timeout_s` bounds the whole request, not each read: httpx's timeout is per socket operation, so a server
sending one byte every half second kept a `timeout_s=1` call open for 12 s (and a header drip could hold
it for hours). Every socket operation of a call waits at most what is left of its deadline
(`_DeadlineBackend`), and a call past it raises httpx's ReadTimeout (or ConnectTimeout before a
connection exists): transient, retried, and charged like any timeout.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from refinelab.tools.ledger import MAX_TOKEN_COUNT, is_count

# A chat completion with top_logprobs for a few hundred tokens is well under a megabyte
MAX_REPLY_BYTES = 32 * 2**20


class EndpointStatusError(Exception):
    """The server answered with an error status (429, 5xx, 4xx): nothing was generated or billed."""

    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        super().__init__(f"HTTP {status_code}: {detail[:300]}")


class MalformedReply(ValueError):
    """A 200 whose body is not a chat completion (garbled JSON, missing choices, wrong types)."""


class TruncatedReply(Exception):
    """A structured reply cut off at the token limit: a (bad) answer that was paid for, never cached."""

    def __init__(self, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.text, self.prompt_tokens, self.completion_tokens = text, prompt_tokens, completion_tokens
        super().__init__(f"reply cut at the token limit after {completion_tokens} tokens")


@dataclass(frozen=True)
class Reply:
    """The parts of a chat completion the client uses."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    reported: bool  # the server sent usage; without it the client settles on the reservation
    logprobs: Any  # `choices[0].logprobs` as sent (read by llm.top_logprobs_of), or None
    # of `prompt_tokens`, those the server read from its prompt cache (`usage.prompt_tokens_details.
    # cached_tokens`: llama.cpp, vLLM and OpenAI send it); 0 when not said
    cached_prompt_tokens: int = 0


class ChatTransport:
    """POSTs chat completions to one server; thread-safe (one pooled `httpx.Client`)."""

    def __init__(self, base_url: str, api_key: str, model: str, *, timeout_s: float, connections: int) -> None:
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._timeout_s = timeout_s
        _bound_by_deadline(self._http)

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Reply:
        """One request; raises EndpointStatusError, MalformedReply, TruncatedReply or httpx's errors."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": False}
        for name, value in params.items():
            body["max_completion_tokens" if name == "max_tokens" else name] = value
        deadline = time.monotonic() + self._timeout_s
        _call.deadline = deadline
        try:
            with self._http.stream("POST", "/chat/completions",
                                   content=json.dumps(body, ensure_ascii=False).encode()) as response:
                content = capped_body(response, deadline=deadline)
        finally:
            _call.deadline = None
        if response.status_code >= 400:
            raise EndpointStatusError(response.status_code, content[:1000].decode("utf-8", "replace"))
        return _read(content, structured="response_format" in params)


def capped_body(response: httpx.Response, *, deadline: float | None = None) -> bytes:
    """The body of a streamed response, read up to MAX_REPLY_BYTES: a server that sends more (a broken proxy,
    a hostile endpoint) gets a MalformedReply instead of the client's memory. Every answer read from a model
    server goes through it (chat completions, token counts). Past `deadline` (time.monotonic) it raises
    httpx.ReadTimeout: a body dripped in small chunks never outlives the call's timeout, even where the
    per-read bound of `_DeadlineBackend` is not installed."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
        raise MalformedReply(f"the answer is {int(declared):,} bytes (at most {MAX_REPLY_BYTES:,})")
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise MalformedReply(f"the answer is longer than {MAX_REPLY_BYTES:,} bytes")
        chunks.append(chunk)
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout("the answer took longer than the call's timeout")
    return b"".join(chunks)


def _no_constant(name: str) -> Any:
    """`json.loads`'s hook for NaN/Infinity/-Infinity, which are not JSON: a logprob of -Infinity made a
    cloze probe's softmax all NaN and flag nothing, so such a reply is malformed, never read."""
    raise ValueError(f"non-finite number {name} in the answer")


def _read(content: bytes, *, structured: bool) -> Reply:
    try:
        data = json.loads(content, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # not JSON or not UTF-8; an integer of 4,300+ digits; nesting
        # past the interpreter's recursion limit (the reply is read field by field, never walked: no depth
        # scan on this hot path)
        raise MalformedReply(f"the answer is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    return reply_from(data, structured=structured)


def reply_from(data: Any, *, structured: bool) -> Reply:
    """The Reply in a chat completion already parsed from JSON (a live answer's body, a Batch API result
    line's `response.body`); MalformedReply for anything that is not the documented shape."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedReply("the answer has no choices")
    choice = choices[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise MalformedReply("the answer's message content is not text")
    usage = data.get("usage")
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
    for name, value in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        if _whole(value) and value > MAX_TOKEN_COUNT:
            raise MalformedReply(f"the answer's usage.{name} is over {MAX_TOKEN_COUNT:,} tokens")
    reported = is_count(prompt) and is_count(completion)
    prompt_tokens, completion_tokens = (int(prompt), int(completion)) if reported else (0, 0)  # type: ignore[arg-type]
    if structured and choice.get("finish_reason") == "length":
        if not reported:
            raise MalformedReply("a reply cut at the token limit, without usage")
        raise TruncatedReply(text, prompt_tokens, completion_tokens)
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = cached_count(details.get("cached_tokens") if isinstance(details, dict) else None, prompt_tokens)
    return Reply(text, prompt_tokens, completion_tokens, bool(reported), choice.get("logprobs"), cached)


def cached_count(value: Any, prompt_tokens: int) -> int:
    """The prompt tokens a server says it read from its prompt cache, as far as it can be believed: a
    whole count, at most the prompt; 0 for anything else (the field comes from an untrusted endpoint)."""
    return min(int(value), prompt_tokens) if is_count(value) else 0


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the whole-call deadline ------------------------------------------------------------------------

_call = threading.local()  # .deadline: time.monotonic() by which this thread's current request must end


def _within(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout of one socket operation: httpx's own, cut to what is left of the calling thread's
    deadline (none outside `ChatTransport.complete`); `error` once nothing is left."""
    deadline = getattr(_call, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if not left > 0:
        raise error("the call's timeout passed (timeout_s bounds the whole request)")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most what is left of the current call's deadline.
    A pooled connection outlives the call that opened it, so the deadline is the calling thread's, read at
    each operation (sync httpx does its I/O in the caller's thread)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _within(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """The pool's network backend with `_DeadlineStream` connections; connecting is bounded the same way."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _within(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _within(timeout, httpcore.ConnectTimeout),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_by_deadline(client: httpx.Client) -> None:
    """Put `_DeadlineBackend` under every connection pool of `client` (its own and any proxy's). httpx has
    no public hook for a network backend, so this reaches into its pools. The public way, a transport of our
    own over `httpcore.ConnectionPool(network_backend=...)`, would lose the proxies httpx reads from the
    environment (it reads them only when no transport is given) and copy httpx's request and error mapping.
    Where a pool has none of these attributes (another httpx), `capped_body`'s check still bounds the body,
    and tests/security/test_transport_deadline_hook.py says by name what moved."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
