"""The per-run SQLite store: items, diagnostics, edits and evidence. Graph state holds only ids.

Every write is idempotent (keyed by item id, or edit id + attempt) so a task re-run after a crash
overwrites its own rows instead of duplicating them.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from refinelab.errors import DataError
from refinelab.redact import configured_secrets, redact, redact_json, redact_secrets
from refinelab.safeload import loads_json
from refinelab.schema import Diagnostic, QAItem

REJECTED_POSITION = 10_000_000  # invalid input rows sort after every item

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    original TEXT,                 -- JSON of the input item (NULL for new items)
    current TEXT NOT NULL,         -- JSON of the item as it stands now
    status TEXT NOT NULL,          -- kept | edited | removed | new | failed
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS diagnostics (
    item_id TEXT NOT NULL, check_name TEXT NOT NULL, flag INTEGER NOT NULL, score REAL NOT NULL,
    evidence TEXT NOT NULL, PRIMARY KEY (item_id, check_name)
);
CREATE TABLE IF NOT EXISTS edits (
    edit_id TEXT NOT NULL, attempt INTEGER NOT NULL, round INTEGER NOT NULL, item_id TEXT NOT NULL,
    operation TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', before TEXT, after TEXT, raw TEXT,
    verdict TEXT NOT NULL DEFAULT 'pending', reason TEXT NOT NULL DEFAULT '', evidence TEXT NOT NULL DEFAULT '{}',
    tokens INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
    PRIMARY KEY (edit_id, attempt)
);
CREATE TABLE IF NOT EXISTS outcomes (
    edit_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, operation TEXT NOT NULL, round INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RunStore:
    """Thread-safe access to one run's database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: commits survive a killed process, no fsync each
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        args = tuple(args)
        if not sql.startswith("SELECT"):  # no configured secret is ever written to the store
            secrets = configured_secrets()
            args = tuple(redact_secrets(a, secrets) if isinstance(a, str) else a for a in args)
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _stream(self, sql: str, args: Iterable[Any] = (), batch: int = 500) -> Iterator[tuple[Any, ...]]:
        """The rows of a SELECT, `batch` at a time: what reads a whole table for an output (finalize)
        holds one batch, not 100k items' JSON. Other statements may run between batches (SQLite allows
        it), but rows written meanwhile may or may not be seen: for readers nothing writes under, like
        finalize. The list-returning methods read everything at once under the lock, as before."""
        with self._lock:
            cursor = self._db.execute(sql, tuple(args))
        try:
            while True:
                with self._lock:
                    rows = cursor.fetchmany(batch)
                if not rows:
                    return
                yield from rows
        finally:
            with self._lock:
                cursor.close()

    # -- meta -----------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._exec("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json_text(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._exec("SELECT value FROM meta WHERE key=?", (key,))
        return json_column(rows[0][0], self.path, "meta.value", key) if rows else default

    # -- items ----------------------------------------------------------------------------------
    def load_items(self, items: Iterable[QAItem]) -> int:
        """Insert the input items once, after those already held; a second call with the same items (a
        resumed load) changes nothing."""
        with self._lock:
            self._db.execute("BEGIN")
            # after the items already held (a second load appends: the order is the order items came in)
            start = self._db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM items WHERE position < ?",
                                     (REJECTED_POSITION,)).fetchone()[0]
            count = 0
            for position, item in enumerate(items, start):
                data = item.model_dump_json()
                self._db.execute(
                    "INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, 'kept', '')",
                    (item.id, position, data, data),
                )
                count += 1
            self._db.execute("COMMIT")
        return count

    def input_mismatch(self, items: Iterable[QAItem]) -> str | None:
        """What differs between the input items this store holds and `items` (None when it holds none, or
        exactly these: same ids, same question, options and key). The folders of `profile`, `screen` and
        `plan` are continued by a re-run; one that holds other data (an edited file at the same path, a
        narrower `--limit`) would report, and plan on, stale measurements of items the input no longer
        has. Copies `screen --calibrate` planted errors in are not input and are left out."""
        held: dict[str, tuple[Any, ...]] = {}
        for (original,) in self._stream("SELECT original FROM items WHERE original IS NOT NULL ORDER BY position"):
            item = QAItem.model_validate_json(original)
            if not item.metadata.get("injected"):
                held[item.id] = (item.question, tuple(item.choices), item.answer)
        if not held:
            return None
        given = {item.id: (item.question, tuple(item.choices), item.answer) for item in items}
        for item_id, content in given.items():
            if item_id in held and held[item_id] != content:
                return f"item {item_id!r} is held with another question, options or key than the input has"
        missing, extra = sorted(set(given) - set(held)), sorted(set(held) - set(given))
        if missing or extra:
            return (f"it holds {len(held)} input items and this input has {len(given)}"
                    + (f"; {len(missing)} not held (first {missing[0]!r})" if missing else "")
                    + (f"; {len(extra)} not in this input (first {extra[0]!r})" if extra else ""))
        return None

    def add_rejected(self, rejected: Iterable[Any]) -> None:
        """Input rows that failed validation: recorded as failed so every input is accounted for."""
        for index, error in enumerate(rejected):
            row_id = f"rejected:{Path(error.path).name}:{error.row}"
            self._exec(
                "INSERT OR IGNORE INTO items VALUES (?, ?, NULL, ?, 'failed', ?)",
                (row_id, REJECTED_POSITION + index, json.dumps({"id": row_id}), f"invalid input: {error}"),
            )

    def item(self, item_id: str) -> QAItem:
        rows = self._exec("SELECT current FROM items WHERE id=?", (item_id,))
        if not rows:
            raise KeyError(item_id)
        return QAItem.model_validate_json(rows[0][0])

    def items(self, statuses: tuple[str, ...] = ("kept", "edited", "new")) -> list[QAItem]:
        marks = ",".join("?" * len(statuses))
        rows = self._exec(f"SELECT current FROM items WHERE status IN ({marks}) ORDER BY position", statuses)
        return [QAItem.model_validate_json(r[0]) for r in rows]

    def iter_items(self, statuses: tuple[str, ...] = ("kept", "edited", "new")) -> Iterator[QAItem]:
        """`items`, one at a time (see `_stream`)."""
        marks = ",".join("?" * len(statuses))
        for row in self._stream(f"SELECT current FROM items WHERE status IN ({marks}) ORDER BY position", statuses):
            yield QAItem.model_validate_json(row[0])

    def item_ids(self, statuses: tuple[str, ...] = ("kept", "edited", "new")) -> list[str]:
        """Ids only: cheap enough for hot paths that must not parse every item."""
        marks = ",".join("?" * len(statuses))
        return [r[0] for r in self._exec(f"SELECT id FROM items WHERE status IN ({marks}) ORDER BY position", statuses)]

    def statuses(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._exec("SELECT id, status FROM items")}

    def status(self, item_id: str) -> str | None:
        """One item's status (None for an id the store does not hold)."""
        rows = self._exec("SELECT status FROM items WHERE id=?", (item_id,))
        return rows[0][0] if rows else None

    def status_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._exec("SELECT status, COUNT(*) FROM items GROUP BY status")}

    def replace_item(self, item: QAItem, status: str) -> None:
        """Store `item` as the current version. The first edit of an input item freezes the labels profiling
        measured for it into its original (see `_labelled_original`): once the current version is an edit,
        the original's labels could no longer be read from it, and "before" metrics would count the edited
        items as unlabelled."""
        rows = self._exec("SELECT original, current FROM items WHERE id=?", (item.id,))
        if rows and rows[0][0] is not None:
            original = _labelled_original(rows[0][0], rows[0][1], self.path, item.id)
            self._exec("UPDATE items SET original=?, current=?, status=? WHERE id=?",
                       (original, item.model_dump_json(), status, item.id))
            return
        self._exec("UPDATE items SET current=?, status=? WHERE id=?", (item.model_dump_json(), status, item.id))

    def add_item(self, item: QAItem) -> None:
        position = self._exec("SELECT COALESCE(MAX(position), 0) + 1 FROM items")[0][0]
        self._exec("INSERT OR REPLACE INTO items VALUES (?, ?, NULL, ?, 'new', '')",
                   (item.id, position, item.model_dump_json()))

    def mark(self, item_id: str, status: str, reason: str = "") -> None:
        self._exec("UPDATE items SET status=?, reason=? WHERE id=?", (status, redact(reason), item_id))

    def original_items(self) -> list[str]:
        """JSON of every valid input item as it was loaded, after profiling labels (for 'before' metrics)."""
        rows = self._exec("SELECT id, original, current FROM items WHERE original IS NOT NULL ORDER BY position")
        return [_labelled_original(original, current, self.path, item_id) for item_id, original, current in rows]

    def iter_original_items(self) -> Iterator[str]:
        """`original_items`, one at a time (see `_stream`)."""
        for item_id, original, current in self._stream(
                "SELECT id, original, current FROM items WHERE original IS NOT NULL ORDER BY position"):
            yield _labelled_original(original, current, self.path, item_id)

    def original_item(self, item_id: str) -> str | None:
        """One input item's JSON as `original_items` gives it (None for a new item or an unknown id)."""
        rows = self._exec("SELECT original, current FROM items WHERE id=? AND original IS NOT NULL", (item_id,))
        return _labelled_original(*rows[0], self.path, item_id) if rows else None

    def originals(self) -> list[tuple[str, str, str]]:
        """(id, status, reason) of every input row, in input order."""
        return [(r[0], r[1], r[2]) for r in self._exec(
            "SELECT id, status, reason FROM items WHERE original IS NOT NULL OR status='failed' ORDER BY position")]

    def iter_originals(self) -> Iterator[tuple[str, str, str]]:
        """`originals`, one at a time (see `_stream`)."""
        for r in self._stream(
                "SELECT id, status, reason FROM items WHERE original IS NOT NULL OR status='failed' ORDER BY position"):
            yield r[0], r[1], r[2]

    # -- diagnostics ----------------------------------------------------------------------------
    def put_diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None:
        """All of them in one transaction: all or none are stored, one commit instead of one per row."""
        rows = [(d.item_id, d.check, int(d.flag), d.score, redact_json(finite(d.evidence))[1]) for d in diagnostics]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO diagnostics VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def diagnostics(self, check: str | None = None, *, flagged: bool = False) -> list[Diagnostic]:
        """Every diagnostic (of `check`); `flagged=True`: only flagged ones, filtered in SQL, so a caller
        that wants the few flags does not build 100k `Diagnostic`s to drop them."""
        where = [w for w, on in (("check_name=?", bool(check)), ("flag=1", flagged)) if on]
        sql = "SELECT item_id, check_name, flag, score, evidence FROM diagnostics"
        rows = self._exec(sql + (" WHERE " + " AND ".join(where) if where else ""), (check,) if check else ())
        return [Diagnostic(item_id=r[0], check=r[1], flag=bool(r[2]), score=r[3],
                           evidence=self._evidence(r[4], "diagnostics.evidence", f"{r[0]} {r[1]}")) for r in rows]

    def unsettled_flags(self) -> list[Diagnostic]:
        """Screening's error flags on items no edit settled: still "kept" as they came in. An item whose
        fix confirmed its key is kept too, but its provenance names the fix (`confirmed_by`), so it is not
        among them."""
        return [d for d in self.diagnostics("error", flagged=True)
                if self.status(d.item_id) == "kept" and self.item(d.item_id).provenance.confirmed_by is None]

    def diagnostic(self, item_id: str, check: str) -> Diagnostic | None:
        rows = self._exec("SELECT flag, score, evidence FROM diagnostics WHERE item_id=? AND check_name=?",
                          (item_id, check))
        if not rows:
            return None
        return Diagnostic(item_id=item_id, check=check, flag=bool(rows[0][0]), score=rows[0][1],
                          evidence=self._evidence(rows[0][2], "diagnostics.evidence", f"{item_id} {check}"))

    def _evidence(self, raw: Any, column: str, key: str) -> dict[str, Any]:
        """An evidence column: a JSON object (`json_column`), else a DataError naming the row."""
        value = json_column(raw, self.path, column, key)
        if not isinstance(value, dict):
            raise DataError(str(self.path), None, column, f"row {key[:80]!r}: expected a JSON object; the run "
                            "folder is damaged or was edited")
        return value

    def has_diagnostic(self, item_id: str, check: str) -> bool:
        return bool(self._exec("SELECT 1 FROM diagnostics WHERE item_id=? AND check_name=?", (item_id, check)))

    # -- edits ----------------------------------------------------------------------------------
    def record_attempt(self, edit_id: str, attempt: int, round_: int, item_id: str, operation: str,
                       target: str, before: QAItem | None, after: QAItem | None, raw: str, tokens: int,
                       error: str = "") -> None:
        """A refiner's attempt; `error` is the refiner's own reason when it produced nothing usable."""
        self._exec(
            "INSERT OR REPLACE INTO edits (edit_id, attempt, round, item_id, operation, target, before, after,"
            " raw, tokens, reason, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (edit_id, attempt, round_, item_id, operation, target,
             before.model_dump_json() if before else None, after.model_dump_json() if after else None,
             raw, tokens, redact(error), time.time()),
        )

    def attempt_error(self, edit_id: str, attempt: int) -> str:
        """The refiner's own reason when the attempt produced nothing usable ("" when it did).

        `reason` holds it until a verdict is recorded over it; a validation re-run after a crash must not
        read a passing verdict's reason as the refiner's error (a failed verdict stays a failure)."""
        rows = self._exec("SELECT verdict, reason FROM edits WHERE edit_id=? AND attempt=?", (edit_id, attempt))
        if not rows:
            return "no attempt recorded"
        verdict, reason = rows[0]
        return "" if verdict == "pass" else reason

    def record_verdict(self, edit_id: str, attempt: int, verdict: str, reason: str,
                       evidence: dict[str, Any], tokens: int = 0) -> None:
        self._exec(
            # tokens count once: a verdict recorded again after a crash (replayed from the cache) adds nothing
            "UPDATE edits SET verdict=?, reason=?, evidence=?,"
            " tokens=tokens + CASE WHEN verdict='pending' THEN ? ELSE 0 END WHERE edit_id=? AND attempt=?",
            (verdict, redact(reason), json_text(evidence), tokens, edit_id, attempt),
        )

    def attempt_after(self, edit_id: str, attempt: int) -> QAItem | None:
        rows = self._exec("SELECT after FROM edits WHERE edit_id=? AND attempt=?", (edit_id, attempt))
        return QAItem.model_validate_json(rows[0][0]) if rows and rows[0][0] else None

    def set_outcome(self, edit_id: str, item_id: str, operation: str, round_: int, status: str, reason: str,
                    attempts: int) -> None:
        self._exec("INSERT OR REPLACE INTO outcomes VALUES (?,?,?,?,?,?,?)",
                   (edit_id, item_id, operation, round_, status, redact(reason), attempts))

    def outcomes(self, round_: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT edit_id, item_id, operation, round, status, reason, attempts FROM outcomes"
        rows = self._exec(sql + (" WHERE round=?" if round_ is not None else ""),
                          (round_,) if round_ is not None else ())
        return [dict(zip(_OUTCOME_KEYS, r, strict=True)) for r in rows]

    def iter_outcomes(self, round_: int | None = None) -> Iterator[dict[str, Any]]:
        """`outcomes`, one at a time (see `_stream`)."""
        sql = "SELECT edit_id, item_id, operation, round, status, reason, attempts FROM outcomes"
        for r in self._stream(sql + (" WHERE round=?" if round_ is not None else ""),
                              (round_,) if round_ is not None else ()):
            yield dict(zip(_OUTCOME_KEYS, r, strict=True))

    def edits(self) -> list[dict[str, Any]]:
        return [_edit(r, self.path) for r in self._exec(_EDITS_SQL)]

    def iter_edits(self) -> Iterator[dict[str, Any]]:
        """`edits`, one at a time (see `_stream`): every attempt with its before/after items parsed."""
        for r in self._stream(_EDITS_SQL):
            yield _edit(r, self.path)

    def count_edits(self) -> int:
        """Attempts recorded (rows of `edits`), without reading them."""
        return int(self._exec("SELECT COUNT(*) FROM edits")[0][0])


_OUTCOME_KEYS = ("edit_id", "item_id", "operation", "round", "status", "reason", "attempts")
_EDITS_SQL = ("SELECT edit_id, attempt, round, item_id, operation, target, before, after, verdict, reason, evidence,"
              " tokens FROM edits ORDER BY created, edit_id, attempt")


def _edit(r: tuple[Any, ...], store: Path) -> dict[str, Any]:
    """One `edits` row as the dict `edits`/`iter_edits` give (before/after items and evidence parsed)."""
    key = f"{r[0]} attempt {r[1]}"
    evidence = json_column(r[10], store, "edits.evidence", key)
    if not isinstance(evidence, dict):
        raise DataError(str(store), None, "edits.evidence", f"row {key[:80]!r}: expected a JSON object; the run "
                        "folder is damaged or was edited")
    return {
        "edit_id": r[0], "attempt": r[1], "round": r[2], "item_id": r[3], "operation": r[4],
        "target": r[5], "before": json_column(r[6], store, "edits.before", key) if r[6] else None,
        "after": json_column(r[7], store, "edits.after", key) if r[7] else None, "verdict": r[8], "reason": r[9],
        "evidence": evidence, "tokens": r[11],
    }


def _labelled_original(original: str, current: str, store: Path, item_id: str) -> str:
    """An input item's JSON with the labels profiling measured (domain, skill, difficulty) filled in where
    the input had none, as long as the item is still the original (an edit's labels are not its own)."""
    before = json_column(original, store, "items.original", item_id)
    now = json_column(current, store, "items.current", item_id)
    if not isinstance(before, dict) or not isinstance(now, dict):
        raise DataError(str(store), None, "items.original" if not isinstance(before, dict) else "items.current",
                        f"row {str(item_id)[:80]!r}: expected a JSON object; the run folder is damaged or was edited")
    for key in ("domain", "skill", "difficulty"):  # labels measured during profiling
        if not before.get(key) and (now.get("provenance") or {}).get("created_by") == "original":
            before[key] = now.get(key)
    return json.dumps(before)


def json_column(raw: Any, store: Path, column: str, key: str) -> Any:
    """One JSON column of one store row, parsed as the untrusted text it is (`safeload.loads_json`: nesting,
    huge integers, NaN and Infinity refused). A store from elsewhere, or one edited by hand, holds what it
    likes: plain `json.loads` gave a message naming no file, table or row ("Expecting property name…"), a
    RecursionError for deep nesting, and let NaN through into a review queue that `review --import` then
    refused. `column` is TABLE.COLUMN, `key` names the row (its id)."""
    if not isinstance(raw, str):
        problem = f"expected JSON text, got {type(raw).__name__}"
    else:
        try:
            return loads_json(raw, str(store))
        except DataError as exc:
            problem = exc.problem
    raise DataError(str(store), None, column, f"row {str(key)[:80]!r}: {problem}; the run folder is damaged or "
                    "was edited")


def json_text(value: Any) -> str:
    """`value` as the JSON a store column holds: what `json_column` reads back. A non-finite float (NaN,
    Infinity) is written as null, so the store never holds what its own reader refuses."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(finite(value), default=str, allow_nan=False)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (at any depth in dicts, lists and tuples) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
