"""Run folders: which names are allowed, where they resolve, and claiming one for a new run or a resume.

A run id is a folder name under the runs root and nothing else: a conservative character set, no
separators, no dot-names, so `--run-id ../x`, `/tmp/x` or `..` can never place (or overwrite) files
outside `--runs-dir`. A run's identity (its checkpoint thread) is stored inside the folder, so a renamed or
copied folder resumes as itself. Claiming puts the pieces together in the order that keeps a bad folder
untouched: the read-only checks (api/run_checks.py, api/run_checkpoints.py), the saved settings
(api/run_settings.py) and their seal (api/run_seal.py) first, then the lock (api/run_lock.py).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from refinelab.api.run_checkpoints import check_checkpoint, require_checkpoint
from refinelab.api.run_checks import check_run_folder, snapshot
from refinelab.api.run_lock import RunLock
from refinelab.api.run_seal import settings_sealed, untrusted_run
from refinelab.api.run_settings import read_settings, saved_models
from refinelab.errors import ConfigError, DataError
from refinelab.run_layout import CHECKPOINTS, LOCK, SETTINGS, STORE

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunExists(ConfigError):
    """`refine` was given the id of a run that already started."""


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """`run_id` if it is a safe folder name; ConfigError (exit 2) naming the problem otherwise."""
    if not isinstance(run_id, str) or not run_id:
        raise ConfigError(f"{what} is empty")
    if not RUN_ID_PATTERN.fullmatch(run_id) or run_id.endswith("."):
        raise ConfigError(
            f"{what} {run_id!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (no path separators, no '..', no spaces or control characters)")
    return run_id


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, if it lies inside `root` (resolved); ConfigError otherwise."""
    root_resolved = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(path))
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise ConfigError(f"{path} resolves to {resolved}, outside {root_resolved}")
    return resolved


def run_path(runs_dir: str | Path, run_id: str) -> Path:
    """The folder of run `run_id` under `runs_dir`, checked to stay inside it (a symlinked run folder
    pointing elsewhere is refused)."""
    validate_run_id(run_id)
    root = Path(runs_dir)
    path = root / run_id
    if path.is_symlink():
        raise ConfigError(f"run folder {path} is a symbolic link; refusing to use it")
    inside(root, path)
    return path


def run_identity(run_dir: Path) -> str | None:
    """The id a run was created with (its checkpoint thread), read from the store without writing. The
    store is untrusted: its meta value is parsed by the store's own reader (`store.json_column`, safeload),
    so bad or deeply nested JSON is a one-line DataError naming the store, `meta.value` and the row, not a
    RecursionError naming nothing; a value that is not text is refused the same way."""
    from refinelab.tools.store import json_column

    store = run_dir / STORE
    if not store.exists():
        return None
    with snapshot(store) as db:
        row = db.execute("SELECT value FROM meta WHERE key='run_id'").fetchone()
    if not row:
        return None
    value = json_column(row[0], store, "meta.value", "run_id")
    if value is not None and not isinstance(value, str):
        raise DataError(str(store), None, "meta.value", f"row 'run_id': expected text, got {type(value).__name__}; "
                        "the run folder is damaged or was edited")
    return value or None


class RunFolder:
    """A run folder this process holds: its path, identity (checkpoint thread), lock and saved settings."""

    def __init__(self, path: Path, identity: str, lock: RunLock, created: bool,
                 saved: dict[str, Any] | None = None) -> None:
        self.path, self.identity, self.lock, self.created, self.saved = path, identity, lock, created, saved

    def release(self) -> None:
        self.lock.release()

    def discard(self) -> None:
        """Undo a run that failed before it started: remove the folder if this process created it."""
        self.lock.release()
        if self.created:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


def _started(path: Path) -> bool:
    """Whether a run has started in `path`: its store or its settings exist."""
    return (path / STORE).exists() or (path / SETTINGS).exists()


def check_new(runs_dir: str | Path, run_id: str) -> Path:
    """The folder a new run `run_id` takes, or RunExists if that run started (RunBusy naming the pid while a
    process works on it). `refine` asks before its slow work (reading and embedding a decontamination
    reference took minutes before this cheap refusal), and `claim_new` again under the lock."""
    path = run_path(runs_dir, run_id)
    if _started(path):
        if path.is_dir() and not (path / LOCK).is_symlink():
            RunLock(path).acquire().release()  # RunBusy naming the pid when a process is working on it
        raise RunExists(f"run {run_id} already exists in {path}; use `refinelab resume {run_id}`")
    return path


def claim_new(runs_dir: str | Path, run_id: str) -> RunFolder:
    """Create (or take an empty) run folder for a new run and lock it; RunExists if the run started."""
    path = check_new(runs_dir, run_id)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path} exists and is not a folder") from None
    inside(Path(runs_dir), path)
    lock = RunLock(path).acquire()
    if _started(path):  # another process won the race
        lock.release()
        raise RunExists(f"run {run_id} already exists in {path}; use `refinelab resume {run_id}`")
    return RunFolder(path, run_id, lock, created)


def check_existing(runs_dir: str | Path, run_id: str, *, trust: bool = False, resuming: bool = False,
                   rows: bool = True) -> tuple[Path, str, dict[str, Any]]:
    """The read-only checks of a run folder before a resume: (folder, identity, saved settings), or a
    one-line error naming the file (nothing modified). Settings without this user's seal are refused
    unless `trust` (UntrustedRun, exit 2); `resuming` also needs a checkpoint to continue from (a review
    or a Studio server reopening its run does not). The CLI calls it before loading the graph, so a
    damaged or foreign folder is refused in a fraction of a second (`rows=False` there: the store's item rows,
    seconds on a large run, are read once, by `claim_existing`, which repeats the checks under the lock)."""
    path = run_path(runs_dir, run_id)
    if not path.is_dir():
        raise FileNotFoundError(f"no run {run_id} in {runs_dir}")
    check_run_folder(path, rows)
    saved = read_settings(path / SETTINGS)
    saved_models(saved, path)  # validation errors first: they say more than a missing seal
    if not trust and not settings_sealed(path):
        raise untrusted_run(path, saved)
    try:
        identity = run_identity(path) or run_id
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise DataError(str(path / STORE), None, None, f"run identity unreadable ({exc})") from None
    if resuming:
        require_checkpoint(path / CHECKPOINTS, identity)
    else:
        check_checkpoint(path / CHECKPOINTS, identity)
    return path, identity, saved


def claim_existing(runs_dir: str | Path, run_id: str, *, trust: bool = False, resuming: bool = False) -> RunFolder:
    """Check a run folder read-only (`check_existing`), then lock it for a resume."""
    path, identity, saved = check_existing(runs_dir, run_id, trust=trust, resuming=resuming)
    lock = RunLock(path).acquire()
    return RunFolder(path, identity, lock, created=False, saved=saved)
