"""One run tree per run, through LangChain's tracer stack: trace.jsonl and LangSmith get the same tree,
once, with every model call under its node and edit, and its tokens equal to the ledger's.

LangSmith is a loopback recorder of the ingest endpoints the real `langsmith` client calls
(tests/support/langsmith_recorder.py); the graph runs on the scripted model."""

from __future__ import annotations

import contextvars
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from refinelab.agents.options import RunHooks
from refinelab.api import refine
from refinelab.cli.trace_view import render_tree
from refinelab.config import load_settings
from refinelab.io import load_dataset
from refinelab.tools.ledger import Ledger
from refinelab.tools.tracing import Tracer, read_trace
from tests.support.langsmith_recorder import keyed_env, langsmith_recorder
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _refine(tmp_path: Path, items: int = 8, **options: Any) -> Any:
    dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=items)
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "use_cache": False})
    return refine(dataset, budget=30_000, settings=settings, hooks=RunHooks(chat_models=models()),
                  options={**EXTRAS, "rounds": 1, **options})


def _ledger_spent(run_dir: Path) -> int:
    ledger = Ledger(run_dir / "ledger.sqlite")
    try:
        return ledger.spent
    finally:
        ledger.close()


def _sent_tokens(run: dict[str, Any]) -> int:
    """Tokens of an LLM run as LangSmith reads them: the usage on the generated message."""
    message = run["outputs"]["generations"][0][0]["message"]
    return int(message["kwargs"]["usage_metadata"]["total_tokens"])


def _assert_one_tree(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    roots = [r for r in runs.values() if not r.get("parent_run_id")]
    assert len(roots) == 1, [r["name"] for r in roots]
    root = roots[0]
    orphans = [r["name"] for r in runs.values() if r.get("parent_run_id") and r["parent_run_id"] not in runs]
    assert orphans == []
    assert {str(r["trace_id"]) for r in runs.values()} == {str(root["id"])}
    return root


def test_langsmith_receives_exactly_the_run_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with langsmith_recorder() as rec:
        keyed_env(monkeypatch, rec.url)
        result = _refine(tmp_path)
    local = {r["id"]: r for r in read_trace(result.run_dir / "trace.jsonl")}
    sent = rec.runs()
    # the same runs, each created once and ended once: no duplicates, no stray roots from LangChain's
    # own tracer or from the chat model's callbacks
    assert set(sent) == set(local) and len(local) > 50
    assert [i for i, posts in rec.posts.items() if len(posts) != 1] == []
    # ended once: by its update, or in its create when the client merged the two before sending
    assert [i for i in sent if len(rec.patches.get(i, [])) + bool(rec.posts[i][0].get("end_time")) != 1] == []
    assert {i: str(r.get("parent_run_id") or "") for i, r in sent.items()} == \
           {i: r["parent_run_id"] or "" for i, r in local.items()}
    root = _assert_one_tree(sent)
    assert root["name"] == "refinelab.run" and _assert_one_tree(local)["id"] == root["id"]
    assert {r["run_type"] for r in sent.values()} >= {"chain", "llm", "tool"}

    # every model call nests under its graph node, through its edit where it belongs to one
    names = {i: r["name"] for i, r in local.items()}
    llm = [r for r in local.values() if r["run_type"] == "llm"]
    assert llm
    edit_calls = [r for r in llm if r["metadata"].get("node") in ("refine", "validate")]
    assert edit_calls
    for call in edit_calls:
        edit = local[call["parent_run_id"]]
        node = local[edit["parent_run_id"]]
        assert edit["name"] == edit["metadata"]["edit_id"] and edit["name"].startswith(("r0-", "r1-"))
        assert node["name"] in ("refine", "validate") and node["metadata"]["langgraph_node"] == node["name"]
        assert names[node["parent_run_id"]] == "refinelab"  # the LangGraph graph run
    for call in llm:  # the rest: under profile, collect (replan) — never directly under the root
        assert local[call["parent_run_id"]]["name"] != "refinelab.run"

    # tokens in the tree (both copies) equal what the ledger charged
    spent = _ledger_spent(result.run_dir)
    assert spent == result.spent > 0
    assert sum(r["usage"]["total_tokens"] for r in llm) == spent
    assert sum(_sent_tokens(r) for r in sent.values() if r["run_type"] == "llm") == spent
    # the viewer reads the new file: one root, the ledger's total; the CLI prints it
    header = render_tree(result.run_dir / "trace.jsonl").label
    assert f"{len(local)} runs, {spent} tokens" in str(header)
    from typer.testing import CliRunner

    from refinelab.cli.app import app

    shown = CliRunner().invoke(app, ["trace", result.run_id, "--runs-dir", str(result.run_dir.parent), "--depth", "5"])
    assert shown.exit_code == 0, shown.output
    assert "refinelab.run" in shown.output and "judge:" in shown.output and f"{spent} tokens" in shown.output


def test_tracing_flag_without_a_key_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LangChain would add its own (unkeyed) tracer from the flag alone; the run keeps it out."""
    with langsmith_recorder() as rec:
        keyed_env(monkeypatch, rec.url)
        monkeypatch.delenv("LANGSMITH_API_KEY")
        result = _refine(tmp_path, items=4, operations=["remove"])
    assert rec.paths == []
    runs = {r["id"]: r for r in read_trace(result.run_dir / "trace.jsonl")}
    assert _assert_one_tree(runs)["name"] == "refinelab.run"


_NEVER_CLOSED: list[Any] = []
_DEAD = contextvars.Context()
_DEAD_TRACERS: list[Tracer] = []


def _killed_process(path: Path) -> tuple[str, str]:
    """A process that opened the root and a node, then died: their start records only."""

    def run() -> tuple[str, str]:
        tracer = Tracer(path)
        spans = [tracer.span("refinelab.run", "chain", {"run_id": "r"}), tracer.span("profile", "chain", {})]
        root, node = (span.__enter__() for span in spans)
        _NEVER_CLOSED.extend(spans)  # a dead process runs no cleanup: keep them from being collected
        _DEAD_TRACERS.append(tracer)
        tracer.flush()
        return root.id, node.id

    return _DEAD.run(run)  # its open spans stay in that context, as in a dead process


def test_a_resumed_process_continues_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trace.jsonl"
    with langsmith_recorder() as rec:
        keyed_env(monkeypatch, rec.url)
        root_id, node_id = _killed_process(path)
        tracer = Tracer(path)  # the resuming process
        assert tracer.trace_id == root_id
        with tracer.span("refinelab.run", "chain", {"resumed": True}) as resumed, \
                tracer.span("r1-fix-q1", "chain", {"edit_id": "r1-fix-q1"}):
            call = tracer.llm_call("writer:m", [{"role": "user", "content": "hi"}], model="m",
                                   invocation_params={"model": "m"}, metadata={"node": "refine"})
            call.end("hello", 5, 2)
        tracer.flush()
        runs = {r["id"]: r for r in read_trace(path)}
        sent = rec.runs()
        # let the dead process's spans go while the recorder still answers (a real one never ends them)
        _DEAD.run(lambda: [span.__exit__(None, None, None) for span in reversed(_NEVER_CLOSED)])
        _DEAD_TRACERS[0].flush()
    assert _assert_one_tree(runs)["id"] == root_id
    assert runs[resumed.id]["parent_run_id"] == root_id
    assert runs[node_id]["end_time"] is None and runs[resumed.id]["end_time"] is not None
    assert [r["usage"]["total_tokens"] for r in runs.values() if r["run_type"] == "llm"] == [7]
    assert set(sent) == set(runs)
    assert sent[resumed.id]["parent_run_id"] == root_id and str(sent[resumed.id]["trace_id"]) == root_id
    assert sent[resumed.id]["dotted_order"].startswith(sent[root_id]["dotted_order"] + ".")
    assert not sent[root_id].get("end_time")  # never ended: it died
    assert sent[resumed.id]["dotted_order"] == runs[resumed.id]["dotted_order"]  # same stamps in both


def test_runs_in_threads_without_the_context_stay_in_the_tree(tmp_path: Path) -> None:
    """A span opened where the LangChain context did not travel (a bare thread) joins the root."""
    import threading

    tracer = Tracer(tmp_path / "trace.jsonl")
    with tracer.span("refinelab.run", "chain", {}):
        thread_ids: list[str] = []

        def work() -> None:
            with tracer.span("stray", "tool", {"x": 1}) as span:
                span.outputs = {"ok": True}
                thread_ids.append(span.id)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    runs = {r["id"]: r for r in read_trace(tmp_path / "trace.jsonl")}
    root = _assert_one_tree(runs)
    assert runs[thread_ids[0]]["parent_run_id"] == root["id"] and runs[thread_ids[0]]["outputs"] == {"ok": True}
    assert Counter(r["name"] for r in runs.values()) == {"refinelab.run": 1, "stray": 1}


def test_finished_runs_leave_nothing_in_the_tracers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LangChain keeps every run's (trace id, dotted order) in `order_map` for the tracer's life: ~6 KB per
    edit, most of a 100k-item run's growth. Finished runs are dropped; the root stays (later top-level
    spans are parented to it), and a span after the root has ended still joins the same tree."""
    with langsmith_recorder() as rec:
        keyed_env(monkeypatch, rec.url)
        tracer = Tracer(tmp_path / "trace.jsonl")
        with tracer.span("refinelab.run", "chain", {}) as root:
            for k in range(20):
                with tracer.span(f"r1-fix-q{k}", "chain", {"k": k}):
                    call = tracer.llm_call("writer:m", [{"role": "user", "content": "hi"}], model="m",
                                           invocation_params={"model": "m"}, metadata={})
                    call.end("hello", 5, 2)
        with tracer.span("later", "chain", {}) as later:
            pass
        tracer.flush()
        sent = rec.runs()
    assert len(tracer.handlers) == 2
    for handler in tracer.handlers:
        assert set(handler.order_map) == {uuid.UUID(root.id)}  # type: ignore[attr-defined]
        assert not handler.run_map  # type: ignore[attr-defined]
    runs = {r["id"]: r for r in read_trace(tmp_path / "trace.jsonl")}
    assert len(runs) == 42 and _assert_one_tree(runs)["id"] == root.id
    assert runs[later.id]["parent_run_id"] == root.id and set(sent) == set(runs)


def test_llm_runs_carry_what_the_ledger_charged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timed-out request (charged its reservation), a bad parse, an answer and a cache hit: one LLM run
    each, under the caller's run, whose tokens add up to the ledger's."""
    import httpx
    import openai
    from pydantic import BaseModel

    from refinelab.config import ModelSpec
    from refinelab.tools.cache import ResponseCache
    from refinelab.tools.ledger import CallTag
    from refinelab.tools.llm import ChatClient
    from tests.support.scripted_model import ScriptedChatModel

    class Answer(BaseModel):
        answer: str

    monkeypatch.setattr("refinelab.tools.llm.time.sleep", lambda s: None)
    replies = iter([openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1/v1")), "oops",
                    '{"answer": "C"}'])

    def respond(messages: list[dict[str, str]]) -> str:
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    ledger = Ledger(tmp_path / "ledger.sqlite", cap=10_000)
    tracer = Tracer(tmp_path / "trace.jsonl")
    chat = ChatClient(ModelSpec(model="m", max_tokens=40, max_transport_retries=1), ledger,
                      cache=ResponseCache(tmp_path / "cache.sqlite"), tracer=tracer,
                      chat_model=ScriptedChatModel(respond=respond), role="judge")
    messages = [{"role": "user", "content": "Which is prime? A. 4 B. 6 C. 7"}]
    with tracer.span("refinelab.run", "chain", {}), tracer.span("profile", "chain", {}) as node:
        first = chat.structured(messages, Answer, CallTag(node="profile", item_id="q1"))
        again = chat.structured(messages, Answer, CallTag(node="profile", item_id="q1"))
    assert first.parsed.answer == again.parsed.answer == "C" and again.cached
    runs = [r for r in read_trace(tmp_path / "trace.jsonl") if r["run_type"] == "llm"]
    assert [(r["metadata"]["attempt"], r["metadata"]["transport_try"], r["metadata"]["cached"], bool(r["error"]))
            for r in runs] == [(0, 0, False, True), (0, 1, False, False), (1, 0, False, False),
                               (0, 0, True, False), (1, 0, True, False)]
    assert all(r["parent_run_id"] == node.id and r["name"] == "judge:m" for r in runs)
    assert "APITimeoutError" in runs[0]["error"] and runs[0]["usage"]["total_tokens"] > 0  # charged, unanswered
    assert [r["usage"]["total_tokens"] for r in runs[3:]] == [0, 0]
    assert sum(r["usage"]["total_tokens"] for r in runs) == ledger.spent == first.tokens + runs[0]["usage"]["total_tokens"]
    assert runs[2]["outputs"] == {"text": '{"answer": "C"}', "cached": False}
    assert runs[2]["inputs"]["messages"] == messages


def test_sigkilled_run_and_its_resume_are_one_tree(tmp_path: Path) -> None:
    """A real process SIGKILLed inside an edit, then resumed: trace.jsonl holds one tree, the resumed
    process's root under the first root, no orphans, the dead process's open runs without an end."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]

    def run(command: str, kill: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tests.reliability.crash_runner", command, str(tmp_path / "runs"),
                               "r", str(tmp_path / "cache.sqlite"), "8", "200000", kill],
                              capture_output=True, text=True, timeout=300, check=False, cwd=repo)

    killed = run("refine", "refine:1:enter")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    runs = {r["id"]: r for r in read_trace(tmp_path / "runs" / "r" / "trace.jsonl")}
    root = _assert_one_tree(runs)
    tops = [r for r in runs.values() if r["name"] == "refinelab.run"]
    assert len(tops) == 2 and root in tops and root["end_time"] is None  # the first process died in it
    second = next(r for r in tops if r is not root)
    assert second["parent_run_id"] == root["id"] and second["end_time"] is not None
    assert second["inputs"]["resumed"] is True
    graphs = [r for r in runs.values() if r["name"] == "refinelab"]  # LangGraph's graph run, once per process
    assert [g["parent_run_id"] for g in graphs] == [root["id"], second["id"]]
    assert graphs[0]["end_time"] is None and graphs[1]["end_time"] is not None


def test_a_logprobs_request_is_one_llm_run_with_the_alternatives(tmp_path: Path) -> None:
    from refinelab.config import ModelSpec
    from refinelab.tools.cache import ResponseCache
    from refinelab.tools.ledger import CallTag
    from refinelab.tools.llm import ChatClient
    from tests.support.scripted_model import ScriptedChatModel, logprobs_block

    ledger = Ledger(tmp_path / "ledger.sqlite")
    tracer = Tracer(tmp_path / "trace.jsonl")
    chat = ChatClient(ModelSpec(model="m", max_tokens=40), ledger, cache=ResponseCache(tmp_path / "cache.sqlite"),
                      tracer=tracer, chat_model=ScriptedChatModel(respond=lambda m: logprobs_block({"A": 0.7, "B": 0.3})),
                      role="judge")
    messages = [{"role": "user", "content": "Answer with a letter. A or B?"}]
    with tracer.span("refinelab.run", "chain", {}):
        live = chat.first_token_logprobs(messages, CallTag(node="screen", item_id="q1"), top=5)
        cached = chat.first_token_logprobs(messages, CallTag(node="screen", item_id="q1"), top=5)
    runs = [r for r in read_trace(tmp_path / "trace.jsonl") if r["run_type"] == "llm"]
    assert [r["outputs"]["cached"] for r in runs] == [False, True]
    for run, result in zip(runs, (live, cached), strict=True):
        assert [tuple(pair) for pair in run["outputs"]["top_logprobs"]] == result.top_logprobs
        assert run["outputs"]["text"] == "A"
    assert sum(r["usage"]["total_tokens"] for r in runs) == ledger.spent == live.tokens
