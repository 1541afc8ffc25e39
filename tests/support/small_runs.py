"""A small finished run made with the scripted models, for tests that need a real run folder on disk."""

from __future__ import annotations

from pathlib import Path

from refinelab.schema import Dataset


def finished_run(tmp_path: Path, data: Dataset, run_id: str) -> Path:
    """`data` refined by the scripted models under a 3,000-token budget, one round, fixes only, no pilot;
    the run folder under `tmp_path/runs`."""
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine
    from refinelab.config import load_settings
    from tests.support.scripted import EXTRAS, models

    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    return refine(data, budget=3_000, settings=settings, hooks=RunHooks(chat_models=models()), run_id=run_id,
                  options={**EXTRAS, "pilot_per_op": 0, "operations": ["fix"], "rounds": 1}).run_dir
