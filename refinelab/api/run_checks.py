"""Read-only soundness checks of a run folder, before anything opens it for writing.

A run folder may come from elsewhere, be damaged by a kill, or be edited by hand. Each check here reads a
private copy (`snapshot`) and never touches the folder, so a bad folder gets a one-line DataError naming the
file (and the table, row and column) and is left exactly as it was: not a resume or a review stopping
partway, with a traceback, on the first bad row it happens to read.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from refinelab.atomic import NOT_REGULAR
from refinelab.errors import DataError, validation_problems
from refinelab.run_layout import CHECKPOINTS, LEDGER, RUN_FILES, STORE

#: each database of a run folder and the tables a RefineLab run gives it (the checkpoints' are LangGraph's)
SQLITE_TABLES = {STORE: ("items", "meta"), LEDGER: ("calls", "meta"), CHECKPOINTS: ()}
#: the store's columns that hold one item's JSON, each read back into a `QAItem` as the run goes on
ITEM_COLUMNS = {"items": ("original", "current"), "edits": ("before", "after")}
#: (table, the row's name, column) of the store's evidence: JSON objects read by resume, review and report
EVIDENCE_COLUMNS = (("diagnostics", "item_id || ' ' || check_name", "evidence"),
                    ("edits", "edit_id || ' attempt ' || attempt", "evidence"))


@contextlib.contextmanager
def snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a private copy of `path` and its write-ahead log: a killed run's last writes are
    seen (SQLite replays the log in the copy) and the run folder itself is never touched."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="refinelab-check-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and not wal.is_symlink():
            shutil.copyfile(wal, copy.with_name("db.sqlite-wal"))
        db = sqlite3.connect(str(copy))
        try:
            yield db
        finally:
            db.close()


def check_sqlite(path: Path, tables: tuple[str, ...] = ()) -> None:
    """DataError (one line, naming the file) unless `path` is a sound SQLite database with `tables`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        raise DataError(str(path), None, None, "is empty (0 bytes): the run folder is damaged")
    try:
        with snapshot(path) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                raise DataError(str(path), None, None, f"database is corrupt ({str(result and result[0])[:120]})")
            have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise DataError(str(path), None, None, f"not a readable SQLite database ({exc}); the file is truncated "
                                               f"or corrupt") from None
    missing = [t for t in tables if t not in have]
    if missing:
        raise DataError(str(path), None, None, f"not a RefineLab run database (no table {missing[0]!r})")


def check_run_files(run_dir: Path) -> None:
    """Each file a run folder may hold that RefineLab opens (`run_layout.RUN_FILES`) is absent or, links
    followed, a regular file, else a one-line `DataError` naming it. Every read-only command on a run folder
    (`runs`, `report`, `export`, `RunResult.open`) passes through `read_report`, which checks this first: a
    named pipe planted as refined.jsonl or settings.json hung the read that followed. (A link itself is
    refused only by `resume`, `check_run_folder`, which asks this too: `report` replaces a planted report.html link.)"""
    for name in RUN_FILES:
        try:
            mode = os.stat(run_dir / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:  # a link loop, a name too long
            raise DataError(str(run_dir / name), None, None, f"cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(mode):
            raise DataError(str(run_dir / name), None, None, NOT_REGULAR)


def check_run_folder(run_dir: Path, rows: bool = True) -> None:
    """Read-only checks of a run folder before a resume opens anything in it for writing; `rows`: every item
    row of its store too (`check_store_items`)."""
    if not run_dir.is_dir():
        raise DataError(str(run_dir), None, None, "no such run folder")
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_symlink():
            raise DataError(str(path), None, None, "is a symbolic link; a run folder must hold regular files")
    check_run_files(run_dir)
    if not (run_dir / STORE).exists():
        raise DataError(str(run_dir / STORE), None, None, "missing: the run never started or is damaged")
    for name, tables in SQLITE_TABLES.items():
        check_sqlite(run_dir / name, tables)
    if rows:
        check_store_items(run_dir / STORE)


def check_store_items(path: Path) -> None:
    """Every item the store holds reads back as one (its JSON is an item): a run folder from elsewhere, or one
    edited by hand, is refused here naming the table, the row's id and the column, instead of a resume or a
    review stopping partway with pydantic's dump of the first bad row it happens to read. Read from a private
    copy (nothing in the folder is touched). A text seen once is not validated again (an unedited item's
    current is its original): about 65 µs a row measured on 2 shared cores, some seconds for a 100k-item run."""
    from pydantic import ValidationError

    from refinelab.schema import QAItem
    from refinelab.tools.store import json_column

    seen: set[str] = set()
    with snapshot(path) as db:
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in ITEM_COLUMNS.items():
            if table not in have:
                continue
            key = "id" if table == "items" else "edit_id || ' attempt ' || attempt"
            # an input row quarantined at load (`RunStore.add_rejected`) is a placeholder, never read as an
            # item: no original, its id alone as `current`; a run with invalid rows was refused as damaged
            placeholder = " AND NOT (status = 'failed' AND original IS NULL)" if table == "items" else ""
            for column in columns:
                for row_key, raw in db.execute(
                        f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL{placeholder}"):
                    if raw in seen:
                        continue
                    seen.add(raw)
                    try:
                        QAItem.model_validate_json(raw)
                    except (ValidationError, ValueError, TypeError) as exc:
                        raise DataError(str(path), None, f"{table}.{column}", f"row {str(row_key)[:80]!r} does not "
                                        f"hold an item ({validation_problems(exc)[:200]}); the run folder is damaged "
                                        "or was edited") from None
        # the JSON a resume or a review reads later: refused here, before the run starts, not partway
        for table, key, column in EVIDENCE_COLUMNS:
            if table not in have:
                continue
            for row_key, raw in db.execute(f"SELECT {key}, {column} FROM {table}"):
                if not isinstance(json_column(raw, path, f"{table}.{column}", str(row_key)), dict):
                    raise DataError(str(path), None, f"{table}.{column}", f"row {str(row_key)[:80]!r}: expected a "
                                    "JSON object; the run folder is damaged or was edited")
