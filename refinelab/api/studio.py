"""The graph as LangGraph Studio / `langgraph dev` runs it: its run context built from plain data.

`refine()` hands the graph live handles (store, ledger, clients) as its runtime context. A server cannot:
it passes what the user typed. So `studio_graph` declares `StudioContext` (dataset path, budget, model,
endpoint, options …) as the context schema, and the first node of a run opens the run folder from it —
the same folder `refine()` makes (sealed settings.json, the dataset in the store) — and keeps the handles
for the thread's later steps. `langgraph.json` at the repository root points here; docs/studio.md.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunOptions
from refinelab.api.run_folders import claim_existing, run_path, validate_run_id
from refinelab.api.run_settings import validate_budget
from refinelab.api.runs import saved_context, start_run_folder
from refinelab.config import all_roles, load_settings
from refinelab.errors import ConfigError, DataError, RefineLabError, error_line
from refinelab.graph.build import build_graph
from refinelab.run_layout import SETTINGS

_CONTEXTS: dict[str, AgentContext] = {}  # checkpoint thread → its run's handles, for the life of the server
_LOCK = threading.Lock()


class StudioRunError(ConfigError, ValueError):
    """A run the server cannot start (no context, a bad dataset, …): one line, shown as is by the server
    (it masks the messages of exception types it does not know, but passes `ValueError`s through)."""


class StudioContext(BaseModel):
    """What a Studio user (or an SDK call's `context=`) gives a run: plain data, shown as a form."""

    model_config = ConfigDict(extra="forbid")

    # Both required for a run; optional here because the server builds the schema from `{}` when a run
    # names no context, and that must reach `studio_context`'s one-line message, not a validation trace.
    dataset: str | None = Field(None, description="dataset file or folder (JSONL, MMLU CSV, ARC JSONL, Parquet)")
    budget: int | None = Field(None, ge=0, description="token budget (hard cap)")
    format: str | None = Field(None, description="jsonl | mmlu | arc | parquet; None = by extension")
    limit: int | None = Field(None, ge=1, description="at most this many items, spread over subjects")
    run_id: str | None = Field(None, description="run folder name; default: the input's run_id, else the thread")
    runs_dir: str = Field("runs", description="where run folders go")
    settings_file: str | None = Field(None, description="settings YAML (models per role, endpoints, folders)")
    endpoint: str | None = Field(None, description="OpenAI-compatible URL for every role; None = the settings'")
    model: str | None = Field(None, description="model name for every role; None = the settings'")
    api_key_env: str | None = Field(None, description="environment variable holding the endpoint's API key")
    rounds: int | None = Field(None, ge=1, le=20, description="refinement rounds; None = `options.rounds`")
    max_attempts: int | None = Field(None, ge=1, le=10, description="refine attempts per edit; None = "
                                     "`options.max_attempts`")
    targets: str | None = Field(None, description="targets YAML")
    prompts_dir: str | None = Field(None, description="folder overriding prompts / packs")
    options: RunOptions = Field(default_factory=RunOptions, description="run options (as `refine(options=…)`)")


def _overrides(spec: StudioContext) -> dict[str, Any]:
    return {"runs_dir": spec.runs_dir} | all_roles(endpoint=spec.endpoint, model=spec.model,
                                                   api_key_env=spec.api_key_env)


def _options(spec: StudioContext) -> RunOptions:
    """The run options, with the context's own `rounds` / `max_attempts` (the Studio form's shortcuts) over
    `options`."""
    given = {k: v for k, v in (("rounds", spec.rounds), ("max_attempts", spec.max_attempts)) if v is not None}
    return RunOptions.model_validate(spec.options.model_dump() | given) if given else spec.options


def open_studio_run(spec: StudioContext, run_id: str) -> AgentContext:
    """The handles of run `run_id`: a new folder from `spec`, or the existing one (a restarted server)."""
    from refinelab.io import load_dataset

    if spec.dataset is None or spec.budget is None:
        raise ConfigError("this graph needs a run context: set at least `dataset` and `budget` in the run's "
                          "context (Studio: the Context form; SDK: `context={...}`); see docs/studio.md")
    validate_budget(spec.budget)
    settings = load_settings(spec.settings_file, _overrides(spec))
    run_id = validate_run_id(run_id)
    if (run_path(settings.runs_dir, run_id) / SETTINGS).exists():
        folder = claim_existing(settings.runs_dir, run_id)
        try:
            return saved_context(folder, None)
        finally:
            folder.release()
    dataset = load_dataset(Path(spec.dataset), format=spec.format, on_invalid="quarantine")
    if spec.limit:
        dataset = dataset.filter(None, spec.limit)
    if not len(dataset):
        raise DataError(dataset.name, None, None, f"no valid items to refine ({len(dataset.rejected)} invalid row(s))")
    folder, ctx = start_run_folder(dataset, budget=spec.budget, targets=spec.targets, settings=settings,
                                   run_id=run_id, options=_options(spec), hooks=None, prompts_dir=spec.prompts_dir)
    folder.release()  # the server's steps share this process; a CLI `resume` may take the folder later
    return ctx


def studio_context(data: Any, config: dict[str, Any], state: Any) -> AgentContext:
    """The `AgentContext` of the thread this step belongs to, opened on its first step from `data`."""
    thread = str((config.get("configurable") or {}).get("thread_id") or "default")
    with _LOCK:
        if thread in _CONTEXTS:
            return _CONTEXTS[thread]
        spec = data if isinstance(data, StudioContext) else StudioContext.model_validate(data or {})
        named = state.get("run_id") if isinstance(state, dict) else None
        try:
            _CONTEXTS[thread] = open_studio_run(spec, spec.run_id or named or thread)
        except (RefineLabError, OSError) as exc:
            raise StudioRunError(error_line(exc)) from None
        return _CONTEXTS[thread]


def studio_graph() -> Any:
    """Entry point for `langgraph dev` / LangGraph Studio (langgraph.json); the server adds the checkpointer."""
    return build_graph(context_factory=studio_context, context_schema=StudioContext)
