"""`refinelab sandbox run FILE.py`: run a file in the PoT sandbox and print the ExecResult as JSON.

For people debugging Program-of-Thoughts code: same sandbox, same limits as the validator.
Exit status: 0 the snippet ran cleanly, 1 it raised / timed out / hit a limit, 2 bad input,
3 the sandbox is unavailable (e.g. bubblewrap missing; nothing is ever run unsandboxed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from refinelab.cli.common import EXIT_ENDPOINT, fail
from refinelab.tools.sandbox_base import SandboxError
from refinelab.tools.sandboxes import BACKENDS, run_file

sandbox_app = typer.Typer(help="Run code in the Program-of-Thoughts sandbox.", no_args_is_help=True)

#: A needed service is unavailable: the same status as an unreachable endpoint (cli/common's exit codes).
EXIT_SANDBOX_UNAVAILABLE = EXIT_ENDPOINT


@sandbox_app.callback()
def _group() -> None:
    """Run code in the Program-of-Thoughts sandbox (a group, so `run` stays a subcommand)."""


@sandbox_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Python file to run")],
    backend: Annotated[str, typer.Option(help="local (bubblewrap) or e2b")] = "local",
    timeout: Annotated[float, typer.Option(help="wall-clock limit in seconds")] = 10.0,
) -> None:
    """Run FILE in the sandbox and print stdout, stderr, result, error, limits hit and exit code as JSON."""
    if backend not in BACKENDS:
        fail(f"--backend must be one of {', '.join(BACKENDS)}")
    if timeout <= 0:
        fail("--timeout must be > 0")
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        result = run_file(file, backend, timeout)
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text ({exc})")
    except SandboxError as exc:
        fail(f"sandbox unavailable: {exc}", EXIT_SANDBOX_UNAVAILABLE)
    sys.stdout.write(result.to_json(indent=2, ensure_ascii=False) + "\n")
    raise typer.Exit(0 if result.ok else 1)
