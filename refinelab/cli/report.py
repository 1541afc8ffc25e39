"""`refinelab report RUN` and `refinelab export RUN --hf/--parquet/--jsonl/--lm-eval`, mounted by refinelab.cli.

Kept out of cli.py so that matplotlib and lm-eval-related code load only when these commands run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refinelab.atomic import UnsafePathError
from refinelab.cli import arguments as arg
from refinelab.cli.common import fail, out
from refinelab.errors import DataError, RefineLabError
from refinelab.run_layout import REPORT_HTML


def _run_dir(run_id: str, runs_dir: Path | None) -> Path:
    """RUN may be an id under --runs-dir (default: the configured runs folder) or a path to the run folder
    itself: `refinelab.api.run_list.locate_run`, the rule every command that reads a run shares."""
    from refinelab.api.run_list import locate_run

    try:
        return locate_run(run_id, runs_dir).path
    except (RefineLabError, FileNotFoundError) as exc:
        fail(exc)


def report_command(
    run_id: Annotated[str, typer.Argument(help="run id (or path to a run folder)")],
    runs_dir: arg.RunsDir = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of RUN/report.html")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="open the page in a browser")] = False,
) -> None:
    """Build RUN/report.html: before/after distributions, budget, operations, edit examples, leftovers."""
    from refinelab.api import report
    from refinelab.api.report_html import ReportError

    if output is not None and output.is_dir():  # refused before the page is built, as the atomic write would
        fail(f"--output {output} is a folder; name the file to write, e.g. {output / REPORT_HTML}")
    run_dir = _run_dir(run_id, runs_dir)
    try:
        path = report(run_dir, output)
    except (ReportError, UnsafePathError) as exc:  # a bad run folder, or -o naming something not a file
        fail(exc, 2)
    except (OSError, RefineLabError) as exc:
        fail(exc)
    out.print(f"report: {path}", highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


def export_command(
    run_id: Annotated[str, typer.Argument(help="run id (or path to a run folder)")],
    lm_eval: Annotated[Path | None, typer.Option("--lm-eval", help="folder to write the lm-eval-harness task into")] = None,
    hf: Annotated[Path | None, typer.Option("--hf", help=(
        "new folder for a Hugging Face dataset (save_to_disk) with its README.md card"))] = None,
    parquet: Annotated[Path | None, typer.Option("--parquet", help=(
        "a .parquet file (card: README.md beside it) or a new folder (README.md + data/test.parquet)"))] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="like --parquet, as JSON lines")] = None,
    runs_dir: arg.RunsDir = None,
    task_name: Annotated[str | None, typer.Option(help="task name (default: refinelab_<run id>)")] = None,
    choice_format: Annotated[str, typer.Option(
        help="letters: MMLU-style lettered options, scores ' A'/' B'...; text: scores each option's text")] = "letters",
) -> None:
    """Export the refined set of RUN: --hf, --parquet, --jsonl (each with a dataset card), --lm-eval.

    --hf DIR, --parquet FILE|DIR, --jsonl FILE|DIR and/or --lm-eval DIR (an lm-eval-harness task)."""
    from refinelab.api import export
    from refinelab.api.results import save

    if not any((lm_eval, hf, parquet, jsonl)):
        fail("name at least one of --hf, --parquet, --jsonl, --lm-eval")
    run_dir = _run_dir(run_id, runs_dir)
    try:
        for target, format in ((hf, "hf"), (parquet, "parquet"), (jsonl, "jsonl")):
            if target is not None:
                written = save(run_dir, target, format)  # type: ignore[arg-type]
                out.print(f"{format}: {written}", highlight=False)
        if lm_eval is not None:
            path = export(run_dir, lm_eval, task_name, choice_format)  # type: ignore[arg-type]
            out.print(f"lm-eval task: {path}", highlight=False)
            out.print(f"run it with: lm_eval --include_path {path.parent} --tasks {path.stem} --model ...",
                      highlight=False, soft_wrap=True)
    except (FileNotFoundError, ValueError, DataError) as exc:
        fail(exc, 2)
    except (OSError, RefineLabError) as exc:
        fail(exc)
