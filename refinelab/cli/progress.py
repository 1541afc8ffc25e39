"""Progress display fed from the graph stream: a rich bar per phase plus tokens spent of the budget.

`--quiet` shows nothing; `--json` prints one JSON object per event (for scripts and CI logs).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressView:
    """Context manager turning stream events into progress bars or JSON lines."""

    def __init__(self, mode: str = "rich") -> None:
        self.mode = mode  # rich | json | quiet
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.budget_task: Any = None

    def __enter__(self) -> ProgressView:
        if self.mode == "rich":
            self.progress = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            sys.stdout.write(json.dumps(_jsonable(event), default=str) + "\n")
            sys.stdout.flush()
            return
        assert self.progress is not None
        spent, cap = event.get("spent", 0), event.get("cap")
        if cap:
            if self.budget_task is None:
                self.budget_task = self.progress.add_task("tokens", total=cap)
            self.progress.update(self.budget_task, completed=spent)
        data = event.get("data")
        if event.get("mode") == "custom" and isinstance(data, dict) and "progress" in data:
            name = data["progress"]
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=data["total"])
            self.progress.update(self.tasks[name], completed=data["done"], total=data["total"])
        elif event.get("mode") == "updates" and isinstance(data, dict):
            for node, update in data.items():
                if node == "plan" and isinstance(update, dict):
                    tasks = update.get("tasks") or []
                    key = f"round {update.get('round')}"
                    self.tasks[key] = self.progress.add_task(f"edits {key}", total=max(1, len(tasks)))
                    self.tasks["_current"] = self.tasks[key]
                if isinstance(update, dict) and update.get("outcomes") and "_current" in self.tasks:
                    self.progress.advance(self.tasks["_current"], len(update["outcomes"]))


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    if event.get("mode") == "updates" and isinstance(data, dict):
        data = {node: (sorted(update) if isinstance(update, dict) else str(update)) for node, update in data.items()}
    return {"mode": event.get("mode"), "data": data, "spent": event.get("spent"), "cap": event.get("cap")}
