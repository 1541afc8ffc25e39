"""Model access for every role: any OpenAI-compatible endpoint through LangChain's ChatOpenAI.

One `ChatClient` per role. Each call goes: cache lookup → ledger reservation (worst case) →
concurrency slot → HTTP call with backoff on 429/5xx/timeouts → settle the ledger from the usage the
server reported → parse into a pydantic model, re-asking (a new, counted attempt) on a bad parse.
A call that still fails raises `LLMCallFailed` carrying the raw outputs; it never returns None.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from refinelab.config import EMBEDDED, ModelSpec
from refinelab.errors import BudgetExhausted, EndpointUnavailable, LLMCallFailed
from refinelab.redact import redact_secrets, register_env, register_secret
from refinelab.tools.cache import ResponseCache, fingerprint
from refinelab.tools.fleet import Fleet, Member
from refinelab.tools.ledger import CallTag, Ledger, Reservation, is_count
from refinelab.tools.tokens import PromptTokenCounter, with_margin
from refinelab.tools.tracing import LLMCall, Tracer, transport_only
from refinelab.tools.transport import (
    ChatTransport,
    EndpointStatusError,
    MalformedReply,
    Reply,
    TruncatedReply,
    cached_count,
)

T = TypeVar("T", bound=BaseModel)

# How many first-token alternatives a logprobs probe asks for (OpenAI's maximum): a batched probe must ask
# the same, or it would not be the live call's answer (the count is part of the cache key).
FIRST_TOKEN_TOP = 20
FORCED_TEXT_SLACK = 4  # tokens beyond one per character of a forced reply: the end-of-turn token and spare

# Chat templates add a few special tokens per message, and some add a default system prompt.
_PER_MESSAGE_OVERHEAD = 12
_BASE_OVERHEAD = 48


def estimate_prompt_tokens(messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> int:
    """A safe upper bound on prompt tokens: one token per UTF-8 byte plus template overhead.

    BPE tokens cover at least one byte each, so bytes bound the count; the overhead covers the chat
    template's special tokens. Over-estimating only delays the last calls of a run; under-estimating
    could overspend, which the ledger must never do.
    """
    total = _BASE_OVERHEAD
    for message in messages:
        total += len(message["content"].encode()) + _PER_MESSAGE_OVERHEAD
    if schema is not None:
        total += len(json.dumps(schema).encode()) // 4  # grammar-constrained: the schema is not in the prompt
    return total


@dataclass
class CallResult:
    """What one logical call produced, with its cost, whether parsed or plain text."""

    text: str
    parsed: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 1
    latency_s: float = 0.0
    raw_outputs: list[str] = field(default_factory=list)
    # The first generated token's alternatives, [(token, logprob), …], when the call asked for logprobs.
    top_logprobs: list[tuple[str, float]] | None = None
    # Every generated token with its logprob, [(token, logprob), …], for a reply forced by a grammar.
    token_logprobs: list[tuple[str, float]] | None = None
    # The ledger row of the paid call this answer settled (None for a cache hit): a parse failure marks that
    # row (Ledger.mark_parse_failed). Not part of the answer: left out of repr and equality.
    call_id: int | None = field(default=None, repr=False, compare=False)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _strip_fences(text: str) -> str:
    match = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return match.group(1).strip() if match else text.strip()


def _to_langchain(messages: list[dict[str, str]]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _openai_sdk() -> Any:
    """The OpenAI SDK if this process has loaded it, else None. Its errors come only from a caller's
    ChatOpenAI or the Batch API, which load it; importing it just to test an exception against its classes
    cost every failed call in a fresh process 1.2 s (a dead endpoint, a garbled reply)."""
    return sys.modules.get("openai")


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, EndpointStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    if isinstance(exc, httpx.TransportError | MalformedReply):  # timeouts, resets, a cut or garbled body
        return True
    # A 200 whose body is cut or garbled (proxy or server glitch) is worth another try, like a 5xx.
    if isinstance(exc, json.JSONDecodeError | TimeoutError | ConnectionError):
        return True
    openai = _openai_sdk()
    if openai is None:
        return False
    if isinstance(exc, openai.RateLimitError | openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, openai.APIResponseValidationError)


def _status_answer(exc: Exception) -> bool:
    """The server answered with an HTTP status (429, 5xx): nothing was generated or billed."""
    openai = _openai_sdk()
    return isinstance(exc, EndpointStatusError) or (openai is not None and isinstance(exc, openai.APIStatusError))


def _never_reached(exc: BaseException) -> bool:
    """True when the request provably never reached a server (connection refused, no route, DNS,
    connect timeout): nothing can have been generated or billed, so the call costs nothing."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError):
            return True
        # the openai client sends through its own httpx fork (httpx2/httpcore2): same names, other classes
        if type(node).__name__ in _CONNECT_ERRORS and type(node).__module__.split(".")[0] in _HTTP_MODULES:
            return True
        node = node.__cause__ or node.__context__
    return False


_CONNECT_ERRORS = frozenset({"ConnectError", "ConnectTimeout"})
_HTTP_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2"})


def _truncated_completion(exc: Exception) -> tuple[str, int, int] | None:
    """(text, prompt, completion) of a reply cut off at max_tokens, which the OpenAI client raises as an
    error for structured output; None for any other exception. Never cached: a re-ask may do better."""
    if isinstance(exc, TruncatedReply):
        return exc.text, exc.prompt_tokens, exc.completion_tokens
    openai = _openai_sdk()
    if openai is None or not isinstance(exc, openai.LengthFinishReasonError):
        return None
    completion = exc.completion
    text = completion.choices[0].message.content or "" if completion.choices else ""
    usage = completion.usage
    if usage is None or not (is_count(usage.prompt_tokens) and is_count(usage.completion_tokens)):
        return None
    return text, usage.prompt_tokens, usage.completion_tokens


def _usage(message: AIMessage) -> tuple[int, int, bool, int]:
    """(prompt, completion, reported, cached prompt tokens) from the server's usage; reported=False when
    it sent none. LangChain puts the prompt-cache reads under `input_token_details.cache_read`."""
    usage = message.usage_metadata
    prompt = usage.get("input_tokens") if isinstance(usage, dict) else None
    completion = usage.get("output_tokens") if isinstance(usage, dict) else None
    if is_count(prompt) and is_count(completion):  # as a URL endpoint's: a negative count would refund the budget
        details = usage.get("input_token_details")  # type: ignore[union-attr]
        cached = cached_count(details.get("cache_read") if isinstance(details, dict) else None, prompt)
        return prompt, completion, True, cached
    return 0, 0, False, 0


def top_logprobs_of(block: Any) -> list[tuple[str, float]] | None:
    """[(token, logprob), …] for the first generated token of an OpenAI `logprobs` block (a choice's
    `logprobs`): the one reader of a live answer's and a Batch API result line's, so a batched probe
    yields exactly what the live call would. The block is untrusted endpoint output: malformed entries
    (a logprob that is not a finite number <= 0) are skipped, never raised on; None when nothing usable
    is there."""
    content = block.get("content") if isinstance(block, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    alternatives = first.get("top_logprobs") or [first]
    out: list[tuple[str, float]] = []
    for entry in alternatives if isinstance(alternatives, list) else []:
        if not isinstance(entry, dict):
            continue
        token, logprob = entry.get("token"), entry.get("logprob")
        if isinstance(token, str) and is_logprob(logprob):
            out.append((token, float(logprob)))
    return out or None


def token_logprobs_of(block: Any) -> list[tuple[str, float]] | None:
    """[(token, logprob), …] for every generated token of an OpenAI `logprobs` block, in order. Untrusted
    endpoint output: None when any entry is malformed (a partial list would score a shorter text), a
    -Infinity or NaN logprob included: one made a cloze probe's softmax all NaN, flagging nothing."""
    content = block.get("content") if isinstance(block, dict) else None
    if not isinstance(content, list) or not content:
        return None
    out: list[tuple[str, float]] = []
    for entry in content:
        token = entry.get("token") if isinstance(entry, dict) else None
        logprob = entry.get("logprob") if isinstance(entry, dict) else None
        if not (isinstance(token, str) and is_logprob(logprob)):
            return None
        out.append((token, float(logprob)))
    return out


def is_logprob(value: Any) -> bool:
    """A log-probability as an endpoint may be believed to send it: a finite number, at most 0 (not a
    bool; -inf, NaN, a float parsed from 1e999 and an integer past a float's range are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and number <= 0.0


def literal_grammar(text: str) -> str:
    """A GBNF grammar (llama.cpp's `grammar` parameter) whose only sentence is `text`. Option text is
    untrusted: quotes, backslashes and control characters are escaped, so no text ends the literal early
    (the escapes are those GBNF and JSON share, so the literal also reads back with `json.loads`)."""
    escaped = []
    for char in text:
        if char in _GBNF_ESCAPES:
            escaped.append(_GBNF_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return 'root ::= "' + "".join(escaped) + '"'


_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=256)
def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema in the strict form grammar-constrained servers and OpenAI accept.

    Cached per model class (generating it took ~10% of the client's CPU at 256 slots); callers only
    read it."""
    schema = model.model_json_schema()

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
                node["required"] = list(node["properties"])
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


# Count prompt tokens on the server once the budget left is below this many byte-bound reservations
# per slot of the role (other roles share the ledger, hence more than one).
COUNT_HEADROOM = 4


@dataclass
class _TransportTries:
    """What one live call has left to spend on failed sends, carried across its transport tries."""

    retries_left: int  # failures that count against the endpoint: each one a backoff and another try
    moves_left: int  # failures that only moved the call to another fleet member spend no retry; this bounds them
    delay: float = 0.5  # the next backoff's base, in seconds, doubled after each (at most 20)


class ChatClient:
    """A role's model: budgeted, cached, traced, retried, concurrency-limited."""

    def __init__(
        self,
        spec: ModelSpec,
        ledger: Ledger,
        *,
        cache: ResponseCache | None = None,
        tracer: Tracer | None = None,
        chat_model: BaseChatModel | None = None,
        role: str = "",
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.cache = cache
        self.tracer = tracer
        self.role = role
        if chat_model is not None:  # a live model from the caller: one member, nothing to probe
            self.fleet = Fleet.of([(spec.endpoint, spec.concurrency)], probe=None)
            self.fleet.members[0].model = chat_model
        else:
            self.fleet = Fleet.of(spec.fleet())
        self._lock = threading.Lock()
        self._plugged = chat_model is not None  # a live model from the caller: LangChain, not HTTP
        self._count_tokens = chat_model is None  # a live model from the caller has no server to ask
        self._counter: PromptTokenCounter | None = None
        self._prefetched: dict[str, CallResult] = {}  # key -> answer a batch already paid for

    @property
    def model_name(self) -> str:
        return self.spec.model

    def chat_model(self) -> BaseChatModel:
        """The first server's LangChain model, created on first use (starting the embedded server if needed)."""
        return self._model_for(self.fleet.members[0])

    def resolve(self, member: Member) -> None:
        """Set `member.base_url` and `member.api_key` on first use (starting the embedded server if needed)."""
        with self._lock:
            if member.base_url or member.model is not None:
                return
            if member.url == EMBEDDED:
                from refinelab.tools.embedded_server import ensure_server

                base_url, api_key = ensure_server(self.spec.model).base_url, "sk-local"
            else:
                base_url = member.url
                register_env(self.spec.api_key_env)  # error text quoting it is redacted everywhere
                api_key = os.environ.get(self.spec.api_key_env, "")
                register_secret(api_key)
                if not api_key:
                    raise LLMCallFailed(f"endpoint {base_url} needs an API key in ${self.spec.api_key_env}")
            member.base_url, member.api_key = base_url, api_key

    def _model_for(self, member: Member) -> BaseChatModel:
        """The member's LangChain model: the one the caller plugged in, or a `ChatOpenAI` for its server
        (for callers that want LangChain's object; the client's own calls use `_transport_for`)."""
        self.resolve(member)
        with self._lock:
            if member.model is None:
                from langchain_openai import ChatOpenAI

                member.model = ChatOpenAI(
                    base_url=member.base_url, api_key=member.api_key, model=self.spec.model,
                    temperature=self.spec.temperature, max_tokens=self.spec.max_tokens,
                    timeout=self.spec.timeout_s, max_retries=0, stream_usage=False,
                )
            return member.model

    def _transport_for(self, member: Member) -> ChatTransport:
        self.resolve(member)
        with self._lock:
            if member.transport is None:
                member.transport = ChatTransport(member.base_url, member.api_key, self.spec.model,
                                                 timeout_s=self.spec.timeout_s, connections=member.concurrency + 4)
            return member.transport

    def _send(self, member: Member, messages: list[dict[str, str]], params: dict[str, Any]) -> Reply:
        """One attempt on `member`: over HTTP for a server, through LangChain for a plugged-in model."""
        if not self._plugged:
            return self._transport_for(member).complete(messages, params)
        limit = params["max_tokens"]
        bind: dict[str, Any] = {"max_tokens": limit} if limit != self.spec.max_tokens else {}
        if "response_format" in params:
            bind["response_format"] = params["response_format"]
        if params.get("logprobs"):
            bind["logprobs"], bind["top_logprobs"] = True, params["top_logprobs"]
        if "grammar" in params:  # an OpenAI-client chat model sends unknown parameters in the body this way
            bind["extra_body"] = {"grammar": params["grammar"]}
        with transport_only() as untraced:
            message = self._model_for(member).invoke(_to_langchain(messages), config=untraced, **bind)
        prompt, completion, reported, cached = _usage(message)
        text = message.content if isinstance(message.content, str) else json.dumps(message.content)
        metadata = message.response_metadata if isinstance(message.response_metadata, dict) else {}
        return Reply(text, prompt, completion, reported, metadata.get("logprobs"), cached)

    # -- public calls -------------------------------------------------------------------------

    def structured(
        self, messages: list[dict[str, str]], schema: type[T], tag: CallTag, *, max_tokens: int | None = None,
        sample: str = "", answers: int = 1,
    ) -> CallResult:
        """Ask for JSON matching `schema`; re-ask on a bad parse, up to `max_parse_retries` times.

        `max_tokens` caps this call below the role's default (small outputs reserve less budget). `sample`
        names an independent draw of the same prompt: calls with different samples are not answered from
        each other's cache entries (the same sample is, e.g. on resume). `answers` says the reply holds that
        many answers of the role's usual size (a batch): its limit is the role's `max_tokens` times it."""
        json_schema = schema_for(schema)
        raw_outputs: list[str] = []
        total = CallResult(text="")
        for attempt in range(self.spec.max_parse_retries + 1):
            result = self._call(messages, tag, attempt=attempt, json_schema=json_schema, name=schema.__name__,
                                max_tokens=max_tokens, sample=sample, answers=answers)
            raw_outputs.append(result.text)
            total.prompt_tokens += result.prompt_tokens
            total.completion_tokens += result.completion_tokens
            total.latency_s += result.latency_s
            total.cached = result.cached if attempt == 0 else total.cached and result.cached
            try:
                parsed = schema.model_validate_json(_strip_fences(result.text))
            except (ValidationError, ValueError) as exc:
                self._mark_parse_failure(result, exc)
                continue
            total.text, total.parsed, total.attempts, total.raw_outputs = result.text, parsed, attempt + 1, raw_outputs
            return total
        raise LLMCallFailed(
            f"{self.model_name}: no valid {schema.__name__} after {len(raw_outputs)} attempts",
            raw_outputs=raw_outputs, attempts=len(raw_outputs),
            tokens=total.prompt_tokens + total.completion_tokens,
        )

    def text(self, messages: list[dict[str, str]], tag: CallTag) -> CallResult:
        return self._call(messages, tag, attempt=0, json_schema=None, name="text")

    def first_token_logprobs(self, messages: list[dict[str, str]], tag: CallTag, *,
                             top: int = FIRST_TOKEN_TOP) -> CallResult:
        """A one-token completion with the `top` most likely first tokens and their log-probabilities.

        This is how a model "answers" a multiple-choice item as a distribution over letters rather than
        as a generated verdict: one generated token, every option's probability in one call. Raises
        LLMCallFailed when the endpoint returns no logprobs (some servers ignore the parameter)."""
        result = self._call(messages, tag, attempt=0, json_schema=None, name="logprobs", max_tokens=1,
                            top_logprobs=top)
        if not result.top_logprobs:
            raise LLMCallFailed(f"{self.model_name}: the endpoint returned no logprobs for a logprobs request",
                                raw_outputs=[result.text], tokens=result.tokens)
        return result

    def forced_text_logprobs(self, messages: list[dict[str, str]], text: str, tag: CallTag) -> CallResult:
        """The log-probability the model gives each token of `text` as its reply to `messages`.

        The reply is forced to `text` by a grammar (llama.cpp's `grammar` parameter) and each token's
        logprob is the model's own before the grammar masks the rest: how likely the model finds an
        option's wording, read without asking it to pick a letter (small models' letter choice follows
        the option order). `token_logprobs` holds them, the end-of-turn token included when the server
        sends it. Raises LLMCallFailed when the endpoint ignored the grammar (the reply is not `text`) or
        returned no per-token logprobs: hosted APIs have no grammar parameter."""
        result = self._call(messages, tag, attempt=0, json_schema=None, name="forced_text",
                            max_tokens=len(text) + FORCED_TEXT_SLACK, top_logprobs=1, grammar=literal_grammar(text))
        if result.text != text or not result.token_logprobs:
            raise LLMCallFailed(f"{self.model_name}: the endpoint did not score a forced reply (grammar ignored "
                                "or no per-token logprobs); cloze members need a llama.cpp server",
                                raw_outputs=[result.text], tokens=result.tokens)
        return result

    # -- internals ------------------------------------------------------------------------------

    def _prompt_bound(self, messages: list[dict[str, str]], params: dict[str, Any]) -> int:
        """Prompt tokens to reserve: the server's own count plus a margin where it can count
        (tools/tokens.py), never more than the byte bound, which is used where it cannot."""
        bound = estimate_prompt_tokens(messages, params.get("response_format"))
        if not self._count_tokens:
            return bound
        # Counting costs a request to the server per call; it only matters where byte-bound reservations
        # from every slot could crowd the budget's end. Until then the byte bound holds nothing back
        # (a reservation is settled at the reported usage), so the count is skipped.
        available = self.ledger.available
        worst = bound + int(params["max_tokens"])
        if available is None or worst * self.fleet.total_concurrency * COUNT_HEADROOM <= available:
            return bound
        if available <= int(params["max_tokens"]):
            # no prompt, however it is counted, fits beside the answer's reservation: the ledger refuses the
            # call without a count, and an embedded server is not started only to say so (a --budget 0
            # run took 7 s more, most of it starting the 1.5B for a count that could not change the answer)
            return bound
        if self._counter is None:
            first = self.fleet.members[0]
            self.resolve(first)
            with self._lock:
                if self._counter is None:
                    self._counter = PromptTokenCounter(first.base_url, self.spec.model, first.api_key)
        counted = self._counter.count(messages)
        if counted is None:
            self._count_tokens = False  # this server cannot count: the byte bound from now on
            return bound
        return min(bound, with_margin(counted))

    def _check_endpoint(self) -> None:
        """Raise EndpointUnavailable once the run's ledger has given up on the endpoints (no call is sent)."""
        tripped = self.ledger.tripped
        if tripped is not None:
            raise EndpointUnavailable(tripped["endpoint"], tripped["failures"], tripped["error"], tripped["reason"])

    def _params(self, json_schema: dict[str, Any] | None) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.spec.temperature, "max_tokens": self.spec.max_tokens}
        if json_schema is not None:
            params["response_format"] = self._response_format(json_schema)
        return params

    def _response_format(self, json_schema: dict[str, Any]) -> dict[str, Any]:
        if self.spec.structured_method == "json_mode":
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema, "strict": True}}

    def _mark_parse_failure(self, result: CallResult, exc: Exception) -> None:
        if result.call_id is not None:
            self.ledger.mark_parse_failed(result.call_id)

    def prepare(self, messages: list[dict[str, str]], json_schema: dict[str, Any] | None,
                max_tokens: int | None = None, attempt: int = 0, top_logprobs: int | None = None,
                sample: str = "", grammar: str | None = None,
                answers: int = 1) -> tuple[list[dict[str, str]], dict[str, Any], str]:
        """(messages as sent, request parameters, cache key) of one call: the batch path builds its
        requests here, so a batched answer is found again by the call it stands for."""
        if json_schema is not None and self.spec.structured_method == "json_mode":
            schema_hint = "Answer with one JSON object matching this schema:\n" + json.dumps(json_schema)
            messages = [*messages[:-1], {"role": messages[-1]["role"],
                                         "content": messages[-1]["content"] + "\n\n" + schema_hint}]
        params = self._params(json_schema)
        params["max_tokens"] = self.spec.max_tokens * max(1, answers)
        if max_tokens is not None:
            params["max_tokens"] = min(max_tokens, params["max_tokens"])
        if top_logprobs is not None:
            params["logprobs"], params["top_logprobs"] = True, top_logprobs
        if grammar is not None:
            params["grammar"] = grammar
        return messages, params, fingerprint(self.model_name, params, messages, attempt, sample)

    def cache_answer(self, key: str, result: CallResult) -> None:
        """Keep a paid answer in the response cache (when the run has one), in the one entry format the
        lookup in `_cached_answer` reads: a live call and a batch result line are stored alike."""
        if self.cache is None:
            return
        entry: dict[str, Any] = {"text": result.text, "prompt_tokens": result.prompt_tokens,
                                 "completion_tokens": result.completion_tokens, "paid_by": self.ledger.ledger_id}
        if result.top_logprobs is not None:
            entry["top_logprobs"] = result.top_logprobs
        if result.token_logprobs is not None:
            entry["token_logprobs"] = result.token_logprobs
        self.cache.put(key, self.model_name, entry)

    def prefetched(self, key: str, result: CallResult) -> None:
        """An answer already paid for (settled in the ledger by a batch): the next call with this key
        takes it instead of sending a request."""
        with self._lock:
            self._prefetched[key] = result

    def _call(
        self, messages: list[dict[str, str]], tag: CallTag, *, attempt: int,
        json_schema: dict[str, Any] | None, name: str, max_tokens: int | None = None,
        top_logprobs: int | None = None, sample: str = "", grammar: str | None = None, answers: int = 1,
    ) -> CallResult:
        tag = CallTag(tag.node, tag.operation, tag.item_id, tag.model or self.model_name)
        messages, params, key = self.prepare(messages, json_schema, max_tokens, attempt, top_logprobs, sample,
                                             grammar, answers)
        return self._cached_or_live(messages, params, key, tag, attempt, name)

    def _trace(self, messages: list[dict[str, str]], params: dict[str, Any], tag: CallTag, attempt: int,
               schema: str, *, cached: bool, transport_try: int = 0) -> LLMCall | None:
        """The LLM run of one request (or cache hit), under the current node/edit run; None untraced."""
        if self.tracer is None:
            return None
        metadata = {"ls_provider": "openai", "ls_model_type": "chat", "ls_model_name": self.model_name,
                    "ls_temperature": params["temperature"], "ls_max_tokens": params["max_tokens"],
                    **tag.__dict__, "role": self.role, "schema": schema, "attempt": attempt,
                    "transport_try": transport_try, "cached": cached}
        invocation = {"model": self.model_name, "_type": "openai-chat", **params}
        return self.tracer.llm_call(f"{self.role or 'llm'}:{self.model_name}", messages, model=self.model_name,
                                    invocation_params=invocation, metadata=metadata)

    def _cached_or_live(
        self, messages: list[dict[str, str]], params: dict[str, Any], key: str, tag: CallTag, attempt: int,
        schema: str = "text",
    ) -> CallResult:
        """The answer to one prepared request, the cheapest first: a batch's prefetched answer, else the
        response cache's, else a live call (the only one that reserves budget)."""
        ready = self._prefetched_answer(messages, params, key, tag, attempt, schema)
        if ready is not None:
            return ready
        hit = self._cached_answer(messages, params, key, tag, attempt, schema)
        if hit is not None:
            return hit
        return self._live_call(messages, params, key, tag, attempt, schema)

    def _prefetched_answer(self, messages: list[dict[str, str]], params: dict[str, Any], key: str, tag: CallTag,
                           attempt: int, schema: str) -> CallResult | None:
        """The batch's answer to this request, taken once (`prefetched`); None when no batch answered it."""
        with self._lock:
            ready = self._prefetched.pop(key, None)
        if ready is None:
            return None
        # answered by a batch: charged when the batch settled, not again
        if (call := self._trace(messages, params, tag, attempt, schema, cached=False)) is not None:
            call.end(ready.text, ready.prompt_tokens, ready.completion_tokens, top_logprobs=ready.top_logprobs)
        return ready

    def _cached_answer(self, messages: list[dict[str, str]], params: dict[str, Any], key: str, tag: CallTag,
                       attempt: int, schema: str) -> CallResult | None:
        """The response cache's answer to this request (`cache_answer` wrote it); None without a cache or a hit."""
        if self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is None:
            return None
        # a cached answer costs nothing; another run's uses budget (Ledger.note_replayed)
        if hit.get("paid_by") != self.ledger.ledger_id:
            self.ledger.note_replayed(key, int(hit["prompt_tokens"]) + int(hit["completion_tokens"]), tag.node)
        top, forced = hit.get("top_logprobs"), hit.get("token_logprobs")
        cached = CallResult(text=hit["text"], prompt_tokens=hit["prompt_tokens"],
                            completion_tokens=hit["completion_tokens"], cached=True, attempts=attempt + 1,
                            top_logprobs=[(str(t), float(lp)) for t, lp in top] if top else None,
                            token_logprobs=[(str(t), float(lp)) for t, lp in forced] if forced else None)
        if (call := self._trace(messages, params, tag, attempt, schema, cached=True)) is not None:
            call.end(cached.text, 0, 0, top_logprobs=cached.top_logprobs)
        return cached

    def _live_call(self, messages: list[dict[str, str]], params: dict[str, Any], key: str, tag: CallTag,
                   attempt: int, schema: str) -> CallResult:
        """Send the request: each transport try reserves its worst case in the ledger first and settles it
        after, whatever happened; a failure is retried, or moved to another fleet member (`_settle_failure`)."""
        limit = int(params["max_tokens"])
        worst_case = self._prompt_bound(messages, params) + limit
        tries = _TransportTries(retries_left=self.spec.max_transport_retries,
                                moves_left=self.fleet.eject_after * len(self.fleet.members))
        transport_try = 0
        while True:
            self._check_endpoint()
            reservation = self.ledger.reserve(worst_case, tag, attempt=attempt, is_retry=transport_try > 0 or attempt > 0)
            try:
                call = self._trace(messages, params, tag, attempt, schema, cached=False, transport_try=transport_try)
            except BaseException:  # a reservation left held would stall other threads' reservations (Ledger.reserve)
                self.ledger.release(reservation)
                raise
            transport_try += 1
            member = self.fleet.acquire()
            started = time.monotonic()
            try:
                reply = self._send(member, messages, params)
            except BudgetExhausted as exc:
                self.fleet.released(member)
                self.ledger.release(reservation)
                if call is not None:
                    call.fail(exc)
                raise
            except Exception as exc:
                truncated = _truncated_completion(exc)
                if truncated is not None:  # hit max_tokens: a (bad) answer, paid for; the parse retry handles it
                    return self._truncated_answer(truncated, member, reservation, call, attempt, started)
                self._settle_failure(exc, member, reservation, call, worst_case, tries)
                continue
            return self._settled_answer(reply, key, params, member, reservation, call, worst_case, attempt, started)

    def _truncated_answer(self, truncated: tuple[str, int, int], member: Member, reservation: Reservation,
                          call: LLMCall | None, attempt: int, started: float) -> CallResult:
        """A reply cut off at max_tokens, settled at its reported usage. Not cached: a re-ask may do better."""
        self.fleet.succeeded(member)
        text, prompt, completion = truncated
        text = redact_secrets(text)
        self.ledger.settle(reservation, prompt, completion)
        self.ledger.note_answer()
        if call is not None:
            call.end(text, prompt, completion)
        return CallResult(text=text, prompt_tokens=prompt, completion_tokens=completion, attempts=attempt + 1,
                          latency_s=time.monotonic() - started, call_id=reservation.call_id)

    def _settle_failure(self, exc: Exception, member: Member, reservation: Reservation, call: LLMCall | None,
                        worst_case: int, tries: _TransportTries) -> None:
        """Settle a failed send and decide what follows: raise (the endpoint tripped, the error is not
        transient, or no retry is left), or return for the next try, after a backoff when it spent a retry
        and at once when it only moved the call to another fleet member. Called inside the `except` arm,
        so what it raises carries the send's error as its context."""
        # A status answer (429, 5xx) means no generation was billed, and a request refused before
        # it reached a server cannot have been; a timeout or dropped connection may have been,
        # so it is charged its full reservation.
        answered = _status_answer(exc)
        unsent = _never_reached(exc)
        charged = 0 if answered or unsent else worst_case
        self.ledger.settle(reservation, charged, 0, failed=True, unsent=unsent)
        if call is not None:
            call.fail(exc, charged, 0)
        error = f"{type(exc).__name__}: {exc}"
        if answered and exc.status_code < 500:  # busy or refused: says nothing of the server's health
            self.fleet.released(member)
            counts = True
        else:
            counts = self.fleet.failed(member, down=unsent).counts_for_run
        if counts or tries.moves_left <= 0:
            streak = self.ledger.note_failure()
            if streak >= self.ledger.failure_limit:
                self.ledger.trip(member.url, error)
                self._check_endpoint()
            if not _is_transient(exc) or tries.retries_left <= 0:
                self.ledger.note_call_failed()
                self._check_endpoint()
                spent = self.spec.max_transport_retries - tries.retries_left + 1
                raise LLMCallFailed(f"{self.model_name}: {error}", attempts=spent) from None
            tries.retries_left -= 1
            time.sleep(tries.delay * (1 + random.random()))
            tries.delay = min(tries.delay * 2, 20.0)
        else:  # another member takes it at once
            tries.moves_left -= 1

    def _settled_answer(self, reply: Reply, key: str, params: dict[str, Any], member: Member,
                        reservation: Reservation, call: LLMCall | None, worst_case: int, attempt: int,
                        started: float) -> CallResult:
        """A live answer, settled at the usage the server reported (at the reservation when it reported
        none: never under-count) and kept in the response cache."""
        limit = int(params["max_tokens"])
        self.fleet.succeeded(member)
        prompt, completion, reported = reply.prompt_tokens, reply.completion_tokens, reply.reported
        if not reported:  # settle on the reservation: never under-count an unreported call
            prompt, completion = worst_case - limit, limit
        self.ledger.settle(reservation, prompt, completion, cached_prompt_tokens=reply.cached_prompt_tokens)
        self.ledger.note_answer()
        text = redact_secrets(reply.text)  # an endpoint echoing our key into its answer
        top = top_logprobs_of(reply.logprobs) if params.get("logprobs") else None
        forced = token_logprobs_of(reply.logprobs) if "grammar" in params else None
        if call is not None:
            call.end(text, prompt, completion, top_logprobs=top,
                     cached_prompt_tokens=reply.cached_prompt_tokens)
        result = CallResult(text=text, prompt_tokens=prompt, completion_tokens=completion,
                            attempts=attempt + 1, latency_s=time.monotonic() - started, top_logprobs=top,
                            token_logprobs=forced, call_id=reservation.call_id)
        self.cache_answer(key, result)
        return result
