"""Helpers for the security suite: the CLI as a separate process, a loopback OpenAI-compatible endpoint
that can be scripted to answer, fail, stall or quote our credentials back, and small run fixtures.

Kept here (a plain module with a unique name) rather than in the product package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.scripted import respond  # the graph's scripted model: labels, answers, writes items

BIN = Path(sys.executable).parent
KEY_ENV = "SECURITY_TEST_API_KEY"
SECRET = "sk-sec-" + hashlib.sha256(b"refinelab-security-suite").hexdigest()[:40]


# ------------------------------------------------------------------------------------------ the CLI

def cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`refinelab ARGS` as its own process (the console script of this venv)."""
    return subprocess.run([str(BIN / "refinelab"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def start_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "refinelab"), *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: no traceback, exactly one line starting with 'error:'."""
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip() and "eta" not in line and "round" not in line]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


# ---------------------------------------------------------------------------------- fake endpoint

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def completion(content: str, model: str = "scripted") -> dict[str, Any]:
    tokens = max(1, len(content.encode()) // 4)
    return {"id": "chatcmpl-sec", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}}


GATE_TIMEOUT_S = 120.0  # a held answer is released as an error after this, so a failed test cannot hang

Behaviour = Callable[["Endpoint", dict[str, Any], dict[str, str]], tuple[int, bytes]]


def answer_ok(endpoint: Endpoint, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    messages = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "".join(p.get("text", "") for p in m["content"])} for m in body.get("messages", [])]
    if endpoint.delay_s:
        time.sleep(endpoint.delay_s)
    if not endpoint.gate.wait(timeout=GATE_TIMEOUT_S):
        return 503, b'{"error": "the test never opened the gate"}'
    return 200, json.dumps(completion(respond(messages))).encode()


class Endpoint:
    """A loopback OpenAI-compatible server; `behaviour` decides each answer and can be swapped live.

    `gate` is open unless a test clears it: `answer_ok` then holds every answer until the test sets it
    again, so "the client is still waiting on the model" is a state the test controls, not a race against
    a delay."""

    def __init__(self, behaviour: Behaviour = answer_ok, port: int = 0, delay_s: float = 0.0) -> None:
        self.behaviour = behaviour
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.requests = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with endpoint._lock:
                    endpoint.requests += 1
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                status, payload = endpoint.behaviour(endpoint, body, dict(self.headers.items()))
                if status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def endpoint(behaviour: Behaviour = answer_ok, port: int = 0, delay_s: float = 0.0) -> Iterator[Endpoint]:
    server = Endpoint(behaviour, port, delay_s)
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------------------ run fixtures

ITEMS = [
    {"id": f"s{i}", "question": f"Security suite question number {i}: which option is marked (key A)?",
     "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "answer": 0,
     "subject": ["history", "philosophy", "world_religions"][i % 3]}
    for i in range(6)
]


def write_dataset(path: Path, items: list[dict[str, Any]] | None = None) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items or ITEMS), encoding="utf-8")
    return path


def write_prompts(folder: Path) -> Path:
    """A user prompt folder making every pack validate with the answer check (no retrieval corpus or
    sandbox needed), so a whole CLI run takes seconds."""
    (folder / "packs").mkdir(parents=True, exist_ok=True)
    for pack in ("general", "science", "math", "law"):
        (folder / "packs" / f"{pack}.yaml").write_text(f"include: default\ndescription: {pack} (tests)\n"
                                                       f"validator: answer\n")
    return folder


def write_config(path: Path, url: str, runs: Path, **extra: Any) -> Path:
    spec = {"endpoint": url, "model": "scripted", "api_key_env": KEY_ENV, "timeout_s": extra.pop("timeout_s", 5),
            "max_transport_retries": extra.pop("transport_retries", 0), "max_parse_retries": 1, "concurrency": 2}
    config = {"roles": {"judge": dict(spec), "writer": dict(spec), "validator": dict(spec)},
              "runs_dir": str(runs), "use_cache": False,
              "max_consecutive_failures": extra.pop("failures", 4), **extra}
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINELAB_", "LANGSMITH", "LANGCHAIN"))}
    env.update({"HOME": str(tmp / "home"), "XDG_CACHE_HOME": str(tmp / "cache"), KEY_ENV: SECRET,
                "REFINELAB_MODEL_CACHE": str(tmp / "models"), "NO_COLOR": "1", "COLUMNS": "400"})
    (tmp / "home").mkdir(exist_ok=True)
    return env


def refine_args(data: Path, config: Path, prompts: Path, run_id: str, budget: int = 30_000,
                operations: str = "remove,calibrate,fix,rewrite_distractors") -> list[str]:
    return ["refine", str(data), "--budget", str(budget), "--config", str(config), "--prompts", str(prompts),
            "--run-id", run_id, "--operations", operations, "--rounds", "1", "--quiet"]


def statuses(run_dir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(run_dir / "store.sqlite")) as db:
        return dict(db.execute("SELECT id, status FROM items WHERE original IS NOT NULL").fetchall())


def ledger_figures(run_dir: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(run_dir / "ledger.sqlite")) as db:
        calls, spent = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status IN ('settled','failed') THEN prompt_tokens + "
            "completion_tokens WHEN status='abandoned' THEN reserved ELSE 0 END), 0) FROM calls").fetchone()
    return {"calls": int(calls), "spent": int(spent)}


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (names, links, bytes): to prove a failed command changed nothing."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@contextlib.contextmanager
def lock_holder(run_dir: Path, seconds: int = 120) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `run_dir`'s run lock until the block ends (or it is killed inside it)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from refinelab.api.run_lock import RunLock; "
        f"RunLock(Path({str(run_dir)!r})).acquire(); print('held', flush=True); time.sleep({seconds})")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
