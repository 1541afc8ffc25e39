"""With LangSmith's environment variables set, runs also go to LangSmith: point the real client at a
loopback HTTP endpoint that records what it receives."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from refinelab.agents.options import RunHooks
from refinelab.api import refine
from refinelab.config import load_settings
from refinelab.io import load_dataset
from refinelab.tools.tracing import read_trace
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


class Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def _reply(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # /info: advertise no batch features so the client uses plain endpoints
        self._reply(200, {"version": "0.0", "batch_ingest_config": {"size_limit": 100, "size_limit_bytes": 20_000_000,
                                                                   "scale_up_nthreads_limit": 1, "scale_up_qsize_trigger": 1000,
                                                                   "scale_down_nempty_trigger": 4}})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Recorder.bodies.append(self.path.encode() + b" " + body)
        self._reply(200, {})

    do_PATCH = do_POST
    do_PUT = do_POST

    def log_message(self, *args: object) -> None:
        pass


def test_runs_are_sent_to_langsmith_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LANGSMITH_PROJECT", "refinelab-test")
    Recorder.bodies = []
    dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=4)
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "use_cache": False, "rounds": 1})
    result = refine(dataset, budget=5_000, settings=settings, hooks=RunHooks(chat_models=models()), options={**EXTRAS, "operations": ["remove"]})
    server.shutdown()
    received = b"\n".join(Recorder.bodies)
    runs = read_trace(result.run_dir / "trace.jsonl")
    assert runs
    sent = [r for r in runs if r["id"].encode() in received]
    assert len(sent) == len(runs), f"{len(sent)} of {len(runs)} runs reached the endpoint"
    assert b"refinelab.run" in received and b"llm" in received
