"""`refinelab runs`: the run folders under a runs folder and where each stands, read without opening anything
for writing.

A user with a dozen runs asks which finished, which stopped and can be resumed, which is running now, and what
each spent and made. The answers are in each folder's settings.json (its data and budget), report.json (a
finished run's figures) and lock (a running one). A folder that cannot be read is listed with its one-line
problem, not skipped: the listing is where a damaged run is noticed. Folders without settings.json (a plan's
or a profile's) are not runs and are left out.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from refinelab.api.run_files import read_report
from refinelab.api.run_folders import lock_holder, read_settings
from refinelab.errors import DataError

RunState = Literal["finished", "running", "stopped", "unreadable"]


@dataclass(frozen=True)
class RunEntry:
    """One run folder as `refinelab runs` lists it. `detail`: the stop reason of a finished run, the pid of a
    running one, what to do with a stopped one, the problem of an unreadable one. The figures are None where
    the folder does not say (a run that has not finished wrote no report)."""

    run_id: str
    state: RunState
    detail: str
    dataset: str | None = None
    budget: int | None = None
    spent: int | None = None  # tokens paid for
    replayed: int | None = None  # tokens answered from the response cache, which count against the budget too
    input_items: int | None = None
    output_items: int | None = None
    committed: int | None = None  # edits committed, the intake's removals included
    modified: float = 0.0  # the folder's newest file change, seconds since the epoch

    @property
    def used(self) -> int | None:
        """What the budget counts: tokens paid for and replayed (a run's `used`, api/runs.py)."""
        return None if self.spent is None else self.spent + (self.replayed or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"used": self.used}


def list_runs(runs_dir: str | Path) -> list[RunEntry]:
    """Every run folder directly under `runs_dir`, the most recently changed first; [] when there is none."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    entries = [run_entry(path) for path in runs_dir.iterdir()
               if path.is_dir() and not path.is_symlink() and (path / "settings.json").is_file()]
    return sorted(entries, key=lambda entry: entry.modified, reverse=True)


def run_entry(run_dir: Path) -> RunEntry:
    """Where one run folder stands (see `RunEntry`)."""
    modified = _newest_change(run_dir)
    try:
        saved = read_settings(run_dir / "settings.json")
    except DataError as exc:
        return RunEntry(run_dir.name, "unreadable", str(exc), modified=modified)
    dataset = saved.get("dataset") if isinstance(saved.get("dataset"), str) else None
    budget = saved.get("budget")
    holder = lock_holder(run_dir)
    if holder is not None:
        return RunEntry(run_dir.name, "running", f"pid {holder}" if holder else "starting", dataset, budget,
                        modified=modified)
    try:
        report = read_report(run_dir)
    except DataError as exc:
        return RunEntry(run_dir.name, "unreadable", str(exc), dataset, budget, modified=modified)
    if not report:
        return RunEntry(run_dir.name, "stopped", f"not finished: `refinelab resume {run_dir.name}` continues it "
                        f"(`refinelab review {run_dir.name}` if it waits for a decision)", dataset, budget,
                        modified=modified)
    outcomes = (report.get("edits") or {}).get("outcomes") or {}
    ledger = report.get("ledger") or {}
    return RunEntry(
        run_dir.name, "finished", str(report.get("stop_reason") or ""), dataset, budget,
        spent=ledger.get("spent"), replayed=ledger.get("replayed"), input_items=report.get("input_items"),
        output_items=report.get("output_items"),
        committed=sum(n for key, n in outcomes.items() if key.endswith(":committed")), modified=modified)


def _newest_change(run_dir: Path) -> float:
    """The newest modification time among the folder and its files (a run's files change as it works)."""
    times = [run_dir.stat().st_mtime]
    with os.scandir(run_dir) as files:
        times += [f.stat(follow_symlinks=False).st_mtime for f in files if f.is_file(follow_symlinks=False)]
    return max(times)
