"""The `refinelab` command line: commands parse arguments and call the library (`refinelab.api`).

Bad input exits with code 2 and one line naming file, row and field (`cli.common.fail`, the one error path).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from refinelab import __version__
from refinelab.cli import arguments as arg
from refinelab.cli.common import (
    EXIT_BAD_INPUT,
    clip,
    console,
    exit_code,
    fail,
    load_selection,
    options_text,
    out,
    parse_list,
    print_error,
    run_options,
    safe_text,
    settings_from_flags,
    styled,
)
from refinelab.cli.usage import run_app
from refinelab.config import DEFAULT_MODEL
from refinelab.errors import ConfigError, RefineLabError
from refinelab.run_layout import TRACE

if TYPE_CHECKING:  # the run's modules load only when a command runs one (~2.5 s)
    from refinelab.api.runs import RunResult

app = typer.Typer(help="Refine multiple-choice QA datasets under a token budget.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded offline model.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect and validate datasets.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"refinelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Refine multiple-choice QA datasets under a token budget."""


@app.command()
def version() -> None:
    """Print the RefineLab version."""
    out.print(f"refinelab {__version__}")


@model_app.command("serve")
def model_serve(
    model: Annotated[str, typer.Option(help="embedded model name")] = DEFAULT_MODEL,
    parallel: Annotated[int, typer.Option(help="parallel slots")] = 2,
) -> None:
    """Run the embedded llama.cpp server in the foreground until Ctrl-C."""
    from refinelab.tools.embedded_server import serve_until_signalled, start_server

    handle = start_server(model, parallel=parallel)
    serve_until_signalled(handle, announce=lambda: out.print(  # SIGTERM/SIGHUP/Ctrl-C stop the server too
        f"serving {model} at {handle.base_url} (pid {handle.pid}); Ctrl-C to stop"))


@model_app.command("check")
def model_check(
    model: Annotated[str, typer.Option(help="embedded model name")] = DEFAULT_MODEL,
    endpoint: Annotated[str, typer.Option(help="'embedded' or an OpenAI-compatible URL")] = "embedded",
) -> None:
    """Make one real structured call; print latency and tokens."""
    from refinelab.tools.model_check import check_model

    try:
        report = check_model(model, endpoint)
    except RefineLabError as exc:
        fail(exc)
    out.print_json(json.dumps(report))


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="file or folder (JSONL or a .json array, CSV with a header, MMLU "
                                              "CSV, ARC, Parquet, Arrow; .gz too)")],
    format: arg.Format = None,
    split: arg.Split = None,
    columns: arg.Columns = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Load a dataset strictly; print counts by subject and every problem found. Exit 2 on problems."""
    from refinelab.io import load_dataset, parse_columns

    try:
        mapping = parse_columns(columns) if columns else None
        dataset = load_dataset(path, format=format, mapping=mapping, on_invalid="quarantine", split=split)
    except RefineLabError as exc:
        fail(exc)
    dupes = dataset.duplicates()
    problems = [str(e) for e in dataset.rejected]
    first = dataset.items[0] if len(dataset) else None
    if as_json:
        out.print_json(json.dumps({
            "items": len(dataset), "subjects": dict(dataset.subjects()), "invalid_rows": problems,
            "duplicate_questions": dupes.duplicate_questions,
            "first_item": first.model_dump(mode="json") if first is not None else None,
        }))
    else:
        out.print(f"{safe_text(path)}: {len(dataset)} valid items", soft_wrap=True)  # a line: a title wraps mid-word
        table = Table()
        table.add_column("subject")
        table.add_column("items", justify="right")
        for subject, count in sorted(dataset.subjects().items()):
            table.add_row(safe_text(subject), str(count))
        out.print(table)
        if first is not None:  # how the file was read: which text became the question, the options, the key
            out.print(styled(("first item as read", "bold"), f" ({safe_text(first.id)}): {clip(first.question, 200)}",
                             options_text(first.choices, first.answer, limit=100)), soft_wrap=True)
        for problem in problems:
            out.print(styled(("invalid", "red"), f" {safe_text(problem)}"), soft_wrap=True)
        for group in dupes.duplicate_questions:
            out.print(styled(("duplicate question", "yellow"), f" {safe_text(', '.join(group))}"), soft_wrap=True)
    if problems:
        raise typer.Exit(EXIT_BAD_INPUT)


def _progress_mode(quiet: bool, as_json: bool) -> str:
    return "json" if as_json else "quiet" if quiet else "rich"


def _line(text: str) -> None:
    """One summary line as written, not wrapped (scripts read these lines; the console reads no markup)."""
    out.print(text, soft_wrap=True)


def _print_result(result: RunResult, as_json: bool) -> None:
    """The run's summary (`RunResult.summary`, read from its report by the library), or where it paused."""
    if result.paused:  # stopped at human review: no outputs yet
        line = {"run_id": result.run_id, "pending_review": result.pending_review}
        if as_json:
            out.print_json(json.dumps({"result": line}))
        else:
            out.print(f"run {line['run_id']} paused: {line['pending_review']} decision(s) pending; "
                      f"run `refinelab review {line['run_id']}`")
        return
    summary = result.summary()
    if as_json:
        out.print_json(json.dumps({"result": summary.as_dict()}, default=str))
    else:
        for text in summary.lines():
            _line(text)


def _run_and_report(start: Callable[[Any], Any], quiet: bool, as_json: bool) -> None:
    """Run (or resume) with progress shown as asked, then print the result; failures take the one error path."""
    from refinelab.cli.progress import ProgressView

    try:
        with ProgressView(_progress_mode(quiet, as_json)) as view:
            result = start(view)
    except (RefineLabError, ValueError, FileExistsError, FileNotFoundError) as exc:
        fail(exc)
    _print_result(result, as_json)


@app.command("refine")
def refine_command(
    data: arg.Data,
    budget: Annotated[int, typer.Option(help="token budget (hard cap)")],
    targets: Annotated[Path | None, typer.Option(help="targets YAML")] = None,
    subjects: arg.Subjects = None,
    limit: arg.Limit = None,
    format: arg.Format = None,
    split: arg.Split = None,
    columns: arg.Columns = None,
    endpoint: arg.Endpoint = None,
    model: arg.Model = None,
    api_key_env: arg.ApiKeyEnv = None,
    config: arg.Config = None,
    run_id: Annotated[str | None, typer.Option(help="name of the run folder")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="where run folders go (default: the configured runs_dir, "
                                                       "REFINELAB_RUNS_DIR, else ./runs)")] = None,
    rounds: Annotated[int | None, typer.Option(help="refinement rounds (default 2, or the options file's)")] = None,
    mode: Annotated[str | None, typer.Option(help="planner: ilp (the default) | lp-round | greedy | random")] = None,
    prompts: arg.Prompts = None,
    operations: arg.Operations = None,
    rag_corpus: Annotated[str | None, typer.Option(
        help="retrieval corpus: 'wikipedia' (default), 'wikipedia:mmlu_redux,nq,boolq,wikitext', or a JSONL/folder")] = None,
    min_size: Annotated[int | None, typer.Option(
        "--min-size", min=0, help="keep at least this many items (default: 90% of the valid input)")] = None,
    allow_shrink: Annotated[bool | None, typer.Option(
        "--allow-shrink/--no-allow-shrink",
        help="let the planner remove items to rebalance (default: only defects are removed)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse cached responses")] = False,
    batch: Annotated[bool | None, typer.Option("--batch/--no-batch", help="profile label calls and panel probes "
                                               "through the OpenAI Batch API (half price on hosted APIs)")] = None,
    distractors: Annotated[bool | None, typer.Option("--distractors/--no-distractors", help="score distractor "
                                                     "sets while profiling (MiniLM + the panel's pick rates; no "
                                                     "model tokens), so the planner can buy measured distractor "
                                                     "rewrites (default: on)")] = None,
    skill_method: arg.SkillMethod = None,
    panel: arg.Panel = None,
    calibration: arg.Calibration = None,
    options_file: arg.Options = None,
    review: Annotated[str | None, typer.Option(help="undecided edits, weak passes, unfixed flagged items: ask (pause "
                                               "for `refinelab review`) | auto-accept | auto-reject (the "
                                               "default)")] = None,
    strict: Annotated[bool, typer.Option(help="fail on the first invalid row instead of quarantining it")] = False,
    decontaminate: arg.Decontaminate = None,
    decontaminate_split: arg.DecontaminateSplit = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines of progress, then a JSON result")] = False,
) -> None:
    """Profile, plan, refine and validate DATA within BUDGET tokens; write the run folder."""
    from refinelab.api.run_folders import validate_run_id
    from refinelab.api.run_settings import validate_budget

    try:
        validate_budget(budget)
        if run_id is not None:
            validate_run_id(run_id)
    except RefineLabError as exc:
        fail(exc)
    settings = settings_from_flags(config, endpoint=endpoint, model=model, api_key_env=api_key_env,
                                   runs_dir=runs_dir, no_cache=no_cache)
    options = run_options(options_file,
                          rounds=rounds, planner_mode=mode, operations=parse_list(operations),
                          rag_corpus=rag_corpus, min_size=min_size, allow_shrink=allow_shrink, review=review,
                          batch=batch, distractors=distractors, skill_method=skill_method, panel=parse_list(panel),
                          screening_model=calibration)
    dataset, resolved = load_selection(data, format, subjects, limit, targets, strict=strict, columns=columns, split=split)
    if dataset.rejected and not quiet:
        console.print(styled((f"{len(dataset.rejected)} invalid row(s) quarantined", "yellow"),
                             f" (first: {safe_text(str(dataset.rejected[0]))}); they are listed in report.json"), soft_wrap=True)
    # imported after the input checks: it loads LangGraph and the model client (~2.5 s)
    from refinelab.api import refine as run_refine
    from refinelab.cli.progress import cli_hooks

    _run_and_report(lambda view: run_refine(dataset, budget=budget, targets=resolved, settings=settings,
                                            run_id=run_id, prompts_dir=str(prompts) if prompts else None,
                                            on_event=view, options=options, decontaminate=decontaminate,
                                            decontaminate_split=decontaminate_split, hooks=cli_hooks()), quiet, as_json)


@app.command("resume")
def resume_command(
    run: Annotated[str, typer.Argument(help="the run to continue: its id, or a path to its folder")],
    runs_dir: arg.RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines of progress, then a JSON result")] = False,
    trust_run: Annotated[bool, typer.Option("--trust-run", help=(
        "resume a run folder whose settings.json this user's RefineLab did not write (from elsewhere, or "
        "edited); its settings choose endpoints and API keys"))] = False,
) -> None:
    """Continue a killed run from its last checkpoint without paying for finished calls again."""
    from refinelab.api.run_folders import check_existing
    from refinelab.api.run_list import locate_run

    try:  # read-only checks before the graph is loaded (~2 s): a damaged or foreign folder fails at once
        where = locate_run(run, runs_dir)
        check_existing(where.runs_dir, where.run_id, trust=trust_run, resuming=True, rows=False)
    except (RefineLabError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    from refinelab.api import resume
    from refinelab.cli.progress import cli_hooks

    _run_and_report(lambda view: resume(where.run_id, runs_dir=where.runs_dir, on_event=view, trust=trust_run,
                                        hooks=cli_hooks()),
                    quiet, as_json)


@app.command("runs")
def runs_command(
    runs_dir: arg.RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per run folder, as a list")] = False,
) -> None:
    """List the run folders: finished (stop reason, tokens, items in and out, edits committed), running
    (pid), stopped (resume it) or unreadable (why). Reads only; the newest first."""
    from datetime import datetime

    from refinelab.api.run_list import list_runs, runs_folder

    try:
        root = runs_folder(runs_dir)
        entries = list_runs(root)
    except (RefineLabError, FileNotFoundError) as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([entry.to_dict() for entry in entries]))
        return
    if not entries:
        out.print(f"no run folders in {safe_text(root)}", soft_wrap=True)
        return
    table = Table()  # the run id and state whole at any width (piped output is 80 columns); the rest folds
    for column in ("run", "changed", "state", "data", "tokens", "items", "committed", "detail"):
        table.add_column(column, no_wrap=column in ("run", "state"), overflow="fold")
    for entry in entries:
        tokens = (f"{entry.used:,} of {entry.budget:,}" if entry.used is not None and entry.budget is not None
                  else "" if entry.budget is None else f"budget {entry.budget:,}")
        items = (f"{entry.input_items} → {entry.output_items}"
                 if entry.input_items is not None and entry.output_items is not None else "")
        table.add_row(safe_text(entry.run_id), datetime.fromtimestamp(entry.modified).strftime("%Y-%m-%d %H:%M"),
                      entry.state, safe_text(entry.dataset or ""), tokens, items,
                      "" if entry.committed is None else str(entry.committed), safe_text(entry.detail))
    out.print(table)


@app.command("trace")
def trace_command(
    run: Annotated[str, typer.Argument(help="run id, or a path to a run folder")],
    runs_dir: arg.RunsDir = None,
    depth: Annotated[int, typer.Option(help="levels to show")] = 3,
) -> None:
    """Print the run tree with tokens and timings."""
    from refinelab.api.run_list import locate_run
    from refinelab.cli.trace_view import render_tree

    try:
        path = locate_run(run, runs_dir).path / TRACE
    except (RefineLabError, FileNotFoundError) as exc:
        fail(exc)
    if not path.exists():
        fail(FileNotFoundError(f"no trace at {path}"))
    try:
        out.print(render_tree(path, depth))
    except RefineLabError as exc:
        fail(exc)


packs_app = typer.Typer(help="Domain packs: prompts and validator choices per domain.", no_args_is_help=True)
app.add_typer(packs_app, name="packs")


@packs_app.command("list")
def packs_list(prompts: Annotated[Path | None, typer.Option(help="user folder with packs/ and prompt overrides")] = None) -> None:
    """List the packs (packaged and the user's), with what they include."""
    from refinelab.prompts.loader import PromptError, PromptLibrary

    try:
        library = PromptLibrary(prompts)
        table = Table(title="domain packs")
        for column in ("pack", "includes", "validator", "description"):
            table.add_column(column)
        for name in library.pack_names():
            pack = library.pack(name)
            table.add_row(safe_text(name), safe_text(" → ".join(pack.chain[1:]) or "-"),
                          safe_text(pack.options.get("validator", "")), safe_text(pack.description))
    except PromptError as exc:
        fail(ConfigError(str(exc)))
    out.print(table)


@packs_app.command("show")
def packs_show(
    name: Annotated[str, typer.Argument(help="pack name")],
    prompts: Annotated[Path | None, typer.Option(help="user folder with packs/ and prompt overrides")] = None,
) -> None:
    """Show a pack: its include chain, options, and every prompt with the file it comes from."""
    from refinelab.prompts.loader import PromptError, PromptLibrary

    try:
        pack = PromptLibrary(prompts).pack(name)
    except PromptError as exc:
        fail(ConfigError(str(exc)))
    out.print(styled((safe_text(pack.name), "bold"), f": {safe_text(pack.description)}"))
    out.print(safe_text(f"chain: {' → '.join(pack.chain)}; options: {pack.options}"))
    for prompt in sorted(pack.prompts):
        out.print(styled("\n", (safe_text(prompt), "bold"), f"  ({safe_text(pack.sources.get(prompt))})"))
        for role, text in pack.prompts[prompt].items():
            out.print(styled((f"{safe_text(role)}:", "dim"), f" {safe_text(str(text).strip(), keep_newlines=True)}"))


def _mount_optional() -> None:
    """Sub-apps that live in their own modules."""
    from refinelab.cli.plan import plan_command; app.command("plan")(plan_command)  # noqa: E702, I001
    from refinelab.cli.profile import profile_command; app.command("profile")(profile_command)  # noqa: E702, I001
    from refinelab.cli.screen import screen_command; app.command("screen")(screen_command)  # noqa: E702, I001
    from refinelab.cli.overlap import overlap_command; data_app.command("overlap")(overlap_command)  # noqa: E702, I001
    from refinelab.cli.report import export_command, report_command
    app.command("report")(report_command)
    app.command("export")(export_command)
    from refinelab.cli.review import review_command; app.command("review")(review_command)  # noqa: E702, I001
    from refinelab.cli.sandbox import sandbox_app
    app.add_typer(sandbox_app, name="sandbox")


_mount_optional()


def main() -> None:
    """The console script: a library error that escaped a command still ends as one line and its code."""
    try:
        run_app(app)  # a usage error (a misspelt flag, a missing argument) ends as one line and exit 2
    except RefineLabError as exc:
        print_error(exc)
        sys.exit(exit_code(exc))
    except Exception as exc:  # noqa: BLE001 - never a raw traceback; REFINELAB_DEBUG=1 shows it
        from refinelab.cli.crash import report_unexpected

        sys.exit(report_unexpected(exc, console))


if __name__ == "__main__":
    main()
