"""`refinelab report RUN` and `refinelab export RUN --lm-eval DIR`, mounted by refinelab.cli.

Kept out of cli.py so that matplotlib and lm-eval-related code load only when these commands run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from refinelab.errors import DataError, RefineLabError
from refinelab.tools.redact import redact

console = Console(stderr=True)
out = Console()

EXIT_BAD_INPUT = 2


def _run_dir(run_id: str, runs_dir: Path) -> Path:
    """RUN may be an id under --runs-dir or a path to the run folder itself."""
    direct = Path(run_id)
    if (direct / "report.json").exists() or (direct / "refined.jsonl").exists():
        return direct
    return runs_dir / run_id


def _fail(message: object, code: int = EXIT_BAD_INPUT) -> None:
    console.print(f"[red]error:[/red] {escape(redact(str(message)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def report_command(
    run_id: Annotated[str, typer.Argument(help="run id (or path to a run folder)")],
    runs_dir: Annotated[Path, typer.Option(help="where run folders are")] = Path("runs"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of RUN/report.html")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="open the page in a browser")] = False,
) -> None:
    """Build RUN/report.html: before/after distributions, budget, operations, edit examples, leftovers."""
    from refinelab.report_html import ReportError, build_report

    try:
        path = build_report(_run_dir(run_id, runs_dir), output)
    except ReportError as exc:
        _fail(exc)
    except (OSError, RefineLabError) as exc:
        _fail(exc, 1)
    out.print(f"report: {path}", highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


def export_command(
    run_id: Annotated[str, typer.Argument(help="run id (or path to a run folder)")],
    lm_eval: Annotated[Path, typer.Option("--lm-eval", help="folder to write the lm-eval-harness task into")],
    runs_dir: Annotated[Path, typer.Option(help="where run folders are")] = Path("runs"),
    task_name: Annotated[str | None, typer.Option(help="task name (default: refinelab_<run id>)")] = None,
    choice_format: Annotated[str, typer.Option(
        help="letters: MMLU-style lettered options, scores ' A'/' B'...; text: scores each option's text")] = "letters",
) -> None:
    """Write the refined set of RUN as an lm-eval-harness task (YAML + JSONL) into --lm-eval DIR."""
    from refinelab.export_lmeval import export_lm_eval

    run_dir = _run_dir(run_id, runs_dir)
    try:
        path = export_lm_eval(run_dir, lm_eval, task_name, choice_format)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError, DataError) as exc:
        _fail(exc)
    except (OSError, RefineLabError) as exc:
        _fail(exc, 1)
    out.print(f"lm-eval task: {path}", highlight=False)
    out.print(f"run it with: lm_eval --include_path {path.parent} --tasks {path.stem} --model ...", highlight=False,
              soft_wrap=True)
