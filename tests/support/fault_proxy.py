"""A fault-injecting OpenAI-compatible proxy on loopback, for reliability tests.

Why: retries, parse re-asks, the ledger and the graph's failure routing are only trustworthy if they
have been exercised against a provider that misbehaves the way real ones do. The proxy sits between a
run's roles (`ModelSpec(endpoint=proxy.url)`) and an upstream, which is either a real OpenAI-compatible
server (the embedded llama.cpp server) or a built-in scripted upstream answering from a Python
function. For each `/v1/chat/completions` request it either forwards, or injects one fault:

- ``429`` / ``500``: a status answer with an OpenAI-style error body (nothing generated, nothing billed);
- ``timeout``: holds the request past the client's timeout (the provider may have billed it);
- ``truncated``: a 200 whose body stops half way (Content-Length promises more);
- ``malformed``: a 200 whose body is not JSON;
- ``wrong_schema``: a valid chat completion whose content does not match the requested JSON schema.

Decisions come from a seeded hash of (seed, request body, how often this exact body was seen), so a
run's fault pattern does not depend on thread scheduling. Everything injected or forwarded is counted,
and the usage the proxy reported for answers it billed is summed (what a provider would charge).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("429", "500", "timeout", "truncated", "malformed", "wrong_schema")
Responder = Callable[[list[dict[str, str]]], str]


def approx_tokens(text: str) -> int:
    """Usage the scripted upstream reports: ~4 bytes a token (never above the client's byte bound)."""
    return max(1, len(text.encode()) // 4)


@dataclass
class FaultPlan:
    """Per-request probabilities of each fault kind (their sum is the total fault rate, at most 1)."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    timeout_sleep_s: float = 1.5  # how long a 'timeout' holds the request; set above the client timeout

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1, got {self.rates}")

    @classmethod
    def uniform(cls, total: float, seed: int = 0, kinds: tuple[str, ...] = FAULT_KINDS,
                timeout_sleep_s: float = 1.5) -> FaultPlan:
        """`total` fault rate split evenly over `kinds`."""
        return cls({k: total / len(kinds) for k in kinds}, seed=seed, timeout_sleep_s=timeout_sleep_s)

    def decide(self, body: bytes, occurrence: int) -> str | None:
        """The fault for the `occurrence`-th sighting of this request body, or None to forward."""
        digest = hashlib.sha256(f"{self.seed}:{occurrence}:".encode() + body).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates.get(kind, 0.0)
            if draw < edge:
                return kind
        return None


def completion(content: str, model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A chat.completion object as OpenAI-compatible servers return it."""
    return {
        "id": f"chatcmpl-{hashlib.sha1(content.encode()).hexdigest()[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


class FaultProxy:
    """The proxy server. Use as a context manager, or `start()` / `stop()`; `url` is the /v1 base."""

    def __init__(self, upstream: str | Responder, plan: FaultPlan | None = None, *, record_bodies: bool = False,
                 port: int = 0) -> None:
        self.upstream = upstream
        self.port = port  # 0: any free port; a fixed one lets a stopped run be resumed at the same URL
        self.plan = plan or FaultPlan()
        self.record_bodies = record_bodies
        self.counts: Counter[str] = Counter()  # fault kinds, plus 'forwarded' and 'requests'
        self.billed_tokens = 0  # usage reported in answers the proxy delivered whole
        self.bodies: list[dict[str, Any]] = []  # request bodies (when record_bodies)
        self.headers: list[dict[str, str]] = []
        self._seen: Counter[bytes] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held for a 'timeout' are released at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def injected(self) -> dict[str, int]:
        return {k: self.counts.get(k, 0) for k in FAULT_KINDS}

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    # -- request handling -------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(handler.path).path
        if handler.command != "POST" or not path.endswith("/chat/completions"):
            if isinstance(self.upstream, str):
                self._forward(handler, body, path)
            else:
                self._send(handler, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._send(handler, 400, {"error": {"message": "request body is not JSON", "type": "invalid_request"}})
            return
        with self._lock:
            self._seen[body] += 1
            occurrence = self._seen[body]
            self.counts["requests"] += 1
            if self.record_bodies:
                self.bodies.append(request)
                self.headers.append(dict(handler.headers.items()))
        fault = self.plan.decide(body, occurrence)
        with self._lock:
            self.counts[fault or "forwarded"] += 1
        if fault is None:
            if isinstance(self.upstream, str):
                self._forward(handler, body, path)
            else:
                self._scripted(handler, request)
            return
        self._inject(handler, fault, request)

    def _inject(self, handler: BaseHTTPRequestHandler, fault: str, request: dict[str, Any]) -> None:
        if fault == "429":
            self._send(handler, 429, {"error": {"message": "Rate limit reached (injected)", "type": "rate_limit"}},
                       extra_headers={"Retry-After": "0"})
        elif fault == "500":
            self._send(handler, 500, {"error": {"message": "Internal server error (injected)", "type": "server_error"}})
        elif fault == "timeout":
            self._stopping.wait(self.plan.timeout_sleep_s)
            self._send(handler, 504, {"error": {"message": "too late (injected timeout)", "type": "timeout"}})
        elif fault == "truncated":
            full = json.dumps(completion('{"answer": "A"}', str(request.get("model", "")), 10, 5)).encode()
            self._raw(handler, 200, full[: len(full) // 2], content_length=len(full), close=True)
        elif fault == "malformed":
            self._raw(handler, 200, b'{"id": "chatcmpl-x", "choices": [ {"message": oops', close=True)
        elif fault == "wrong_schema":
            content = json.dumps({"injected_fault": "this object does not match the requested schema"})
            messages = request.get("messages", [])
            prompt = sum(approx_tokens(_text_of(m.get("content", ""))) for m in messages)
            answer = completion(content, str(request.get("model", "")), prompt, approx_tokens(content))
            self._bill(answer)
            self._send(handler, 200, answer)

    def _scripted(self, handler: BaseHTTPRequestHandler, request: dict[str, Any]) -> None:
        assert callable(self.upstream)
        messages = [{"role": m.get("role", "user"), "content": _text_of(m.get("content", ""))}
                    for m in request.get("messages", [])]
        try:
            content = self.upstream(messages)
        except Exception as exc:  # a responder bug shows up as a 500 the test can see
            self._send(handler, 500, {"error": {"message": f"scripted upstream failed: {exc}", "type": "server_error"}})
            return
        prompt = sum(approx_tokens(m["content"]) for m in messages)
        answer = completion(content, str(request.get("model", "")), prompt, approx_tokens(content))
        self._bill(answer)
        self._send(handler, 200, answer)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes, path: str) -> None:
        assert isinstance(self.upstream, str)
        base = urllib.parse.urlsplit(self.upstream)
        upstream_path = base.path.rstrip("/") + path.removeprefix("/v1") if path.startswith("/v1") else path
        conn = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port or 80, timeout=600)
        try:
            headers = {"Content-Type": "application/json"}
            auth = handler.headers.get("Authorization")
            if auth:
                headers["Authorization"] = auth
            conn.request(handler.command, upstream_path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except OSError as exc:
            self._send(handler, 502, {"error": {"message": f"upstream unreachable: {exc}", "type": "bad_gateway"}})
            return
        finally:
            conn.close()
        if status == 200 and path.endswith("/chat/completions"):
            with contextlib.suppress(json.JSONDecodeError, TypeError):
                self._bill(json.loads(data))
        self._raw(handler, status, data)

    # -- low-level writers -------------------------------------------------------------------
    def _bill(self, answer: dict[str, Any]) -> None:
        usage = answer.get("usage") or {}
        with self._lock:
            self.billed_tokens += int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              extra_headers: dict[str, str] | None = None) -> None:
        self._raw(handler, status, json.dumps(payload).encode(), extra_headers=extra_headers)

    def _raw(self, handler: BaseHTTPRequestHandler, status: int, data: bytes, *, content_length: int | None = None,
             close: bool = False, extra_headers: dict[str, str] | None = None) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(content_length if content_length is not None else len(data)))
            for key, value in (extra_headers or {}).items():
                handler.send_header(key, value)
            if close:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. after its timeout)
            handler.close_connection = True
