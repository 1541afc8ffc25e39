"""Shared fixtures: the real embedded server (small model, started once per session) and data paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REFINELAB_DATA", REPO.parent / "shared" / "data"))
SMALL_MODEL = os.environ.get("REFINELAB_TEST_MODEL", "smollm2-135m")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`, `--dist loadgroup`), the tests that drive a real model server run
    one after another on one worker. Each server takes every core for its threads: two such tests side by
    side made each several times slower (an expand through the real server 27 s alone, 300 s beside
    another), and no faster in all."""
    for item in items:
        if item.get_closest_marker("llm"):
            item.add_marker(pytest.mark.xdist_group("llm"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA.exists():
        pytest.fail(f"shared data not found at {DATA}; set REFINELAB_DATA")
    return DATA


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[object]:
    """The real llama.cpp server with the small model, on a free loopback port."""
    from refinelab.tools.embedded_server import serving

    with serving(SMALL_MODEL, parallel=2) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep each test's response cache and runs out of the user's home (model weights stay shared)."""
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    monkeypatch.setenv("REFINELAB_MODEL_CACHE", str(home_cache / "refinelab" / "models"))
