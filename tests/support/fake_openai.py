"""A fast loopback OpenAI-compatible chat server for fleet tests and the scale bench (never shipped).

Why: routing, ejection and the scale figures need many servers with a known latency, throughput and
error rate, and one that can be killed mid-run. Each `FakeServer` answers `POST /v1/chat/completions`
from a responder function after `latency + completion_tokens / tokens_per_s` seconds (latency drawn
from a log-normal around `latency_s`), answers `429` at `rate_429`, and serves `GET /v1/models`.
`kill()` drops it like a crashed process: the port stops accepting and every open connection is cut.
It counts requests, answers delivered and the usage it billed for them (`GET /stats`).

`python -m tests.support.fake_openai --count 4 --latency 0.5 …` serves a fleet from a separate process
(so the servers do not share the client's interpreter) and prints their URLs as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[list[dict[str, Any]]], str]


def approx_tokens(text: str) -> int:
    """Usage the fake reports: ~4 bytes a token (never above the client's byte bound)."""
    return max(1, len(text.encode()) // 4)


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The prompt usage the fake reports (and counts on /tokenize): content tokens plus 4 per message."""
    return sum(approx_tokens(str(m.get("content", ""))) + 4 for m in messages)


def echo_letter(messages: list[dict[str, Any]]) -> str:
    """Default responder: a JSON answer naming the last word of the prompt (checkable per call)."""
    last = str(messages[-1].get("content", "")).split()[-1] if messages else ""
    return json.dumps({"answer": last})


def chat_completion(content: str, model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{random.getrandbits(48):x}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _logprobs_block(content: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The responder's logprobs block for a request that asked for logprobs (None otherwise, or when the
    responder answered plain text), keeping `top_logprobs` alternatives."""
    if not request.get("logprobs"):
        return None
    try:
        block = json.loads(content)
    except ValueError:
        return None
    entries = block.get("content") if isinstance(block, dict) else None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        return None
    top = int(request.get("top_logprobs") or 0)
    first = dict(entries[0])
    first["top_logprobs"] = list(first.get("top_logprobs") or [])[:top]
    return {"content": [first]}


@dataclass
class ServerProfile:
    """How a fake server behaves: latency per request, generation speed, share of 429 answers."""

    latency_s: float = 0.0  # median fixed latency per request
    latency_sigma: float = 0.0  # log-normal spread of the latency (0 = constant)
    tokens_per_s: float = 0.0  # generation speed; 0 = instant
    rate_429: float = 0.0
    seed: int = 0
    tokenize: bool = False  # serve vLLM's `POST /tokenize {"messages"}` -> {"count"} (the usage it reports)
    slots: int = 0  # requests served at once (like vLLM's max_num_seqs); more wait, unbilled; 0 = unlimited


@dataclass
class Counters:
    requests: int = 0
    answered: int = 0
    rejected_429: int = 0
    billed_tokens: int = 0
    busy_s: float = 0.0  # summed time spent serving answered requests (latency the client waited)
    peak_in_flight: int = 0
    in_flight: int = 0
    counted: int = 0  # /tokenize requests answered


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    owner: FakeServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms on Linux), which added that much to every answer and showed up as fleet "inefficiency".
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        self.server.owner.track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner.untrack(self.connection)

    def _send(self, code: int, payload: dict[str, Any] | bytes, content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        try:
            self.server.owner.route(self, "GET", b"")
        except OSError:
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        try:
            self.server.owner.route(self, "POST", self._body())
        except OSError:  # the server was killed under this request
            self.close_connection = True


@dataclass
class FakeServer:
    """One fake OpenAI-compatible server on 127.0.0.1. Context manager, or start()/kill()/stop()."""

    responder: Responder = echo_letter
    profile: ServerProfile = field(default_factory=ServerProfile)
    port: int = 0
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.profile.seed)
        self._slots = threading.BoundedSemaphore(self.profile.slots) if self.profile.slots else None
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.killed = False

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeServer:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None and not self.killed:
            self._server.shutdown()
            self._server.server_close()
        self.killed = True

    def kill(self) -> None:
        """Die like a crashed process: stop accepting, then cut every open connection."""
        assert self._server is not None
        self.killed = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass

    def track(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    # -- routes -----------------------------------------------------------------------------
    def route(self, handler: _Handler, method: str, body: bytes) -> None:
        path = handler.path.split("?")[0].rstrip("/")
        if method == "GET" and path in ("/v1/models", "/health"):
            handler._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        elif method == "GET" and path == "/stats":  # the bench reads a child process's counters here
            with self._lock:
                handler._send(200, dict(self.counters.__dict__))
        elif method == "POST" and path == "/v1/chat/completions":
            self.chat(handler, json.loads(body or b"{}"))
        elif method == "POST" and path == "/tokenize" and self.profile.tokenize:
            messages = json.loads(body or b"{}").get("messages") or []
            with self._lock:
                self.counters.counted += 1
            handler._send(200, {"count": prompt_tokens(messages)})
        else:
            handler._send(404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The chat.completion for one request body (no waiting): the responder's text and its usage.

        For a logprobs request the responder returns the OpenAI `logprobs` block as JSON (as for the
        scripted model, `tests/support/scripted_model.logprobs_block`): the reply is its first token, one
        completion token, and `choices[0].logprobs` carries the block cut to `top_logprobs` alternatives,
        as a real server sends it (the live route and the fake Batch API's result lines alike)."""
        messages = request.get("messages") or []
        content = self.responder(messages)
        block = _logprobs_block(content, request)
        if block is not None:
            content = str(block["content"][0].get("token", ""))
        prompt = prompt_tokens(messages)
        completion = 1 if block is not None else approx_tokens(content)
        limit = request.get("max_tokens") or request.get("max_completion_tokens")
        if limit:
            completion = min(completion, int(limit))
        body = chat_completion(content, str(request.get("model", "fake")), prompt, completion)
        if block is not None:
            body["choices"][0]["logprobs"] = block
        return body

    def delay_for(self, completion_tokens: int) -> float:
        profile = self.profile
        with self._lock:
            jitter = math.exp(self._rng.gauss(0.0, profile.latency_sigma)) if profile.latency_sigma else 1.0
        delay = profile.latency_s * jitter
        if profile.tokens_per_s:
            delay += completion_tokens / profile.tokens_per_s
        return delay

    def chat(self, handler: _Handler, request: dict[str, Any]) -> None:
        with self._lock:
            self.counters.requests += 1
            busy = self._rng.random() < self.profile.rate_429
            if busy:
                self.counters.rejected_429 += 1
        if busy:
            handler._send(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}})
            return
        completion = self.answer(request)
        usage = completion["usage"]
        delay = self.delay_for(usage["completion_tokens"])
        if self._slots is not None:  # queue for a slot, as a real server does; waiting is not service time
            self._slots.acquire()
        with self._lock:
            self.counters.in_flight += 1
            self.counters.peak_in_flight = max(self.counters.peak_in_flight, self.counters.in_flight)
        try:
            if delay:
                time.sleep(delay)
            if self.killed:
                raise ConnectionAbortedError("killed")
            handler._send(200, completion)
            with self._lock:
                self.counters.answered += 1
                self.counters.billed_tokens += usage["total_tokens"]
                self.counters.busy_s += delay
        finally:
            with self._lock:
                self.counters.in_flight -= 1
            if self._slots is not None:
                self._slots.release()


def scripted(messages: list[dict[str, Any]]) -> str:
    """The scripted model of tests/support/scripted.py: labels, answers, writes items (a whole run)."""
    from tests.support.scripted import respond

    return respond([{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in messages])


def main(argv: list[str] | None = None) -> None:
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description="serve a loopback fleet of fake OpenAI-compatible servers")
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--sigma", type=float, default=0.0)
    parser.add_argument("--tps", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--responder", choices=["echo", "scripted"], default="scripted")
    parser.add_argument("--slots", type=int, default=0, help="requests each server serves at once (0: unlimited)")
    args = parser.parse_args(argv)
    responder = scripted if args.responder == "scripted" else echo_letter
    servers = [FakeServer(responder=responder, profile=ServerProfile(
        latency_s=args.latency, latency_sigma=args.sigma, tokens_per_s=args.tps, rate_429=args.rate_429, seed=i,
        slots=args.slots)).start()
        for i in range(args.count)]
    print(json.dumps([s.url for s in servers]), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
