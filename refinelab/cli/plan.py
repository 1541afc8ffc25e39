"""`refinelab plan DATA --budget B --dry-run`: the forecast of a run; the work is `refinelab.api.planning`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from refinelab.api.run_settings import validate_budget
from refinelab.cli import arguments as arg
from refinelab.cli.common import (
    fail,
    load_selection,
    out,
    parse_list,
    run_options,
    settings_from_flags,
    styled,
)
from refinelab.errors import RefineLabError
from refinelab.run_layout import PLAN_JSON


def print_plan(report: dict[str, Any]) -> None:
    """The plan as tables: operations, groups, metrics, then forecast and marginal value."""
    fc = report["forecast"]
    out.print(styled(("dry run", "bold"), f" {report['dataset']}: {report['items']} items, budget {report['budget']:,} "
                     f"tokens, mode {report['mode']} → {report['status']}"
                     + (" (profile reused, no LLM call)" if report["profile"]["reused"] else "")))
    if decontamination := report.get("decontamination"):
        out.print(f"decontamination: {decontamination['found']} of {decontamination['items']} items were found in "
                  f"{decontamination['reference']} and taken out before profiling; the plan is made for the input's size")
    if report["reason"]:
        out.print(styled(("empty plan:", "yellow"), f" {report['reason']}"))
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
    out.print(f"plan: {report['folder']}/{PLAN_JSON}; no edits were made")


def plan_command(
    data: arg.Data,
    budget: Annotated[int, typer.Option(help="token budget of the run to forecast")],
    dry: Annotated[bool, typer.Option("--dry-run", help="forecast only (required: plan never edits)")] = False,
    targets: Annotated[Path | None, typer.Option(help="targets YAML (coverage / difficulty)")] = None,
    subjects: arg.Subjects = None,
    limit: arg.Limit = None,
    mode: Annotated[str | None, typer.Option(help="ilp (the default) | lp-round | greedy | random")] = None,
    operations: arg.Operations = None,
    skill_method: arg.SkillMethod = None,
    panel: arg.Panel = None,
    calibration: arg.Calibration = None,
    options_file: arg.Options = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="plan folder (default runs/plan-<digest>)")] = None,
    format: arg.Format = None,
    split: arg.Split = None,
    columns: arg.Columns = None,
    endpoint: arg.Endpoint = None,
    model: arg.Model = None,
    api_key_env: arg.ApiKeyEnv = None,
    config: arg.Config = None,
    prompts: arg.Prompts = None,
    decontaminate: arg.Decontaminate = None,
    decontaminate_split: arg.DecontaminateSplit = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan report as JSON")] = False,
) -> None:
    """Forecast a run for BUDGET: the plan, its cost and expected gains; no edits.

    Profiles DATA (once), plans for BUDGET and prints the plan, its cost, the expected change of each
    metric and the value of more budget. No edits are made."""
    if not dry:
        fail("`refinelab plan` only forecasts: pass --dry-run (to spend the budget, use `refinelab refine`)")
    try:
        validate_budget(budget)
    except RefineLabError as exc:
        fail(exc)
    if decontaminate_split is not None and not decontaminate:
        fail("--decontaminate-split needs --decontaminate")
    options = run_options(options_file,
                          planner_mode=mode, operations=parse_list(operations), skill_method=skill_method,
                          panel=parse_list(panel), screening_model=calibration)
    settings = settings_from_flags(config, endpoint=endpoint, model=model, api_key_env=api_key_env)
    dataset, resolved = load_selection(data, format, subjects, limit, targets, columns=columns, split=split)
    # imported after the input checks: it loads LangGraph and the model client (~2.5 s)
    from refinelab.api.planning import plan, plan_dir
    from refinelab.cli.progress import cli_hooks

    folder = out_dir or plan_dir(settings, data, subjects, limit, options, dataset.items,
                                 decontaminate or (), decontaminate_split)
    try:
        report = plan(dataset, budget=budget, folder=folder, targets=resolved, settings=settings,
                      options=options, prompts_dir=str(prompts) if prompts else None,
                      decontaminate=decontaminate, decontaminate_split=decontaminate_split, hooks=cli_hooks())
    except RefineLabError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    print_plan(report)
