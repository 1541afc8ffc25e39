"""`refinelab plan DATA --budget B --dry-run`: what a run would buy, for what, and what it should change.

Measuring and deciding are separate: the data is profiled once into a plan folder (runs/plan-<digest>
by default, keyed by the data path, subjects and limit) and reused, so a second dry run with another
budget or target makes no LLM call. The plan is the one the graph would make for its first round, without
the pilot (a pilot makes real edits): catalogue priors, refitted by any edits already recorded in the
folder, against 90% of the budget left after profiling. Nothing is edited.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from refinelab.agents.context import AgentContext
from refinelab.agents.planner_agent import ALL_OPS, plan_for_budget
from refinelab.atomic import atomic_write_text
from refinelab.cli_common import load_selection
from refinelab.cli_profile import profile_context, run_profile
from refinelab.config import Settings, load_settings
from refinelab.errors import RefineLabError, error_line
from refinelab.graph.store import RunStore
from refinelab.planner.ilp import Plan
from refinelab.planner.targets import Targets
from refinelab.planner.tool import plan_payload
from refinelab.schema import Dataset

console = Console(stderr=True)
out = Console()
MODES = ("ilp", "lp-round", "greedy", "random")


def plan_dir(settings: Settings, data: Path, subjects: str | None, limit: int | None) -> Path:
    """The default plan folder: one per (data, subjects, limit), so profiles are found again."""
    key = json.dumps([str(data.resolve()), subjects or "", limit])
    return Path(settings.runs_dir) / f"plan-{data.stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def profile_complete(folder: Path) -> bool:
    """A finished profile: profile.json written and every kept item labelled."""
    if not (folder / "profile.json").exists() or not (folder / "store.sqlite").exists():
        return False
    store = RunStore(folder / "store.sqlite")
    try:
        return all(store.has_diagnostic(i.id, "label") for i in store.items(("kept",)))
    finally:
        store.close()


def dry_run(dataset: Dataset, *, budget: int, folder: Path, targets: Targets | None = None,
            settings: Settings | None = None, mode: str = "ilp", operations: list[str] | None = None,
            extras: dict[str, Any] | None = None, chat_models: dict[str, Any] | None = None,
            prompts_dir: str | None = None) -> dict[str, Any]:
    """Profile (or reuse the profile in `folder`), plan for `budget`, write plan.json; returns the report."""
    settings = settings or load_settings()
    targets = targets or Targets()
    enabled = list(operations or ALL_OPS)
    reused = profile_complete(folder)
    if not reused:
        run_profile(dataset, out_dir=folder, targets=targets, settings=settings, extras=extras or {},
                    chat_models=chat_models, prompts_dir=prompts_dir)
    ctx = profile_context(folder, settings, None, targets, {**(extras or {}), "dry_run": True}, chat_models,
                          prompts_dir)
    try:
        calls_before = ctx.ledger.summary()["calls"]
        profile_tokens = ctx.ledger.spent
        available = max(0, budget - profile_tokens)
        with ctx.tracer.span("refinelab.plan", "chain", {"budget": budget, "mode": mode, "dry_run": True},
                             run_id=None) as root:
            plan, problem, basis = plan_for_budget(ctx, available, enabled, mode)
            root.outputs = {"forecast_tokens": plan.forecast_tokens, "status": plan.status}
        ctx.tracer.flush()
        report = _report(ctx, dataset, plan, basis, budget=budget, profile_tokens=profile_tokens, reused=reused,
                         calls=ctx.ledger.summary()["calls"] - calls_before, folder=folder)
    finally:
        ctx.store.close()
    atomic_write_text(folder / "plan.json", json.dumps(report, indent=2, default=str))
    return report


def _report(ctx: AgentContext, dataset: Dataset, plan: Plan, basis: dict[str, Any], *, budget: int,
            profile_tokens: int, reused: bool, calls: int, folder: Path) -> dict[str, Any]:
    payload = plan_payload(plan, "summary")
    return {
        "dry_run": True, "dataset": dataset.name, "items": len(dataset), "budget": budget, "mode": plan.mode,
        "folder": str(folder),
        "profile": {"reused": reused, "tokens": profile_tokens, "path": str(folder / "profile.json")},
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
    }


def print_plan(report: dict[str, Any]) -> None:
    """The plan as tables: operations, groups, metrics, then forecast and marginal value."""
    fc = report["forecast"]
    out.print(f"[bold]dry run[/bold] {report['dataset']}: {report['items']} items, budget {report['budget']:,} "
              f"tokens, mode {report['mode']} → {report['status']}"
              + (" (profile reused, no LLM call)" if report["profile"]["reused"] else ""))
    if report["reason"]:
        out.print(f"[yellow]empty plan:[/yellow] {report['reason']}")
    ops = Table(title="plan by operation")
    for column in ("operation", "count", "tokens"):
        ops.add_column(column, justify="left" if column == "operation" else "right")
    for op, total in sorted(report["by_op"].items()):
        ops.add_row(op, str(total["count"]), f"{total['tokens']:,.0f}")
    out.print(ops)
    groups = Table(title="plan by operation and cell / bucket")
    for column in ("operation", "cell or bucket", "count"):
        groups.add_column(column, justify="right" if column == "count" else "left")
    for op, row in sorted(report["by_op_and_group"].items()):
        for group, count in sorted(row.items()):
            groups.add_row(op, group, str(count))
    out.print(groups)
    metrics = Table(title="expected change of each metric")
    for column in ("metric", "before", "after", "change"):
        metrics.add_column(column, justify="left" if column == "metric" else "right")
    for name, m in report["metrics"].items():
        metrics.add_row(name, f"{m['before']:.4f}", f"{m['after']:.4f}", f"{m['change']:+.4f}")
    out.print(metrics)
    out.print(f"forecast: {fc['refine_tokens']:,.0f} tokens of edits (planned against "
              f"{report['plannable_tokens']:,.0f}) + {fc['profile_tokens']:,} profiling = "
              f"{fc['overall_tokens']:,.0f} of {report['budget']:,}")
    if report["marginal_value_per_1k"] is not None:
        out.print(f"marginal value: +1k tokens would add about {report['marginal_value_per_1k']:.4f} objective "
                  f"(objective now +{report['objective']:.4f})")
    out.print(f"plan: {report['folder']}/plan.json; no edits were made")


def plan_command(
    data: Annotated[Path, typer.Argument(help="dataset file or folder")],
    budget: Annotated[int, typer.Option(help="token budget of the run to forecast")],
    dry: Annotated[bool, typer.Option("--dry-run", help="forecast only (required: plan never edits)")] = False,
    targets: Annotated[Path | None, typer.Option(help="targets YAML (coverage / difficulty)")] = None,
    subjects: Annotated[str | None, typer.Option(help="comma-separated subjects to keep")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many items, spread over subjects")] = None,
    mode: Annotated[str, typer.Option(help="ilp | lp-round | greedy | random")] = "ilp",
    operations: Annotated[str | None, typer.Option(help="comma-separated operations to allow")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="plan folder (default runs/plan-<digest>)")] = None,
    format: Annotated[str | None, typer.Option(help="jsonl | mmlu | arc | parquet | csv")] = None,
    config: Annotated[Path | None, typer.Option(help="settings YAML")] = None,
    prompts: Annotated[Path | None, typer.Option(help="folder overriding prompts / packs")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan report as JSON")] = False,
) -> None:
    """Forecast a run: profile DATA (once), plan for BUDGET, print the plan, its cost, the expected
    change of each metric and the value of more budget. No edits are made."""

    if not dry:
        console.print("[red]error:[/red] `refinelab plan` only forecasts: pass --dry-run "
                      "(to spend the budget, use `refinelab refine`)")
        raise typer.Exit(2)
    if mode not in MODES:
        console.print(f"[red]error:[/red] --mode must be one of {', '.join(MODES)}")
        raise typer.Exit(2)
    enabled = [o.strip() for o in operations.split(",") if o.strip()] if operations else list(ALL_OPS)
    unknown = sorted(set(enabled) - set(ALL_OPS))
    if unknown or budget < 0:
        console.print(f"[red]error:[/red] unknown operation(s) {unknown}" if unknown else
                      "[red]error:[/red] --budget must be >= 0")
        raise typer.Exit(2)
    try:
        settings = load_settings(config)
    except RefineLabError as exc:
        console.print(f"[red]error:[/red] {escape(error_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    dataset, resolved = load_selection(data, format, subjects, limit, targets, console)
    folder = out_dir or plan_dir(settings, data, subjects, limit)
    try:
        report = dry_run(dataset, budget=budget, folder=folder, targets=resolved, settings=settings, mode=mode,
                         operations=enabled, prompts_dir=str(prompts) if prompts else None)
    except RefineLabError as exc:
        console.print(f"[red]error:[/red] {escape(error_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    print_plan(report)
