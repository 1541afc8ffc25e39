"""A real run folder for the report and export tests, made by the scripted pipeline (no model, ~10 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run on 30 MMLU dev items: removals, new items, loop-backs, a gave-up edit, an invalid row."""
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine
    from refinelab.config import load_settings
    from refinelab.io import load_dataset
    from tests.support.scripted import models

    base = tmp_path_factory.mktemp("report-run")
    everything = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine")
    dataset = everything.filter(limit=30)
    # the report's invalid-input section needs a row: the 30 items (one per subject) stop before the dev
    # set's one invalid row (high_school_biology row 3), which a limited selection no longer counts
    dataset.rejected = list(everything.rejected)
    settings = load_settings(overrides={"runs_dir": str(base / "runs"), "cache_path": str(base / "cache.sqlite"),
                                        "use_cache": False})
    # allow_shrink: removals are otherwise bought only for defects, and this run should show some;
    # 30k: the default IRT difficulty (the judge's probes) and the measured edits spend more than before
    result = refine(dataset, budget=30_000, settings=settings, hooks=RunHooks(chat_models=models(fail_first_validation=True)),
                    options={"validators": [], "dedup": "lexical", "allow_shrink": True, "planner_mode": "greedy"})
    return Path(result.run_dir)
