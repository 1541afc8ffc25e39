"""Studio-runnable: `langgraph dev` (the in-memory server, on loopback) loads langgraph.json, and a tiny
dataset runs through the LangGraph SDK with its run context given as plain data — dataset path, budget,
endpoint and model — the way Studio's Context form gives it. The model is scripted, served on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.scripted import DATA, EXTRAS, respond

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "STUDIO_TEST_API_KEY"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ok(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"langgraph dev exited {server.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/ok", timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"langgraph dev did not answer on {url}: {log.read_text()[-3000:]}")


@pytest.fixture
def dev_server(tmp_path: Path):
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        cli = Path(shutil.which("langgraph") or "langgraph")
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false",
           KEY_ENV: "sk-studio", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    with log.open("wb") as sink:
        server = subprocess.Popen([str(cli), "dev", "--config", str(ROOT / "langgraph.json"), "--host", "127.0.0.1",
                                   "--port", str(port), "--no-browser", "--no-reload"],
                                  cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(url, server, log)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_sdk_run_on_the_dev_server(dev_server, tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    url, log = dev_server
    runs = tmp_path / "runs"
    with FaultProxy(respond) as model:
        client = get_sync_client(url=url)
        thread = client.threads.create()
        context = {"dataset": str(DATA / "mmlu" / "dev"), "limit": 6, "budget": 20_000, "runs_dir": str(runs),
                   "endpoint": model.url, "model": "scripted", "api_key_env": KEY_ENV,
                   "options": {**EXTRAS, "pilot_per_op": 0, "rounds": 1}}
        final = client.runs.wait(thread["thread_id"], "refinelab", input={"run_id": "studio-run"}, context=context,
                                 config={"recursion_limit": 1000})
        calls = model.counts["requests"]
    assert isinstance(final, dict) and final.get("phase") == "done", f"{final}\n{log.read_text()[-3000:]}"
    run_dir = runs / "studio-run"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run_id"] == "studio-run" and report["stop_reason"] == "finished 1 round(s)"
    assert report["ledger"]["spent"] > 0 and calls > 0  # the scripted model on loopback answered the run
    assert report["ledger"]["spent"] <= 20_000
    assert final["counts"].get("new", 0) == report["new_items"]
    assert final["counts"].get("edited", 0) == report["items_by_status"].get("edited", 0)
    assert (run_dir / "refined.jsonl").read_text().strip() and (run_dir / "settings.seal").exists()
    state = client.threads.get_state(thread["thread_id"])
    assert state["values"]["phase"] == "done" and not state["next"]


def test_a_run_without_context_fails_with_a_clear_message(dev_server) -> None:
    from langgraph_sdk import get_sync_client

    url, _log = dev_server
    client = get_sync_client(url=url)
    thread = client.threads.create()
    with pytest.raises(Exception, match="StudioRunError: this graph needs a run context"):  # noqa: PT011 - the SDK's
        client.runs.wait(thread["thread_id"], "refinelab", input={"run_id": "no-context"})  # own exception type


def test_review_interrupts_resume_through_the_sdk(dev_server, tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    from tests.support.review_scripted import undecided_respond

    url, log = dev_server
    runs = tmp_path / "runs"
    with FaultProxy(undecided_respond) as model:
        client = get_sync_client(url=url)
        thread = client.threads.create()
        context = {"dataset": str(DATA / "mmlu" / "dev"), "limit": 8, "budget": 40_000, "runs_dir": str(runs),
                   "endpoint": model.url, "model": "scripted", "api_key_env": KEY_ENV,
                   "options": {**EXTRAS, "pilot_per_op": 0, "operations": ["expand", "generate"],
                               "review": "ask", "rounds": 1, "max_attempts": 1}}
        client.runs.wait(thread["thread_id"], "refinelab", input={"run_id": "studio-review"}, context=context,
                         config={"recursion_limit": 1000})
        state = client.threads.get_state(thread["thread_id"])
        interrupts = state["interrupts"]
        assert interrupts, f"{state}\n{log.read_text()[-3000:]}"
        assert all(i["value"]["kind"] == "undecided" for i in interrupts)
        resume = {i["id"]: {"decision": "accept", "by": "studio-user"} for i in interrupts}
        final = client.runs.wait(thread["thread_id"], "refinelab", command={"resume": resume}, context=context,
                                 config={"recursion_limit": 1000})
    assert final.get("phase") == "done", f"{final}\n{log.read_text()[-3000:]}"
    report = json.loads((runs / "studio-review" / "report.json").read_text())
    assert report["reviews"] == {"undecided:accept": len(interrupts)}
    changes = [json.loads(line) for line in (runs / "studio-review" / "changes.jsonl").read_text().splitlines()]
    assert sum(1 for c in changes if c.get("review", {}).get("by") == "studio-user") == len(interrupts)
