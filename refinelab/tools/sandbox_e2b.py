"""E2B backend: runs snippets in an E2B cloud sandbox through the real ``e2b-code-interpreter``.

Why: a stronger (VM) boundary than a local namespace sandbox when one is available, behind the
same ``CodeSandbox`` contract. Behaviour (docs/sandbox.md):

* the E2B sandbox is created lazily and reused; each snippet gets a fresh code context by default
  so QA items do not see each other's variables (``fresh_context=False`` saves two round trips);
* E2B's timeout is client side and the remote kernel keeps running, so on ``TimeoutException``
  the sandbox is killed and recreated on the next call;
* output caps are applied here (the remote side has none) and set ``output_truncated``.

Connection options (``api_key``, ``domain``, ``api_url``, ``sandbox_url``, ``debug``,
``request_timeout``) go straight to ``Sandbox.create``; tests point them at ``e2b_fake_server``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from .sandbox_base import ExecError, ExecResult, SandboxError, SandboxLimits, SandboxUnavailable


def _cap(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


class E2BSandbox:
    """``CodeSandbox`` backed by ``e2b_code_interpreter.Sandbox``. Thread-safe (calls serialise)."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        template: str | None = None,
        lifetime_s: int = 300,
        fresh_context: bool = True,
        **connection: Any,
    ) -> None:
        try:
            from e2b_code_interpreter import Sandbox
        except ImportError as exc:  # optional extra
            raise SandboxUnavailable("the E2B backend needs `pip install refinelab[e2b]`") from exc
        self._cls = Sandbox
        self.limits = limits or SandboxLimits()
        self.template = template
        self.lifetime_s = lifetime_s
        self.fresh_context = fresh_context
        self.connection = connection
        self._sbx: Any = None
        self._lock = threading.Lock()

    def _sandbox(self) -> Any:
        if self._sbx is None:
            try:
                self._sbx = self._cls.create(template=self.template, timeout=self.lifetime_s, **self.connection)
            except Exception as exc:  # noqa: BLE001 - auth, network, quota: all "no sandbox"
                raise SandboxError(f"could not create an E2B sandbox: {exc}") from exc
        return self._sbx

    def _reset(self) -> None:
        sbx, self._sbx = self._sbx, None
        if sbx is not None:
            with contextlib.suppress(Exception):
                sbx.kill()

    def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run ``code``; a snippet's exception or timeout comes back in the result, not raised."""
        from e2b.exceptions import TimeoutException

        limits = self.limits.with_timeout(timeout_s)
        with self._lock:
            t0 = time.monotonic()
            sbx = self._sandbox()
            ctx = None
            try:
                if self.fresh_context:
                    ctx = sbx.create_code_context()
                ex = sbx.run_code(code, context=ctx, timeout=limits.timeout_s)
            except TimeoutException:
                self._reset()  # the remote kernel may still be running it
                return ExecResult(timed_out=True, duration_s=time.monotonic() - t0)
            except Exception as exc:  # noqa: BLE001
                self._reset()
                raise SandboxError(f"E2B execution failed: {exc}") from exc
            if ctx is not None:
                with contextlib.suppress(Exception):
                    sbx.remove_code_context(ctx)
            stdout, cut_out = _cap("".join(ex.logs.stdout), limits.output_bytes)
            stderr, cut_err = _cap("".join(ex.logs.stderr), limits.output_bytes)
            err = ex.error
            return ExecResult(
                stdout=stdout,
                stderr=stderr,
                result_text=ex.text,
                error=ExecError(err.name, err.value, err.traceback) if err is not None else None,
                exit_code=None,
                timed_out=False,
                output_truncated=cut_out or cut_err,
                duration_s=time.monotonic() - t0,
            )

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __enter__(self) -> E2BSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
