"""A profiled run context on scripted models, with a few items made fixable and a few with weak
distractors, so every piloted operation has candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.pilot import PilotResult
from refinelab.agents.profiler import profile_items
from refinelab.config import Settings, load_settings
from refinelab.io import load_dataset
from refinelab.schema import Dataset, Diagnostic
from tests.support.contexts import context_for
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
OPS = ["remove", "expand", "generate", "calibrate", "rewrite_distractors", "fix"]


def dataset(n: int) -> Dataset:
    return load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=n)


def settings(tmp: Path, **extra: Any) -> Settings:
    return load_settings(overrides={"runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "c.sqlite"), **extra})


def profiled_context(tmp: Path, n: int = 20, budget: int | None = None, chat: dict[str, Any] | None = None,
                     **options: Any) -> AgentContext:
    """Items loaded and profiled (scripted labels); every 4th item suspect, every 3rd with weak distractors."""
    ctx = context_for(tmp / "run", settings(tmp), chat_models=chat or models(), budget=budget, **{**EXTRAS, **options})
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


def run_pilot(ctx: AgentContext, enabled: list[str]) -> PilotResult:
    """Round 0 of the real graph on a profiled context: the plan node's pilot Sends go through refine →
    validate → collect, and the run stops as soon as the first real plan (round 1) is made, before its
    edits are sent. Returns the pilot's summary as the store keeps it."""
    from langgraph.checkpoint.memory import InMemorySaver

    from refinelab.agents.pilot import pilot_summary
    from refinelab.graph.build import build_graph

    ctx.options = ctx.options.model_copy(update={"operations": list(enabled)})
    graph = build_graph(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": f"pilot-{id(ctx)}-{ctx.ledger.spent}"}, "recursion_limit": 1000}
    graph.update_state(config, {"run_id": "test-run", "round": 0, "phase": "plan"}, as_node="profile")
    for update in graph.stream(None, config, context=ctx, stream_mode="updates"):
        planned = update.get("plan") or {}
        if "finalize" in update or (planned.get("round", 0) or 0) >= 1:
            break
    return pilot_summary(ctx)
