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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

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

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Reply:
        """One request; raises EndpointStatusError, MalformedReply, TruncatedReply or httpx's errors."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": False}
        for name, value in params.items():
            body["max_completion_tokens" if name == "max_tokens" else name] = value
        with self._http.stream("POST", "/chat/completions",
                               content=json.dumps(body, ensure_ascii=False).encode()) as response:
            content = capped_body(response)
        if response.status_code >= 400:
            raise EndpointStatusError(response.status_code, content[:1000].decode("utf-8", "replace"))
        return _read(content, structured="response_format" in params)


def capped_body(response: httpx.Response) -> bytes:
    """The body of a streamed response, read up to MAX_REPLY_BYTES: a server that sends more (a broken proxy,
    a hostile endpoint) gets a MalformedReply instead of the client's memory. Every answer read from a model
    server goes through it (chat completions, token counts)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
        raise MalformedReply(f"the answer is {int(declared):,} bytes (at most {MAX_REPLY_BYTES:,})")
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise MalformedReply(f"the answer is longer than {MAX_REPLY_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _read(content: bytes, *, structured: bool) -> Reply:
    try:
        data = json.loads(content)
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


def is_count(value: Any) -> bool:
    """A token count as an endpoint may be believed to say it: a whole number, not negative, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
