"""A profiled run context on scripted models, with a few items made fixable and a few with weak
distractors, so every piloted operation has candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripted import EXTRAS, models  # type: ignore[import-not-found]

from refinelab.agents.context import AgentContext
from refinelab.agents.profiler import profile_items
from refinelab.cli.profile import profile_context
from refinelab.config import Settings, load_settings
from refinelab.io import load_dataset
from refinelab.metrics.targets import Targets
from refinelab.schema import Dataset, Diagnostic

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
OPS = ["remove", "expand", "generate", "calibrate", "rewrite_distractors", "fix"]


def dataset(n: int) -> Dataset:
    return load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=n)


def settings(tmp: Path, **extra: Any) -> Settings:
    return load_settings(overrides={"runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "c.sqlite"), **extra})


def profiled_context(tmp: Path, n: int = 20, budget: int | None = None, chat: dict[str, Any] | None = None,
                     **extras: Any) -> AgentContext:
    """Items loaded and profiled (scripted labels); every 4th item suspect, every 3rd with weak distractors."""
    ctx = profile_context(tmp / "run", settings(tmp), budget, Targets(), {**EXTRAS, **extras}, chat or models())
    data = dataset(n)
    ctx.store.set_meta("run_id", "test-run")
    ctx.store.load_items(data.items)
    profile_items(ctx, ctx.store.items(("kept",)))
    items = ctx.store.items(("kept",))
    ctx.store.put_diagnostics(
        [Diagnostic(item_id=i.id, check="error", flag=True, score=0.6, evidence={"p_error": 0.6})
         for i in items[::4]]
        + [Diagnostic(item_id=i.id, check="distractors", flag=True, score=0.3, evidence={}) for i in items[1::3]])
    return ctx
