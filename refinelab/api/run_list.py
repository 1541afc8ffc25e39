"""`refinelab runs`: the run folders under a runs folder and where each stands, read without opening anything
for writing.

A user with a dozen runs asks which finished, which stopped and can be resumed, which is running now, and what
each spent and made. The answers are in each folder's settings.json (its data and budget), report.json (a
finished run's figures) and lock (a running one). A folder that cannot be read is listed with its one-line
problem, not skipped: the listing is where a damaged run is noticed, a run folder that lost its settings.json
included. Folders holding none of a run's own files (a plan's, a profile's, a screen's) are not runs and are
left out.

Every command that reads a run names it the same way, through `locate_run`: a run id under the runs folder
(`--runs-dir`, else the configured `runs_dir`, where `refine` put it), or a path to the run folder itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from refinelab.api.run_checks import check_run_files
from refinelab.api.run_files import read_report
from refinelab.api.run_folders import run_path, validate_run_id
from refinelab.api.run_lock import lock_holder
from refinelab.api.run_settings import read_settings
from refinelab.errors import ConfigError, DataError, RunNotFound
from refinelab.run_layout import RUN_MARKERS, SETTINGS

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


@dataclass(frozen=True)
class RunLocation:
    """Where a command's RUN argument points: the runs folder and the run's name in it, which is what
    `resume` and `review` take, and `path`, the run folder itself, which is what `report`, `export` and
    `trace` read."""

    runs_dir: Path
    run_id: str

    @property
    def path(self) -> Path:
        return self.runs_dir / self.run_id


def runs_folder(runs_dir: str | Path | None = None) -> Path:
    """`runs_dir` when given, else the configured runs folder (settings `runs_dir`: REFINELAB_RUNS_DIR or the
    default `runs`): `refine` writes its run there, so the commands that read runs must look there too, or
    `refinelab runs` right after a run says there is none. ConfigError when the settings are invalid."""
    if runs_dir is not None:
        return Path(runs_dir)
    from refinelab.config import load_settings

    return load_settings().runs_dir


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a run's folder: it holds one of the files only a run writes (`run_layout.RUN_MARKERS`), so a run
    that lost its settings.json still counts (and is listed as unreadable) while a plan's or a profile's
    folder does not."""
    return path.is_dir() and any(os.path.lexists(path / name) for name in RUN_MARKERS)


#: what a folder holding none of a run's files is told (locate_run, api.find_run)
NOT_A_RUN_FOLDER = f"not a RefineLab run folder (it holds none of {', '.join(RUN_MARKERS)})"


def locate_run(run: str, runs_dir: str | Path | None = None) -> RunLocation:
    """The run a command's RUN argument names: a run id under `runs_dir` (default: `runs_folder()`), or a
    path to a run folder (`runs/RUN`, an absolute path, `.` inside it). One rule for every command, so a
    path that `report` accepts is accepted by `resume` and `review` too. An id that names a folder under the
    runs folder means that folder (a symbolic link there is refused, `run_path`); otherwise a run folder at
    that path is used. Anything else is a RunNotFound (a FileNotFoundError: exit 2) saying what is wrong;
    nothing is read beyond the folder's file names."""
    try:
        validate_run_id(run)
    except ConfigError:
        is_id = False
    else:
        is_id = True
    if is_id:
        root = runs_folder(runs_dir)
        if os.path.lexists(run_path(root, run)) or not is_run_folder(Path(run)):
            return RunLocation(root, run)
    folder = Path(os.path.abspath(run))
    if not is_run_folder(folder):
        problem = "no such folder" if not folder.exists() else NOT_A_RUN_FOLDER
        if os.sep in run or run in (".", ".."):  # a path: what is wrong with it is all the user needs
            raise RunNotFound(str(folder), problem)
        raise RunNotFound(run, f"not a run id (1-128 letters, digits, '.', '_' or '-'), and {folder}: {problem}")
    return RunLocation(folder.parent, folder.name)


def list_runs(runs_dir: str | Path | None = None) -> list[RunEntry]:
    """Every run folder directly under `runs_dir` (default: the configured runs folder, `runs_folder`, where
    `refine` writes), the most recently changed first; [] for an empty folder.
    A `runs_dir` that does not exist is a FileNotFoundError: a mistyped --runs-dir listed as "no run
    folders" looked like runs had vanished."""
    runs_dir = runs_folder(runs_dir)
    if not runs_dir.exists():
        raise FileNotFoundError(f"no runs folder {runs_dir}")
    if not runs_dir.is_dir():
        raise ConfigError(f"runs folder {runs_dir} is not a folder")
    entries = [run_entry(path) for path in runs_dir.iterdir() if not path.is_symlink() and is_run_folder(path)]
    return sorted(entries, key=lambda entry: entry.modified, reverse=True)


def run_entry(run_dir: Path) -> RunEntry:
    """Where one run folder stands (see `RunEntry`). Unreadable too: a folder whose name is no run id (no
    command can name it) or that holds a named pipe, a device or a folder where a run's file goes."""
    modified = _newest_change(run_dir)
    if not os.path.lexists(run_dir / SETTINGS):  # its other files say it is a run: a damaged one
        present = [name for name in RUN_MARKERS if os.path.lexists(run_dir / name)]
        return RunEntry(run_dir.name, "unreadable", f"{SETTINGS}: missing beside {', '.join(present)} (the "
                        "folder was copied in part, or damaged)", modified=modified)
    try:
        validate_run_id(run_dir.name, "folder name")  # no command could name it: resume and review take an id
        check_run_files(run_dir)  # before anything is opened: a named pipe there hung the listing
        saved = read_settings(run_dir / SETTINGS)
    except (ConfigError, DataError) as exc:
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
    replayed = ledger.get("replayed")  # a whole number or absent: read_report's schema (LedgerSummary)
    return RunEntry(
        run_dir.name, "finished", str(report.get("stop_reason") or ""), dataset, budget,
        spent=ledger.get("spent"), replayed=replayed, input_items=report.get("input_items"),
        output_items=report.get("output_items"),
        committed=sum(n for key, n in outcomes.items() if key.endswith(":committed")), modified=modified)


def _newest_change(run_dir: Path) -> float:
    """The newest modification time among the folder and its files (a run's files change as it works)."""
    times = [run_dir.stat().st_mtime]
    with os.scandir(run_dir) as files:
        times += [f.stat(follow_symlinks=False).st_mtime for f in files if f.is_file(follow_symlinks=False)]
    return max(times)
