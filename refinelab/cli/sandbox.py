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

from refinelab.tools.sandbox_base import CodeSandbox, ExecResult, SandboxError, SandboxLimits

sandbox_app = typer.Typer(help="Run code in the Program-of-Thoughts sandbox.", no_args_is_help=True)

BACKENDS = ("local", "e2b")


@sandbox_app.callback()
def _group() -> None:
    """Run code in the Program-of-Thoughts sandbox (a group, so `run` stays a subcommand)."""


def make_sandbox(backend: str, limits: SandboxLimits, *, mode: str = "cold") -> CodeSandbox:
    """A sandbox of the named backend. E2B reads its connection settings from E2B_* variables."""
    if backend == "local":
        from refinelab.tools.sandbox_local import LocalSandbox

        return LocalSandbox(limits, mode=mode)
    if backend == "e2b":
        from refinelab.tools.sandbox_e2b import E2BSandbox

        return E2BSandbox(limits)
    raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def run_file(path: str | Path, backend: str = "local", timeout: float = 10.0) -> ExecResult:
    """Run the Python file at ``path`` once in a fresh sandbox (cold path for the local backend)."""
    code = Path(path).read_text(encoding="utf-8")
    sandbox = make_sandbox(backend, SandboxLimits(timeout_s=timeout))
    try:
        return sandbox.execute(code)
    finally:
        sandbox.close()


@sandbox_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Python file to run")],
    backend: Annotated[str, typer.Option(help="local (bubblewrap) or e2b")] = "local",
    timeout: Annotated[float, typer.Option(help="wall-clock limit in seconds")] = 10.0,
) -> None:
    """Run FILE in the sandbox and print stdout, stderr, result, error, limits hit and exit code as JSON."""
    if backend not in BACKENDS:
        typer.echo(f"error: --backend must be one of {', '.join(BACKENDS)}", err=True)
        raise typer.Exit(2)
    if timeout <= 0:
        typer.echo("error: --timeout must be > 0", err=True)
        raise typer.Exit(2)
    if not file.is_file():
        typer.echo(f"error: {file}: no such file", err=True)
        raise typer.Exit(2)
    try:
        result = run_file(file, backend, timeout)
    except UnicodeDecodeError as exc:
        typer.echo(f"error: {file}: not UTF-8 text ({exc})", err=True)
        raise typer.Exit(2) from exc
    except SandboxError as exc:
        typer.echo(f"error: sandbox unavailable: {exc}", err=True)
        raise typer.Exit(3) from exc
    sys.stdout.write(result.to_json(indent=2, ensure_ascii=False) + "\n")
    raise typer.Exit(0 if result.ok else 1)
