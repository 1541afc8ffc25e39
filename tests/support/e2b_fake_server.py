"""Loopback fake of E2B's control plane + code interpreter, backed by the LOCAL sandbox.

Lets the real ``e2b-code-interpreter`` client run offline in tests and benchmarks. It speaks the
subset of the wire protocol the client uses (docs/sandbox.md):

* ``POST /v2/sandboxes`` -> 201 with an envd access token; ``DELETE /sandboxes/{id}`` -> 204
* ``GET /health`` -> 204
* ``POST /execute`` -> NDJSON (stdout, stderr, result, error, number_of_executions), checking
  ``X-Access-Token`` for created sandboxes
* ``POST /contexts``, ``DELETE /contexts/{id}`` (contexts are ids only: the local backend is
  stateless per snippet anyway)

Point the client at it with ``api_url=server.url, sandbox_url=server.url, api_key="anything"``
(full path) or ``debug=True, sandbox_url=server.url`` (debug path: sandbox id
``debug_sandbox_id``, no create/kill calls). TCP_NODELAY is on: without it every call pays the
Nagle + delayed-ACK penalty (~40 ms). Requests are serialised per sandbox, one snippet at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from refinelab.tools.sandbox_base import MIB, CodeSandbox, ExecResult, SandboxLimits

DEBUG_SANDBOX_ID = "debug_sandbox_id"


def default_backend() -> CodeSandbox:
    """Warm local sandbox with a generous output cap (the E2B client side applies the real one)
    and a long wall clock (E2B's timeout is client side; kill/recreate ends a runaway snippet)."""
    from refinelab.tools.sandbox_local import LocalSandbox

    return LocalSandbox(SandboxLimits(timeout_s=60.0, output_bytes=MIB), mode="warm", workers=1)


class _Sandbox:
    def __init__(self, backend: CodeSandbox, token: str | None) -> None:
        self.backend = backend
        self.token = token
        self.lock = threading.Lock()
        self.executions = 0


def to_ndjson(res: ExecResult, execution_count: int) -> bytes:
    """One ExecResult as the code interpreter's NDJSON stream."""
    ts = datetime.now(UTC).isoformat()
    lines: list[dict[str, Any]] = []
    if res.stdout:
        lines.append({"type": "stdout", "text": res.stdout, "timestamp": ts})
    if res.stderr:
        lines.append({"type": "stderr", "text": res.stderr, "timestamp": ts})
    if res.result_text is not None:
        lines.append({"type": "result", "text": res.result_text, "is_main_result": True})
    if res.error is not None:
        err = res.error
        lines.append({"type": "error", "name": err.name, "value": err.value, "traceback": err.traceback})
    elif res.timed_out:
        lines.append({"type": "error", "name": "TimeoutError", "value": "execution timed out", "traceback": ""})
    elif res.exit_code not in (0, None):
        lines.append({"type": "error", "name": "SandboxExit", "value": f"exit code {res.exit_code}", "traceback": ""})
    lines.append({"type": "number_of_executions", "execution_count": execution_count})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


class FakeE2BServer:
    """Threaded loopback server; use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        backend_factory: Callable[[], CodeSandbox] = default_backend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        exec_timeout_s: float | None = None,
    ) -> None:
        self.backend_factory = backend_factory
        self.exec_timeout_s = exec_timeout_s
        self.sandboxes: dict[str, _Sandbox] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path) log, for tests
        self._ids = itertools.count(1)
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeE2BServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-e2b", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            boxes, self.sandboxes = list(self.sandboxes.values()), {}
        for box in boxes:
            box.backend.close()

    def __enter__(self) -> FakeE2BServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state --
    def create(self) -> tuple[str, str]:
        sid = f"fake{next(self._ids):04d}{secrets.token_hex(4)}"
        token = secrets.token_hex(16)
        box = _Sandbox(self.backend_factory(), token)
        with self.lock:
            self.sandboxes[sid] = box
        return sid, token

    def kill(self, sid: str) -> bool:
        with self.lock:
            box = self.sandboxes.pop(sid, None)
        if box is None:
            return False
        box.backend.close()  # also ends a snippet still running there
        return True

    def get(self, sid: str) -> _Sandbox | None:
        with self.lock:
            if sid == DEBUG_SANDBOX_ID and sid not in self.sandboxes:
                self.sandboxes[sid] = _Sandbox(self.backend_factory(), None)
            return self.sandboxes.get(sid)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # TCP_NODELAY: ~40 ms per call without it

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    data = json.loads(raw or b"{}")
                except ValueError:
                    data = {}
                return data if isinstance(data, dict) else {}

            def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
                    self.send_response(status)
                    if body:
                        self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj).encode())

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                server.requests.append(("GET", self.path))
                if self.path.split("?")[0] == "/health":
                    self._send(204)
                else:
                    self._json(404, {"message": f"not found: {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                server.requests.append(("POST", self.path))
                body = self._body()
                path = self.path.split("?")[0]
                if path == "/v2/sandboxes":
                    if not self.headers.get("X-API-KEY"):
                        self._json(401, {"message": "missing API key"})
                        return
                    sid, token = server.create()
                    self._json(201, {"templateID": body.get("templateID", "code-interpreter-v1"),
                                     "sandboxID": sid, "clientID": "fake", "envdVersion": "0.4.0",
                                     "envdAccessToken": token, "domain": None})  # fmt: skip
                elif path == "/contexts":
                    self._json(200, {"id": secrets.token_hex(8), "language": body.get("language") or "python",
                                     "cwd": body.get("cwd") or "/tmp/work"})  # fmt: skip
                elif path == "/execute":
                    self._execute(body)
                else:
                    self._json(404, {"message": f"not found: {self.path}"})

            def do_DELETE(self) -> None:  # noqa: N802
                server.requests.append(("DELETE", self.path))
                m = re.fullmatch(r"/sandboxes/([^/?]+)", self.path)
                if m:
                    self._send(204 if server.kill(m.group(1)) else 404)
                elif re.fullmatch(r"/contexts/[^/?]+", self.path):
                    self._send(204)
                else:
                    self._json(404, {"message": f"not found: {self.path}"})

            def _execute(self, body: dict[str, Any]) -> None:
                box = server.get(self.headers.get("E2b-Sandbox-Id", ""))
                if box is None:
                    self._json(404, {"message": "sandbox not found"})
                    return
                if box.token is not None and self.headers.get("X-Access-Token") != box.token:
                    self._json(401, {"message": "bad access token"})
                    return
                with box.lock:
                    try:
                        res = box.backend.execute(str(body.get("code", "")), timeout_s=server.exec_timeout_s)
                    except Exception as exc:  # noqa: BLE001 - sandbox killed under us (DELETE)
                        self._json(502, {"message": f"sandbox error: {exc}"})
                        return
                    box.executions += 1
                    payload = to_ndjson(res, box.executions)
                self._send(200, payload, "application/x-ndjson")

        return Handler
