"""Plan without editing: what a run would buy, for what, and what it should change.

Measuring and deciding are separate: the data is profiled once into a plan folder (runs/plan-<digest>
by default, keyed by the data path, subjects, limit and labeller) and reused, so a second dry run with another
budget or target makes no LLM call. The plan is the one the graph would make for its first round, without
the pilot (a pilot makes real edits): catalogue priors, refitted by any edits already recorded in the
folder, against 90% of the budget left after profiling. Nothing is edited.

With `decontaminate`, the items a reference holds are taken out before profiling as `refine --decontaminate`
takes them (api/decontamination.py), and the plan is made for the input's size: the refill a run would buy.
The folder is then keyed by the references too, and one measured against other references is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.options import PROFILE_FIELDS, RunHooks, RunOptions, profile_options
from refinelab.agents.planner_agent import plan_for_budget
from refinelab.api.context import working_folder
from refinelab.api.decontamination import (
    CHECK,
    Contamination,
    apply_contamination,
    as_references,
    find_contamination,
)
from refinelab.api.profiling import profile_in
from refinelab.api.run_settings import validate_budget
from refinelab.api.runs import checked_options
from refinelab.atomic import atomic_write_text
from refinelab.config import PLANNER_MODES, PlannerMode, Settings, load_settings
from refinelab.errors import ConfigError, DataError
from refinelab.io import DatasetInput, as_dataset, require_items
from refinelab.metrics.targets import Targets, as_targets
from refinelab.planner.ilp import Plan
from refinelab.planner.tool import plan_payload
from refinelab.run_layout import PLAN_JSON, PROFILE_JSON, STORE
from refinelab.schema import Dataset, QAItem
from refinelab.tools.store import RunStore


def plan_dir(settings: Settings, data: Path, subjects: str | None, limit: int | None,
             options: RunOptions | None = None, items: Iterable[QAItem] | None = None,
             decontaminate: Sequence[Path] = (), decontaminate_split: str | None = None) -> Path:
    """The default plan folder: one per (data, subjects, limit, the options that shape a profile, references,
    content of `items`), so a profile is found again for the same input measured the same way, and an edited
    file at the same path gets a folder of its own instead of a stale profile (a folder holding other items
    is refused: `working_folder`). Default options add nothing to the key."""
    parts: list[Any] = [str(data.resolve()), subjects or "", limit]
    if shaping := profile_options(options or RunOptions()):
        parts.append(shaping)
    if decontaminate:
        parts.append([[str(Path(p).resolve()) for p in decontaminate], decontaminate_split])
    if items is not None:
        content = [[i.id, i.question, list(i.choices), i.answer] for i in items]
        parts.append(hashlib.sha1(json.dumps(content).encode()).hexdigest())
    key = json.dumps(parts, sort_keys=True)
    return Path(settings.runs_dir) / f"plan-{data.stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def profiled_with(folder: Path) -> dict[str, Any]:
    """The profile-shaping options the profile in `folder` was made with (profile.json's options, which
    hold what differed from the defaults; `agents/options.PROFILE_FIELDS`)."""
    report = json.loads((folder / PROFILE_JSON).read_text(encoding="utf-8"))
    options = report.get("options") if isinstance(report, dict) else None
    return {k: v for k, v in (options if isinstance(options, dict) else {}).items() if k in PROFILE_FIELDS}


def profile_complete(folder: Path) -> bool:
    """A finished profile: profile.json written and every kept item labelled."""
    if not (folder / PROFILE_JSON).exists() or not (folder / STORE).exists():
        return False
    store = RunStore(folder / STORE)
    try:
        return all(store.has_diagnostic(i.id, "label") for i in store.items(("kept",)))
    finally:
        store.close()


def plan(data: DatasetInput, *, budget: int, folder: str | Path, dry_run: bool = True,
         targets: Targets | str | Path | Mapping[str, Any] | None = None,
         settings: Settings | None = None, mode: PlannerMode | None = None,
         options: RunOptions | Mapping[str, Any] | None = None,
         hooks: RunHooks | None = None, prompts_dir: str | None = None,
         columns: Mapping[str, str | list[str]] | None = None,
         decontaminate: DatasetInput | Sequence[str | Path] | None = None,
         decontaminate_split: str | None = None) -> dict[str, Any]:
    """Profile (or reuse the profile in `folder`), plan for `budget`, write plan.json; returns the report.

    `data` takes what `refine` takes (a path, `Dataset`, `datasets.Dataset`, DataFrame, list of dicts).
    Only the dry run exists: a plan that edits is `refine` (whose first plan follows a pilot).
    `decontaminate`/`decontaminate_split` as `refine` takes them: the plan is the one such a run would make.
    `folder` (a path, str or `Path`) holds the profile, reused by the next plan of the same data; `targets` is
    a `Targets` or a targets YAML file's path, as `refine` takes it. The planner's mode is the run's
    (`options.planner_mode`, as `refine` plans); `mode`, when given, sets it (`plan(…, mode="greedy")` is
    `options={"planner_mode": "greedy"}`). Bad arguments are refused before the folder is made."""
    if not dry_run:
        raise ValueError("plan() only makes dry runs; refine() plans and edits")
    validate_budget(budget)
    if mode is not None and mode not in PLANNER_MODES:
        raise ConfigError(f"mode {mode!r}: expected one of {', '.join(PLANNER_MODES)}")
    folder = Path(folder)
    targets = as_targets(targets)
    references = as_references(decontaminate, decontaminate_split)
    dataset = as_dataset(data, columns=columns, on_invalid="quarantine")
    settings = settings or load_settings()
    options = checked_options(options).model_copy(update={"dry_run": True} | ({"planner_mode": mode} if mode else {}))
    enabled = list(options.operations)
    reused = profile_complete(folder)
    if not reused:
        require_items(dataset, "profile")
    contamination = find_contamination(dataset, references, split=decontaminate_split) if references else None
    if reused and (made_with := profiled_with(folder)) != (asked := profile_options(options)):
        differ = sorted(k for k in made_with.keys() | asked.keys() if made_with.get(k) != asked.get(k))
        shown = "; ".join(f"{k} {_shown(made_with, k)} there, {_shown(asked, k)} asked" for k in differ)
        raise ConfigError(f"{folder}: profiled with other options ({shown}); plan into another folder (--out) "
                          "or ask for the options it was profiled with")
    with working_folder(folder, dataset.items, settings=settings, targets=targets, options=options, hooks=hooks,
                        prompts_dir=prompts_dir) as ctx:
        _take_out_contamination(ctx, contamination, dataset, folder)
        if not reused:  # profiled in the same hold of the folder as the plan (one lock, one input check)
            profile_in(ctx, dataset)
        calls_before = ctx.ledger.summary()["calls"]
        # what profiling used of the budget, paid or replayed from the response cache: a run counts a replayed
        # answer against its cap, and a plan that read only `spent` forecast 17,660 of 20,000 tokens for the
        # edits of a 25-item ARC set whose profile (16,525, replayed) would leave a real run 3,475
        profile_tokens = ctx.ledger.spent + ctx.ledger.replayed
        available = max(0, budget - profile_tokens)
        with ctx.tracer.span("refinelab.plan", "chain", {"budget": budget, "mode": options.planner_mode,
                                                         "dry_run": True}, run_id=None) as root:
            plan, problem, basis = plan_for_budget(ctx, available, enabled, options.planner_mode)
            root.outputs = {"forecast_tokens": plan.forecast_tokens, "status": plan.status}
        ctx.tracer.flush()
        report = _report(ctx, dataset, plan, basis, budget=budget, profile_tokens=profile_tokens, reused=reused,
                         calls=ctx.ledger.summary()["calls"] - calls_before, folder=folder)
    atomic_write_text(folder / PLAN_JSON, json.dumps(report, indent=2, default=str))
    return report


def _shown(options: Mapping[str, Any], name: str) -> str:
    """One option's value as the refusal shows it, in JSON either way (a default as the options dump it)."""
    if name in options:
        return json.dumps(options[name])
    return f"{json.dumps(RunOptions().model_dump(mode='json')[name])} (the default)"


def _take_out_contamination(ctx: AgentContext, contamination: Contamination | None, dataset: Dataset,
                            folder: Path) -> None:
    """The items the references hold, removed before profiling as a run removes them; a folder that removed
    others (measured against other references, or none) is refused, since its profile is of another set."""
    found = {m.item_id for report in (contamination.reports if contamination else []) for m in report.matches}
    removed = {d.item_id for d in ctx.store.diagnostics(CHECK)}
    if ctx.store.item_ids(("kept", "removed")) and found != removed:
        raise DataError(str(folder), None, None, f"this folder was measured with {len(removed)} item(s) taken out "
                        f"for decontamination, this plan takes out {len(found)}; use another folder (--out) or "
                        "remove this one")
    if contamination is not None and not removed:  # found none: the plan still says it looked
        ctx.store.load_items(dataset.items)
        apply_contamination(ctx, contamination, dataset)


def _report(ctx: AgentContext, dataset: Dataset, plan: Plan, basis: dict[str, Any], *, budget: int,
            profile_tokens: int, reused: bool, calls: int, folder: Path) -> dict[str, Any]:
    payload = plan_payload(plan, "summary")
    return {
        "dry_run": True, "dataset": dataset.name, "items": len(dataset), "budget": budget, "mode": plan.mode,
        "folder": str(folder),
        "profile": {"reused": reused, "tokens": profile_tokens, "path": str(folder / PROFILE_JSON)},
        "plannable_tokens": round(basis["budget"], 1),
        "status": plan.status, "reason": plan.reason,
        "by_op": payload["by_op"], "by_op_and_group": payload["by_op_and_group"],
        "forecast": {"refine_tokens": round(plan.forecast_tokens, 1),
                     "overall_tokens": round(profile_tokens + plan.forecast_tokens, 1),
                     "profile_tokens": profile_tokens},
        "metrics": {k: {"before": m.before, "after": m.after, "change": m.change} for k, m in plan.metrics.items()},
        "objective": plan.objective, "marginal_value_per_1k": plan.marginal_value_per_1k,
        "catalogue": basis["catalogue"], "observations": basis["observations"],
        "solve_seconds": plan.solve_seconds, "notes": plan.notes,
        "llm_calls_for_this_plan": calls, "edits_made": len(ctx.store.edits()),
        # the items the references held, taken out before profiling (api/decontamination.py)
        "decontamination": ctx.store.get_meta("decontamination"),
    }
