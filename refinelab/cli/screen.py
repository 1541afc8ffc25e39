"""`refinelab screen`: error screening without refinement; the work is `refinelab.api.screening`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
from refinelab.cli.progress import cli_hooks, phase_progress
from refinelab.errors import RefineLabError


def screen_command(
    data: arg.Data,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/screen-TIME)")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="plant errors into a sample of DATA, fit the "
                                            "screen to it and write calibration.json first")] = False,
    sample: Annotated[int, typer.Option(help="--calibrate: items sampled for planting")] = 60,
    calibration: Annotated[Path | None, typer.Option(help="use this calibration.json")] = None,
    target_precision: Annotated[float, typer.Option(help="--calibrate: precision the threshold aims at")] = 0.5,
    prevalence: Annotated[float, typer.Option(help="--calibrate: share of erroneous items assumed in DATA")] = 0.1,
    panel: Annotated[str | None, typer.Option(help="comma-separated members (embedded names, 'judge', "
                                                   "MODEL@URL, rag:NAME, cloze:NAME); default qwen2.5-coder-1.5b")] = None,
    orders: Annotated[int | None, typer.Option(help="option orders each item is asked in (default 2)")] = None,
    shots: arg.Shots = None,
    options_file: arg.Options = None,
    budget: Annotated[int | None, typer.Option(help="token cap (default: none)")] = None,
    subjects: arg.Subjects = None,
    limit: arg.Limit = None,
    format: arg.Format = None,
    split: arg.Split = None,
    columns: arg.Columns = None,
    endpoint: arg.Endpoint = None,
    model: arg.Model = None,
    api_key_env: arg.ApiKeyEnv = None,
    config: arg.Config = None,
    prompts: arg.Prompts = None,
    batch: Annotated[bool | None, typer.Option("--batch/--no-batch", help="panel probes through the OpenAI Batch "
                                               "API (half price on hosted APIs)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse cached responses")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Screen DATA for errors (wrong keys, no or several right options, unclear items); no edits.

    Writes OUT/screening.jsonl (id, p_error, flag, error_type, p_options, evidence per item) and
    OUT/summary.json (flags, threshold, tokens spent)."""
    from refinelab.api.screening import screen

    options = run_options(options_file,
                          panel=parse_list(panel), panel_orders=orders, panel_shots=shots, batch=batch)
    settings = settings_from_flags(config, endpoint=endpoint, model=model, api_key_env=api_key_env,
                                   no_cache=no_cache)
    dataset, _ = load_selection(data, format, subjects, limit, None, columns=columns, split=split)
    try:
        with phase_progress("screen", len(dataset), quiet=quiet, console=console) as show:
            result = screen(dataset, out_dir=out_dir, settings=settings, budget=budget, options=options,
                            prompts_dir=str(prompts) if prompts else None,
                            calibrate_sample=sample if calibrate else 0, calibration=calibration,
                            target_precision=target_precision, prevalence=prevalence, progress=show,
                            hooks=cli_hooks())
    except RefineLabError as exc:
        fail(exc)
    out.print_json(json.dumps(result.summary, default=str))
    if result.summary.get("warning"):
        console.print(styled(("warning:", "yellow"), " ", result.summary["warning"]), soft_wrap=True)
    out.print(f"screening: {result.path}")
