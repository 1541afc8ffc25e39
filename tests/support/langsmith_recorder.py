"""A loopback LangSmith: the ingest endpoints the `langsmith` client uses, recording every run operation.

`with langsmith_recorder() as rec:` serves on 127.0.0.1 (a free port) and answers:

- `GET /info`: no zstd compression, multipart ingest on (what a current server advertises, minus
  compression so the bodies can be read);
- `POST /runs/multipart`: multipart/form-data with parts `post.ID`, `patch.ID` (the run without its
  large fields) and `post.ID.inputs|outputs|events|extra`, `patch.ID.outputs|…` (those fields);
- `POST /runs/batch`: `{"post": [...], "patch": [...]}` (the client's fallback);
- `POST /runs`, `PATCH /runs/ID`: the unbatched calls.

`rec.posts` / `rec.patches` map a run id to every create / update received for it (a duplicate shows
as a second entry); `rec.runs()` merges them into one dict per run; `rec.raw` is every body received,
for leak checks.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import gzip
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INFO = {"version": "0.10.0", "instance_flags": {"zstd_compression_enabled": False},
        "batch_ingest_config": {"use_multipart_endpoint": True, "size_limit": 100, "size_limit_bytes": 20_000_000,
                                "scale_up_nthreads_limit": 1, "scale_up_qsize_trigger": 1000,
                                "scale_down_nempty_trigger": 4}}


class Recorder:
    """What the loopback server received, grouped by run id."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.patches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.raw: list[bytes] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def add(self, operation: str, run: dict[str, Any]) -> None:
        with self.lock:
            (self.posts if operation == "post" else self.patches)[str(run["id"])].append(run)

    def runs(self) -> dict[str, dict[str, Any]]:
        """One dict per run: its (first) create, updated by its updates in order."""
        merged: dict[str, dict[str, Any]] = {}
        for run_id, created in self.posts.items():
            run = dict(created[0])
            for update in self.patches.get(run_id, []):
                run.update({k: v for k, v in update.items() if v is not None})
            merged[run_id] = run
        return merged

    def ingested(self, body: bytes, content_type: str) -> None:
        if content_type.startswith("multipart/"):
            self._multipart(body, content_type)
        else:
            payload = json.loads(body)
            for operation in ("post", "patch"):
                for run in payload.get(operation) or []:
                    self.add(operation, run)

    def _multipart(self, body: bytes, content_type: str) -> None:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        runs: dict[tuple[str, str], dict[str, Any]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            operation, run_id, *field = str(name).split(".")
            if operation not in ("post", "patch"):
                continue  # attachments, feedback
            run = runs.setdefault((operation, run_id), {"id": run_id})
            if field:
                run[field[0]] = json.loads(data)
            else:
                run.update(json.loads(data))
        for (operation, _), run in runs.items():
            self.add(operation, run)


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with recorder.lock:
                recorder.raw.append(body)
                recorder.paths.append(f"{self.command} {self.path}")
            return body

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/info"):
                self._reply(200, INFO)
            else:
                self._reply(404, {"detail": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            path = self.path.split("?")[0].rstrip("/")
            if path.endswith("/runs/multipart") or path.endswith("/runs/batch"):
                recorder.ingested(body, self.headers.get("Content-Type", ""))
            elif path.endswith("/runs"):
                recorder.add("post", json.loads(body))
            self._reply(200, {})

        def do_PATCH(self) -> None:
            body = self._body()
            run = json.loads(body)
            run.setdefault("id", self.path.rstrip("/").rsplit("/", 1)[-1])
            recorder.add("patch", run)
            self._reply(200, {})

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def langsmith_recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


def keyed_env(monkeypatch: Any, url: str, key: str = "ls-test-key-0123456789") -> None:
    """Point LangSmith tracing at `url`, keyed (LANGSMITH_* variables, as a user sets them)."""
    for name in ("LANGCHAIN_TRACING_V2", "LANGCHAIN_API_KEY", "LANGCHAIN_ENDPOINT", "LANGCHAIN_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", key)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    monkeypatch.setenv("LANGSMITH_PROJECT", "refinelab-test")
    from langsmith import utils as ls_utils

    ls_utils.get_env_var.cache_clear()  # langsmith caches environment lookups per process
