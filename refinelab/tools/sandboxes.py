"""Making a sandbox by backend name, and running one file in a fresh one (`refinelab sandbox run`)."""

from __future__ import annotations

from pathlib import Path

from refinelab.tools.sandbox_base import CodeSandbox, ExecResult, SandboxLimits

BACKENDS = ("local", "e2b")


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
