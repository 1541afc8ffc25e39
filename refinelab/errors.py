"""The exception types users see. Each names what went wrong precisely enough to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from refinelab.redact import redact, redact_secrets


class RefineLabError(Exception):
    """Base class for every error RefineLab raises on purpose."""


class DataError(RefineLabError):
    """Bad input data. Names the file, the line or row, the field, and what was expected."""

    def __init__(self, path: str, row: int | None, field: str | None, problem: str) -> None:
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = self.path
        if row is not None:
            where += f", row {row}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")


class SplitNeeded(DataError):
    """A folder holds several splits and none was named. `flag`/`keyword` name the option that picks one: the
    loader says `--split`, and a caller reading the file for another option (a reference) re-raises the error
    naming its own with `for_option`, so that the hint is one the user can type."""

    def __init__(self, path: str, holds: str, flag: str = "--split", keyword: str = "split") -> None:
        self.holds = holds
        super().__init__(path, None, None, f"{holds}; choose one with {flag} NAME (Python: {keyword}=)")

    def for_option(self, flag: str, keyword: str) -> SplitNeeded:
        """The same error, naming the option `flag` (Python: `keyword`) instead."""
        return SplitNeeded(self.path, self.holds, flag, keyword)


class RunNotFound(DataError, FileNotFoundError):
    """No run where the caller pointed: no run of that id in the runs folder, no folder at that path, or a
    folder that is not a RefineLab run (it holds none of a run's files). One type for every function that
    opens a run (`resume`, the review functions, `open_run`, `report`, `export`), so a notebook needs one
    `except`; a DataError as the other bad input is, and a FileNotFoundError as code written against the
    older errors (and the CLI's exit 2) expects."""

    def __init__(self, run: str, problem: str) -> None:
        self.run = run
        super().__init__(run, None, None, problem)


class ConfigError(RefineLabError):
    """Invalid configuration (YAML file, environment or flags)."""


class BudgetExhausted(RefineLabError):
    """A call could not be reserved within the token cap. The graph finalizes with what is done."""

    def __init__(self, requested: int, available: int, cap: int) -> None:
        self.requested, self.available, self.cap = requested, available, cap
        super().__init__(f"token budget exhausted: need {requested}, {available} of {cap} left")


class LLMCallFailed(RefineLabError):
    """A model call failed after its retries. Carries the raw output so nothing is silently dropped."""

    def __init__(self, message: str, raw_outputs: list[str] | None = None, attempts: int = 0,
                 tokens: int = 0) -> None:
        self.raw_outputs = [redact_secrets(r) for r in raw_outputs or []]  # endpoint text may quote our key
        self.attempts = attempts
        self.tokens = tokens  # what the failed attempts cost (usage the provider reported)
        super().__init__(redact(message))


class EndpointUnavailable(RefineLabError):
    """Model calls keep failing before any answer comes back (connection refused, timeouts, 5xx): the
    run stops here, every item as it was, and `refinelab resume` continues once the endpoint is back."""

    def __init__(self, endpoint: str, failures: int, last_error: str, reason: str = "") -> None:
        self.endpoint, self.failures = endpoint, failures
        self.last_error = redact(last_error)
        why = reason or f"{failures} consecutive model calls failed without an answer"
        self.run_id: str | None = None
        super().__init__(f"model endpoint {endpoint} unavailable: {why}; last error: {self.last_error}")

    def for_run(self, run_id: str, run_dir: object, counts: dict[str, int], spent: int) -> EndpointUnavailable:
        """The same error, telling the user what happened to the run and how to continue it."""
        self.run_id = run_id
        self.args = (f"{self.args[0]}. Run {run_id} stopped before it finished; its items are unchanged "
                     f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), {spent} tokens spent. "
                     f"Continue with `refinelab resume {run_id} --runs-dir {getattr(run_dir, 'parent', run_dir)}` "
                     f"once the endpoint answers.",)
        return self


def error_line(exc: BaseException) -> str:
    """The one line a user sees: the message with secrets redacted and newlines folded."""
    return redact(str(exc) or type(exc).__name__)


def validation_problem(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field, message) of one of a pydantic error's problems (`exc.errors()`): the field dotted ("" for
    the whole model), the message without pydantic's "Value error, " prefix."""
    return ".".join(str(p) for p in error["loc"]), str(error["msg"]).removeprefix("Value error, ")


def validation_problems(exc: ValueError) -> str:
    """What a failed validation says, on one line: a pydantic error's problems as "field: message" joined by
    "; " (its text ends with a documentation link, and a reason cut to its last line said only that), any
    other ValueError's first line."""
    if isinstance(exc, ValidationError):
        return "; ".join(": ".join(part for part in validation_problem(err) if part) for err in exc.errors())
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
