"""`refinelab profile`: measure a dataset against targets; the work is `refinelab.api.profiling`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from refinelab.cli import arguments as arg
from refinelab.cli.common import (
    console,
    fail,
    load_selection,
    out,
    parse_list,
    run_options,
    settings_from_flags,
    styled,
)
from refinelab.cli.progress import phase_progress
from refinelab.errors import RefineLabError


def print_report(report: dict[str, Any]) -> None:
    """Rich tables: checks, distributions with JSD, and spend by component."""
    from refinelab.api.runs import prompt_cache_line  # loaded already: the profile ran through the library

    checks = Table(title=f"profile: {report['profiled']} of {report['items']} items, {report['elapsed_s']} s")
    for column in ("check", "items", "flagged", "%", "mean score", "min score"):
        checks.add_column(column, justify="left" if column == "check" else "right")
    for row in report["summary"]["checks"]:
        checks.add_row(str(row["check"]), str(row["items"]), str(row["flagged"]), str(row["flagged_pct"]),
                       f"{row['mean_score']:.3f}", f"{row['min_score']:.3f}")
    out.print(checks)
    if report["flagged_error_types"]:
        out.print("flagged error types: " + ", ".join(f"{k} {v}" for k, v in report["flagged_error_types"].items()))
    diff = report["difficulty"]
    if diff.get("observed"):
        table = Table(title=f"difficulty (mean {diff['mean']}; JSD to target {diff.get('jsd', '—')})")
        table.add_column("bucket")
        table.add_column("observed", justify="right")
        table.add_column("target", justify="right")
        for bucket, share in diff["observed"].items():
            table.add_row(bucket, f"{share:.3f}", f"{diff.get('target', {}).get(bucket, float('nan')):.3f}")
        out.print(table)
    cov = report["coverage"]
    if cov.get("observed"):
        table = Table(title=f"coverage (JSD to target {cov.get('jsd', '—')})")
        for column in ("domain × skill", "observed", "target"):
            table.add_column(column, justify="left" if column == "domain × skill" else "right")
        cells = sorted(set(cov["observed"]) | set(cov.get("target", {})))
        for c in cells:
            target = cov.get("target", {}).get(c)
            table.add_row(c, f"{cov['observed'].get(c, 0.0):.3f}", "—" if target is None else f"{target:.3f}")
        out.print(table)
    ledger = report["ledger"]
    spend = Table(title=f"tokens by component: {ledger['spent']} spent in {ledger['calls']} calls"
                        + (f" (cap {ledger['cap']})" if ledger["cap"] else ""))
    for column in ("component", "calls", "tokens", "prompt-cache reads"):
        spend.add_column(column, justify="left" if column == "component" else "right")
    for name, slot in sorted(report["ledger_by_component"].items()):
        spend.add_row(name, str(slot["calls"]), str(slot["tokens"]), str(slot.get("cached_prompt_tokens", 0)))
    out.print(spend)
    if cache_line := prompt_cache_line(ledger):
        out.print(cache_line)
    if report["stop_reason"]:
        out.print(styled(("stopped early:", "yellow"), f" {report['stop_reason']}"))


def profile_command(
    data: arg.Data,
    targets: Annotated[Path | None, typer.Option(help="targets YAML (coverage / difficulty)")] = None,
    subjects: arg.Subjects = None,
    limit: arg.Limit = None,
    budget: Annotated[int | None, typer.Option(help="token cap for profiling (default: none)")] = None,
    difficulty: Annotated[str | None, typer.Option(help="irt (the default) | elo | rating")] = None,
    skill_method: arg.SkillMethod = None,
    panel: arg.Panel = None,
    shots: arg.Shots = None,
    calibration: arg.Calibration = None,
    options_file: arg.Options = None,
    distractors: Annotated[bool | None, typer.Option("--distractors/--no-distractors", help="score distractors "
                                                     "with MiniLM and the panel's pick rates (no model tokens; "
                                                     "default: on)")] = None,
    no_validator: Annotated[bool, typer.Option("--no-validator", help="skip the validator on suspects")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/profile-TIME)")] = None,
    format: arg.Format = None,
    split: arg.Split = None,
    columns: arg.Columns = None,
    endpoint: arg.Endpoint = None,
    model: arg.Model = None,
    api_key_env: arg.ApiKeyEnv = None,
    config: arg.Config = None,
    prompts: arg.Prompts = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse cached responses")] = False,
    batch: Annotated[bool | None, typer.Option("--batch/--no-batch", help="label calls and panel probes through "
                                               "the OpenAI Batch API (half price on hosted APIs)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print profile.json's headline as JSON")] = False,
) -> None:
    """Profile DATA (labels, difficulty, error screening, distractors) and write profile.json; no edits."""

    options = run_options(options_file,
                          difficulty_method=difficulty, skill_method=skill_method, distractors=distractors,
                          panel=parse_list(panel), panel_shots=shots, validate_suspects=False if no_validator else None,
                          batch=batch, screening_model=calibration)
    settings = settings_from_flags(config, endpoint=endpoint, model=model, api_key_env=api_key_env,
                                   no_cache=no_cache)
    dataset, resolved = load_selection(data, format, subjects, limit, targets, columns=columns, split=split)
    # imported after the input checks: it loads LangGraph and the model client (~2.5 s)
    from refinelab.api.profiling import profile
    from refinelab.cli.progress import cli_hooks

    try:
        with phase_progress("profile", len(dataset), quiet=quiet or as_json, console=console) as show:
            result = profile(dataset, out_dir=out_dir, targets=resolved, settings=settings, budget=budget,
                             options=options, prompts_dir=str(prompts) if prompts else None, progress=show,
                             hooks=cli_hooks())
    except RefineLabError as exc:
        fail(exc)
    report = result.report
    if as_json:
        headline = {k: report[k] for k in ("dataset", "items", "profiled", "stop_reason", "elapsed_s",
                                           "summary", "coverage", "difficulty", "ledger_by_component")}
        out.print_json(json.dumps(headline | {"spent": report["ledger"]["spent"], "path": str(result.path)},
                                  default=str))
        return
    print_report(report)
    out.print(f"profile: {result.path}")
