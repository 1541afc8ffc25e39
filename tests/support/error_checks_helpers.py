"""The deterministic error checks over a whole dataset, for tests: the profiler checks one item at a time
(`agents/screening.error_diagnostic`), so this loop has no caller in the package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from refinelab.metrics.error_checks import check_row, modal_choice_count
from refinelab.schema import Diagnostic, QAItem


def run_error_checks(
    rows: Sequence[QAItem | Mapping[str, Any]], *, expected_choices: int | None = None
) -> dict[str, list[Diagnostic]]:
    """Deterministic checks for a whole dataset, keyed by item id; the option-count norm is the mode."""
    expected = expected_choices if expected_choices is not None else modal_choice_count(rows)
    result: dict[str, list[Diagnostic]] = {}
    for index, row in enumerate(rows):
        diags = check_row(row, expected_choices=expected, index=index)
        result.setdefault(diags[0].item_id, []).extend(diags)
    return result
