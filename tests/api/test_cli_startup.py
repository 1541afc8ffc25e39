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
