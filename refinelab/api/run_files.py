"""A run folder's JSON files read back: `report.json` and `changes.jsonl` against the shape their readers
rely on, one reader each.

Why a schema: a run folder may come from elsewhere (a colleague's run, a downloaded audit), so its files
are untrusted input like a dataset. `report`, `export` and `RunResult` read their figures and tables;
before this, a wrong type (`"metrics_before": [1, 2]` in report.json, `"tokens": "x"` in changes.jsonl)
crashed them with an AttributeError or ValueError and exit 1. Now a file that does not have the shape a
run writes is a one-line `DataError` naming the file, the row and the field (exit 2 from the CLI). Only
what readers use is typed; every other key passes through as written, so a folder written by a newer
version with more keys still reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refinelab.api.run_checks import check_run_files
from refinelab.atomic import open_regular
from refinelab.errors import DataError, validation_problem
from refinelab.io import jsonl_objects
from refinelab.run_layout import CHANGES, REPORT_JSON
from refinelab.safeload import loads_json

MAX_JSON_BYTES = 50_000_000


class _Section(BaseModel):
    """Typed where a reader looks, anything else kept as written. Strict: `"5"` is no count and `5.0` no
    whole number, so what passes is exactly what the readers compute with (a run writes nothing else).
    Finite: JSON's `1e999` reads as infinity, which no run writes (it would write `Infinity`, which is
    refused) and which the report's figures cannot draw or count with."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class Metrics(_Section):
    """`metrics_before` / `metrics_after`: the set's headline figures and its distributions."""

    items: int | None = None
    coverage_jsd: float | None = None
    difficulty_jsd: float | None = None
    expected_errors: float | None = None
    coverage: dict[str, float] = {}  # "domain|skill" -> share
    difficulty: dict[str, float] = {}  # bucket -> share


class LedgerSlot(_Section):
    calls: int | None = None
    tokens: float | None = None


class LedgerSummary(_Section):
    """`ledger`: the budget authority's summary (tools/ledger.py)."""

    cap: int | None = None
    spent: int | None = None
    calls: int | None = None
    # counts the listing and the CLI's summary add up: a string or a list there took `refinelab runs` down
    replayed: int | None = Field(None, ge=0)
    prompt_tokens: int | None = Field(None, ge=0)
    cached_prompt_tokens: int | None = Field(None, ge=0)
    by_node: dict[str, LedgerSlot] = {}
    by_operation: dict[str, LedgerSlot] = {}
    by_model: dict[str, LedgerSlot] = {}


class EditCounts(_Section):
    attempts: int | None = None
    outcomes: dict[str, int] = {}  # "operation:outcome" -> edits


class PlannedOperation(_Section):
    count: int = 0
    tokens: float = 0.0


class PlanSummary(_Section):
    """One round's plan as the report lists it."""

    round: int | None = None
    mode: str | None = None
    solver: str | None = None
    status: str | None = None
    reason: str | None = None
    budget: float | None = None
    forecast_tokens: float | None = None
    marginal_value_per_1k: float | None = None
    notes: list[Any] = []
    metrics: dict[str, Any] = {}
    by_op: dict[str, PlannedOperation] = {}  # operation -> what the plan bought of it


class RunReport(_Section):
    """report.json (graph/outputs.py writes it)."""

    run_id: str | None = None
    stop_reason: str | None = None
    rounds: int | None = None
    input_items: int | None = None
    output_items: int | None = None
    new_items: int | None = None
    items_by_status: dict[str, int] = {}
    invalid_input: list[Any] = []
    edits: EditCounts | None = None
    gave_up: list[dict[str, Any]] = []
    unfixed_flagged_items: list[dict[str, Any]] = []
    metrics_before: Metrics | None = None
    metrics_after: Metrics | None = None
    plans: list[PlanSummary] = []
    reviews: dict[str, Any] = {}
    ledger: LedgerSummary | None = None
    notices: list[Any] = []  # the report shows the strings among them


class ChangeRow(_Section):
    """One line of changes.jsonl: an edit attempt with its before, after, verdict and evidence."""

    edit_id: str | None = None
    round: int | None = None
    attempt: int | None = None
    item_id: str | None = None
    operation: str | None = None
    target: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    verdict: str | None = None
    reason: str | None = None
    outcome: str | None = None
    evidence: dict[str, Any] = {}
    tokens: int | None = None
    review: dict[str, Any] | None = None


def read_run_json(path: Path) -> dict[str, Any]:
    """A JSON object file of a run folder ({} when it is absent); a regular file (`atomic.open_regular`: a
    named pipe hung the read), size, encoding, depth and top-level type checked, each failure a one-line
    `DataError` naming the file."""
    if not path.exists():
        return {}
    with open_regular(path) as handle:
        raw = handle.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise DataError(str(path), None, None, f"larger than {MAX_JSON_BYTES} bytes")
    try:
        value = loads_json(raw.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    if not isinstance(value, dict):
        raise DataError(str(path), None, None, "expected a JSON object")
    return value


def read_report(run_dir: Path) -> dict[str, Any]:
    """RUN/report.json as written ({} when the run has not finished), once it is known to have the shape of
    `RunReport`: nothing is coerced, so a figure reads as the run wrote it. The folder's files are checked
    first (`check_run_files`)."""
    check_run_files(run_dir)
    path = run_dir / REPORT_JSON
    raw = read_run_json(path)
    try:
        RunReport.model_validate(raw)
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        raise DataError(str(path), None, field or None, f"{message} (not the shape a RefineLab run writes)") from None
    return raw


def read_changes(run_dir: Path) -> list[dict[str, Any]]:
    """RUN/changes.jsonl, each row checked against `ChangeRow` ([] when the run wrote none); a bad row is a
    one-line `DataError` naming the file, the row and the field. Lines are read by the datasets' reader
    (`io.jsonl_objects`: encoding, safeload, one object per line)."""
    path = run_dir / CHANGES
    if not path.is_file() or path.stat().st_size == 0:  # a run with no edits writes an empty file
        return []
    rows = []
    for number, value in jsonl_objects(path):
        try:
            ChangeRow.model_validate(value)
        except ValidationError as exc:
            field, message = validation_problem(exc.errors()[0])
            raise DataError(str(path), number, field or None, message) from None
        rows.append(value)
    return rows
