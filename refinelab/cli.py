"""The `refinelab` command line. Bad input exits with code 2 and a message naming file, row, field."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from refinelab import __version__
from refinelab.errors import ConfigError, DataError, RefineLabError

app = typer.Typer(help="Refine multiple-choice QA datasets under a token budget.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded offline model.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect and validate datasets.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")

console = Console(stderr=True)
out = Console()

EXIT_BAD_INPUT = 2


def fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT if isinstance(exc, DataError | ConfigError) else 1)


@app.command()
def version() -> None:
    """Print the RefineLab version."""
    out.print(f"refinelab {__version__}")


@model_app.command("serve")
def model_serve(
    model: Annotated[str, typer.Option(help="embedded model name")] = "qwen2.5-coder-1.5b",
    parallel: Annotated[int, typer.Option(help="parallel slots")] = 2,
) -> None:
    """Run the embedded llama.cpp server in the foreground until Ctrl-C."""
    from refinelab.tools.embedded_server import start_server

    handle = start_server(model, parallel=parallel)
    out.print(f"serving {model} at {handle.base_url} (pid {handle.pid}); Ctrl-C to stop")
    try:
        while handle.process is not None and handle.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


@model_app.command("check")
def model_check(
    model: Annotated[str, typer.Option(help="embedded model name")] = "qwen2.5-coder-1.5b",
    endpoint: Annotated[str, typer.Option(help="'embedded' or an OpenAI-compatible URL")] = "embedded",
) -> None:
    """Make one real structured call; print latency and tokens."""
    from typing import Literal

    from pydantic import BaseModel

    from refinelab.config import ModelSpec
    from refinelab.tools.ledger import CallTag, Ledger
    from refinelab.tools.llm import ChatClient

    class Answer(BaseModel):
        answer: Literal["A", "B", "C", "D"]

    ledger = Ledger()
    client = ChatClient(ModelSpec(endpoint=endpoint, model=model, max_tokens=40), ledger, role="check")
    started = time.monotonic()
    try:
        client.chat_model()
        ready = time.monotonic() - started
        result = client.structured(
            [{"role": "user", "content": "Which is a prime number?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer with the letter."}],
            Answer, CallTag(node="model-check"),
        )
    except RefineLabError as exc:
        fail(exc)
    out.print_json(json.dumps({
        "model": model, "endpoint": endpoint, "answer": result.parsed.answer, "correct": result.parsed.answer == "C",
        "server_ready_s": round(ready, 2), "latency_s": round(result.latency_s, 2),
        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
        "ledger_spent": ledger.spent,
    }))


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="file or folder (JSONL, MMLU CSV, ARC JSONL, Parquet)")],
    format: Annotated[str | None, typer.Option(help="jsonl | mmlu | arc | parquet | csv")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Load a dataset strictly; print counts by subject and every problem found. Exit 2 on problems."""
    from refinelab.io import load_dataset

    try:
        dataset = load_dataset(path, format=format, on_invalid="quarantine")
    except DataError as exc:
        fail(exc)
    dupes = dataset.duplicates()
    problems = [str(e) for e in dataset.rejected]
    if as_json:
        out.print_json(json.dumps({
            "items": len(dataset), "subjects": dict(dataset.subjects()), "invalid_rows": problems,
            "duplicate_questions": dupes.duplicate_questions,
        }))
    else:
        table = Table(title=f"{path}: {len(dataset)} valid items")
        table.add_column("subject")
        table.add_column("items", justify="right")
        for subject, count in sorted(dataset.subjects().items()):
            table.add_row(subject, str(count))
        out.print(table)
        for problem in problems:
            out.print(f"[red]invalid[/red] {problem}", highlight=False)
        for group in dupes.duplicate_questions:
            out.print(f"[yellow]duplicate question[/yellow] {', '.join(group)}", highlight=False)
    if problems:
        raise typer.Exit(EXIT_BAD_INPUT)


def _mount_optional() -> None:
    """Sub-apps that live in their own modules."""
    try:
        from refinelab.cli_sandbox import sandbox_app
    except ImportError:
        return
    app.add_typer(sandbox_app, name="sandbox")


_mount_optional()


def main() -> None:
    try:
        app()
    except RefineLabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(EXIT_BAD_INPUT if isinstance(exc, DataError | ConfigError) else 1)


if __name__ == "__main__":
    main()
