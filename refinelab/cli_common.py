"""What several commands share: load a dataset selection and its targets, failing with exit code 2."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from refinelab.errors import ConfigError, DataError, RefineLabError, error_line
from refinelab.planner.targets import TargetError, Targets, load_targets
from refinelab.schema import Dataset


def load_selection(data: Path, format: str | None, subjects: str | None, limit: int | None,
                   targets: Path | None, console: Console) -> tuple[Dataset, Targets]:
    """The dataset (invalid rows quarantined), narrowed to `subjects`/`limit`, and the resolved targets."""
    from refinelab.io import load_dataset

    try:
        dataset = load_dataset(data, format=format, on_invalid="quarantine")
        if subjects or limit:
            dataset = dataset.filter([s.strip() for s in subjects.split(",")] if subjects else None, limit)
        resolved = load_targets(targets) if targets else Targets()
    except (RefineLabError, TargetError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(error_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, DataError | ConfigError | TargetError | ValueError) else 1) from exc
    return dataset, resolved
