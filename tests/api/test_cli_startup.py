"""The command line starts without the model stack: `refinelab --help`, `--version` and a one-line input
error should not wait for LangGraph, LangChain and the model client (~2.5 s of imports on 2 cores, paid by
every CLI call before `refinelab.api` loaded its names lazily)."""

from __future__ import annotations

import subprocess
import sys

import refinelab.api

HEAVY = ("langgraph", "langchain_core", "refinelab.tools.llm", "refinelab.graph.build", "sentence_transformers")


def test_importing_the_cli_loads_no_model_stack() -> None:
    code = ("import sys, refinelab.cli.app; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "", f"imported at CLI start: {proc.stdout.strip()}"


def test_the_api_names_load_on_first_use() -> None:
    assert set(refinelab.api.__all__) == {*refinelab.api._EXPORTS, "open_run", "report", "export"}
    for name in refinelab.api._EXPORTS:
        assert getattr(refinelab.api, name) is not None
    assert "refine" in dir(refinelab.api)


def test_classifying_a_failed_call_does_not_load_the_openai_sdk() -> None:
    """A dead endpoint or a garbled reply is classified without importing the SDK (1.2 s), whose error
    classes only a caller's ChatOpenAI or the Batch API can raise, and they load it."""
    code = ("import sys, httpx, json; from refinelab.tools import llm; "
            "exc = httpx.ConnectError('refused'); "
            "assert llm._is_transient(exc) and not llm._status_answer(exc) and llm._never_reached(exc); "
            "assert llm._is_transient(json.JSONDecodeError('x', 'doc', 0)); "
            "assert llm._truncated_completion(ValueError('no')) is None and not llm._is_transient(ValueError()); "
            "print('openai' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


def test_openai_sdk_errors_are_still_classified_once_it_is_loaded() -> None:
    import httpx
    import openai

    from refinelab.tools import llm

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    limited = openai.RateLimitError("slow down", response=httpx.Response(429, request=request), body=None)
    refused = openai.BadRequestError("bad", response=httpx.Response(400, request=request), body=None)
    assert llm._is_transient(limited) and llm._status_answer(limited)
    assert not llm._is_transient(refused) and llm._status_answer(refused)
    assert llm._is_transient(openai.APIConnectionError(request=request))


def _heavy_after(args: list[str], cwd: str) -> tuple[int, str, str]:
    """Run the CLI in a fresh process with `args`; (exit code, heavy modules loaded, stderr)."""
    code = (f"import sys\nsys.argv = ['refinelab', *{args!r}]\nfrom refinelab.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            f"print(code, ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)
    status, _, loaded = proc.stdout.strip().rpartition("\n")[2].partition(" ")
    return int(status), loaded, proc.stderr


def test_a_bad_run_id_or_missing_run_is_refused_before_the_graph_loads(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": 0}\n')
    for args in (["refine", str(data), "--budget", "10", "--run-id", "../up"],
                 ["resume", "../up"], ["resume", "never-made", "--runs-dir", str(tmp_path / "runs")]):
        status, loaded, err = _heavy_after(args, str(tmp_path))
        assert status == 2, (args, err[-1500:])
        assert loaded == "", f"{args}: loaded {loaded} before refusing"
