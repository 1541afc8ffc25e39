"""The exception types users see. Each names what went wrong precisely enough to fix it."""

from __future__ import annotations


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
        self.raw_outputs = raw_outputs or []
        self.attempts = attempts
        self.tokens = tokens  # what the failed attempts cost (usage the provider reported)
        super().__init__(message)
