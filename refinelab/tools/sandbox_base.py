"""The sandbox contract shared by every backend: ``CodeSandbox``, ``ExecResult``, ``SandboxLimits``.

The Program-of-Thoughts validator runs untrusted, model-written Python. It depends only on this
module; the local bubblewrap backend (``sandbox_local``) and the E2B backend (``sandbox_e2b``)
both implement ``CodeSandbox`` and pass one conformance suite (tests/sandbox).

Plain dataclasses (stdlib only) on purpose: the host side of the local backend must import under
any Python 3.11 interpreter, including the system one used for the non-root attack suite.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

KIB = 1024
MIB = 1024 * 1024


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the user's code)."""


class SandboxUnavailable(SandboxError):
    """The backend cannot provide isolation here (e.g. bubblewrap missing); never run unsandboxed."""


@dataclass(frozen=True)
class ExecError:
    """An exception raised by the user's code (maps to E2B's ``ExecutionError``)."""

    name: str
    value: str
    traceback: str


@dataclass
class ExecResult:
    """Outcome of one snippet. Everything in it is untrusted data: the snippet can print anything."""

    stdout: str = ""
    stderr: str = ""
    result_text: str | None = None  # repr of the last expression, Jupyter style (E2B: Execution.text)
    error: ExecError | None = None
    exit_code: int | None = None  # local: process status (137 / -9 killed, 139 / -11 segfault); E2B: None
    timed_out: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the snippet ran to completion without an exception or a limit being hit."""
        return (
            self.error is None
            and not self.timed_out
            and not self.output_truncated
            and self.exit_code in (0, None)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecResult:
        d = dict(data)
        if d.get("error") is not None:
            d["error"] = ExecError(**d["error"])
        return cls(**d)


@dataclass(frozen=True)
class SandboxLimits:
    """Resource policy for one snippet. Defaults suit PoT checks (small, pure computations).

    ``cpu_s`` defaults to ``ceil(timeout_s) + 1`` (the wall clock normally fires first); the hard
    CPU limit is one second more, so a snippet that ignores SIGXCPU is SIGKILLed. ``memory_mb`` is RLIMIT_AS (virtual memory, so leave room
    for numpy/sympy: about 200 MiB of address space). ``tmpfs_mb`` caps the private ``/tmp``;
    ``nproc`` caps processes when ``allow_subprocess`` is on (otherwise seccomp forbids them).
    """

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_mb: int = 512
    nproc: int = 32
    output_bytes: int = 64 * KIB  # per stream (stdout, stderr)
    tmpfs_mb: int = 64
    fsize_mb: int = 16
    nofile: int = 64
    allow_subprocess: bool = False

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        for name in ("memory_mb", "nproc", "output_bytes", "tmpfs_mb", "fsize_mb", "nofile"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError("cpu_s must be > 0")

    @property
    def effective_cpu_s(self) -> int:
        return self.cpu_s if self.cpu_s is not None else int(-(-self.timeout_s // 1)) + 1

    def with_timeout(self, timeout_s: float | None) -> SandboxLimits:
        """Same policy with a per-call wall clock (``None`` keeps the default)."""
        if timeout_s is None or timeout_s == self.timeout_s:
            return self
        return SandboxLimits(**{**asdict(self), "timeout_s": timeout_s})

    def rlimits(self) -> dict[str, int]:
        """The in-sandbox rlimit request (sent to the bootstrap)."""
        return {
            "cpu_s": self.effective_cpu_s,
            "as_bytes": self.memory_mb * MIB,
            "nproc": self.nproc,
            "fsize_bytes": self.fsize_mb * MIB,
            "nofile": self.nofile,
            "allow_subprocess": self.allow_subprocess,
        }


@runtime_checkable
class CodeSandbox(Protocol):
    """What the validator needs: run a snippet in isolation, get an ``ExecResult``; never raises
    for failures of the user's code (those land in ``error`` / ``timed_out`` / ``exit_code``)."""

    limits: SandboxLimits

    def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult: ...

    def close(self) -> None: ...
