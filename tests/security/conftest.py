"""Security suite: the CLI driven as separate processes against loopback endpoints (tests/support/sec_helpers.py)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.support.sec_helpers import base_env, write_dataset, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> types.SimpleNamespace:
    """A workspace: environment (isolated caches, the test API key), dataset, prompt folder, runs dir."""
    return types.SimpleNamespace(
        tmp=tmp_path, env=base_env(tmp_path), data=write_dataset(tmp_path / "data.jsonl"),
        prompts=write_prompts(tmp_path / "prompts"), runs=tmp_path / "runs",
    )
