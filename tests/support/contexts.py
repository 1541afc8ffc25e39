"""A run context for tests of one agent outside a run: options as keyword arguments, live objects
(sandbox, retriever, embedder, check_original, chat models) routed to the typed hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.api.context import open_run_context
from refinelab.config import Settings
from refinelab.metrics.targets import Targets

HOOK_KEYS = ("sandbox", "retriever", "embed", "check_original")


def context_for(run_dir: Path, settings: Settings, *, chat_models: dict[str, Any] | None = None,
                budget: int | None = None, targets: Targets | None = None, **settings_and_hooks: Any) -> AgentContext:
    """`open_run_context` with `RunOptions(**options)`; a non-string `rag_corpus` is a retriever hook."""
    options = dict(settings_and_hooks)
    hooks = RunHooks(chat_models=dict(chat_models or {}))
    for key in HOOK_KEYS:
        if key in options:
            setattr(hooks, key, options.pop(key))
    if "rag_corpus" in options and not isinstance(options["rag_corpus"], str | None):
        hooks.retriever = options.pop("rag_corpus")
    return open_run_context(run_dir, settings=settings, budget=budget, targets=targets,
                            options=RunOptions(**options), hooks=hooks)
