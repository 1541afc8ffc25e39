"""The embedded server starts with a bounded OpenMP spin (tools/embedded_server.server_environment).

With libgomp's default spin, a llama.cpp server beside one busy process did not finish 12 short replies
in 150 s that took 31 s alone (evals/results/bench_server_contention.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from refinelab.tools.embedded_server import GOMP_SPINCOUNT, server_environment


def test_the_spin_is_bounded_and_everything_else_passes_through() -> None:
    env = server_environment({"PATH": "/usr/bin", "LANG": "C.UTF-8"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "GOMP_SPINCOUNT": GOMP_SPINCOUNT}
    assert int(GOMP_SPINCOUNT) <= 10_000  # libgomp's default is 300,000


def test_a_spin_count_the_user_set_is_kept() -> None:
    assert server_environment({"GOMP_SPINCOUNT": "50000"})["GOMP_SPINCOUNT"] == "50000"


def test_the_callers_environment_is_not_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert server_environment()["GOMP_SPINCOUNT"] == GOMP_SPINCOUNT
    assert "GOMP_SPINCOUNT" not in os.environ


@pytest.mark.llm
def test_the_real_server_process_runs_with_it(embedded_server: Any) -> None:
    environ = Path(f"/proc/{embedded_server.pid}/environ").read_bytes().split(b"\0")
    assert f"GOMP_SPINCOUNT={server_environment()['GOMP_SPINCOUNT']}".encode() in environ
