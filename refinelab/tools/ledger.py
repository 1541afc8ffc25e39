"""The token ledger: reserve the worst case before a call, settle from reported usage, never exceed the cap.

One ledger per run, persisted in SQLite so a resumed run continues from what was already spent.
Every call is a row attributed to a node, operation, item and model. Reservation and settlement
happen inside one lock (threads) and one IMMEDIATE transaction (processes), so concurrent callers
cannot overspend together. The running totals (spent, reserved) are one row kept in step inside those
transactions, recomputed from the calls when the ledger is opened: a reservation reads one row instead
of summing every call (at 20k calls that sum had cut reserve+settle to ~80/s).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinelab.errors import BudgetExhausted

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL DEFAULT '',
    operation TEXT NOT NULL DEFAULT '',
    item_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,  -- of prompt_tokens, read from the server's prompt cache
    status TEXT NOT NULL,            -- reserved | settled | failed | abandoned
    is_retry INTEGER NOT NULL DEFAULT 0,
    parse_failed INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch_jobs (batch_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, model TEXT NOT NULL,
                                       status TEXT NOT NULL, created REAL NOT NULL);   -- pending | done
CREATE TABLE IF NOT EXISTS batch_calls (call_id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL,
                                        custom_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), spent INTEGER NOT NULL,
                                   reserved INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replayed_keys (key TEXT PRIMARY KEY);  -- cache keys counted by note_replayed
"""

# Rows whose tokens count against the cap: settled and failed calls count what was reported,
# reserved ones count their reservation, abandoned ones (in flight when a process died) their
# reservation too, because the provider may have charged for them.
_SPENT_SQL = """
SELECT COALESCE(SUM(CASE WHEN status IN ('settled','failed') THEN prompt_tokens + completion_tokens
                         WHEN status = 'abandoned' THEN reserved ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN status = 'reserved' THEN reserved ELSE 0 END), 0)
FROM calls
"""


@dataclass(frozen=True)
class CallTag:
    """Who is spending: used to attribute every token."""

    node: str = ""
    operation: str = ""
    item_id: str = ""
    model: str = ""


@dataclass(frozen=True)
class Reservation:
    call_id: int
    tokens: int
    tag: CallTag


# The largest token count believed from an endpoint: far above any real call, far below what overflows a
# float (a usage of 10**400 tokens passed as a count and crashed the ledger's settlement). More is a
# malformed reply.
MAX_TOKEN_COUNT = 10**12
SETTLE_WAIT_S = 300.0  # how long a reservation that fits once other threads' calls settle waits for them
DEFAULT_FAILURE_LIMIT = 20  # consecutive failed attempts before a run stops (Settings.max_consecutive_failures)
MIN_FAILED_CALLS = 10  # ... or this many calls failed outright and they outnumber the answered ones


class Ledger:
    """A persistent token account with a hard cap (None = unlimited, still counted).

    It also keeps the run's endpoint health: consecutive failed attempts (any call, any role) and
    calls that failed outright versus answered. Past `failure_limit` in a row, or when most calls
    failed, the ledger is *tripped*: clients raise EndpointUnavailable instead of sending more."""

    def __init__(self, path: str | Path = ":memory:", cap: int | None = None,
                 failure_limit: int = DEFAULT_FAILURE_LIMIT, settle_wait_s: float = SETTLE_WAIT_S) -> None:
        self.path = str(path)
        self.settle_wait_s = settle_wait_s
        self.failure_limit = failure_limit
        self._streak = 0
        self._answered = 0
        self._failed_calls = 0
        self.tripped: dict[str, Any] | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # settle and release wake reservations waiting for room (see `reserve`)
        self._settled = threading.Condition(self._lock)
        # reservations made by this process and not yet settled: call id -> (thread, tokens)
        self._live: dict[int, tuple[int, int]] = {}
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process dying (what a killed run needs); only a power cut
        # may lose the last commits. FULL would fsync on every reservation.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if "cached_prompt_tokens" not in columns:  # a ledger written before the column existed
            self._db.execute("ALTER TABLE calls ADD COLUMN cached_prompt_tokens INTEGER NOT NULL DEFAULT 0")
        with self._lock:
            self._recount()
        # Which run paid for a cached answer (tools/llm.py): a ledger's own id, kept across reopenings.
        row = self._db.execute("SELECT value FROM meta WHERE key='ledger_id'").fetchone()
        self.ledger_id = str(row[0]) if row else uuid.uuid4().hex
        if not row:
            self._db.execute("INSERT INTO meta VALUES ('ledger_id', ?)", (self.ledger_id,))
        row = self._db.execute("SELECT value FROM meta WHERE key='replayed'").fetchone()
        self._replayed = int(row[0]) if row else 0
        row = self._db.execute("SELECT value FROM meta WHERE key='replayed_by_node'").fetchone()
        self._replayed_by_node: dict[str, int] = _node_counts(row[0] if row else "")
        self.cap = cap
        if cap is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('cap', ?)", (str(cap),))
        else:
            row = self._db.execute("SELECT value FROM meta WHERE key='cap'").fetchone()
            self.cap = int(row[0]) if row else None

    def close(self) -> None:
        self._db.close()

    def abandon_in_flight(self) -> int:
        """Mark calls left reserved by a dead process as abandoned (charged at their reservation)."""
        with self._lock:
            cursor = self._db.execute(  # a submitted batch keeps running without us: resume polls it
                "UPDATE calls SET status='abandoned', finished=? WHERE status='reserved' AND id NOT IN"
                " (SELECT c.call_id FROM batch_calls c JOIN batch_jobs j USING (batch_id) WHERE j.status='pending')",
                (time.time(),))
            self._recount()
            return cursor.rowcount

    def _recount(self) -> None:
        """Set the totals row from the calls (caller holds the lock): on open and after bulk changes."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            spent, reserved = self._db.execute(_SPENT_SQL).fetchone()
            self._db.execute("INSERT OR REPLACE INTO totals VALUES (1, ?, ?)", (int(spent), int(reserved)))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _totals(self) -> tuple[int, int]:
        spent, reserved = self._db.execute("SELECT spent, reserved FROM totals WHERE id=1").fetchone()
        return int(spent), int(reserved)

    @property
    def spent(self) -> int:
        with self._lock:
            return self._totals()[0]

    @property
    def replayed(self) -> int:
        """Tokens of answers replayed from the response cache that another run paid for (not spent)."""
        with self._lock:
            return self._replayed

    @property
    def available(self) -> int | None:
        """What the run may still use: the cap less spent, in-flight and replayed tokens."""
        if self.cap is None:
            return None
        with self._lock:
            spent, reserved = self._totals()
            return max(0, self.cap - spent - reserved - self._replayed)

    def note_replayed(self, key: str, tokens: int, node: str = "") -> None:
        """A cached answer another run paid for: it costs nothing, but it uses the run's budget as the
        live call did in the run that paid, once per cache key. Without this an identical re-run had
        the profile's tokens to spare at the plan, bought a different plan and paid for it; with it,
        it plans, and stops, where the first run did, and spends 0. `node` is the node that asked (the
        summary's `replayed_by_node`: what share of a re-run profiling took, though it paid nothing)."""
        if tokens <= 0:
            return
        with self._lock:
            # kept in the file: a resumed run re-asks the node that was cut off, and counting its replays
            # again would charge the budget twice for them
            if not self._db.execute("INSERT OR IGNORE INTO replayed_keys VALUES (?)", (key,)).rowcount:
                return
            self._replayed += tokens
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('replayed', ?)", (str(self._replayed),))
            name = node or "(none)"
            self._replayed_by_node[name] = self._replayed_by_node.get(name, 0) + tokens
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('replayed_by_node', ?)",
                             (json.dumps(self._replayed_by_node, sort_keys=True),))

    def reserve(self, tokens: int, tag: CallTag, *, attempt: int = 0, is_retry: bool = False,
                held_long: bool = False) -> Reservation:
        """Hold `tokens` against the cap, or raise BudgetExhausted without recording anything.

        A call that would fit once other threads' calls in flight settle waits for them (up to
        `settle_wait_s`) instead of being refused: reservations are worst cases, so whether a call fits
        must not depend on how the threads happened to overlap. A cold `make demo` run once stopped with
        "budget exhausted during profiling" and half its budget unspent because four judge calls had
        reserved at once. Reservations held by the calling thread itself are never waited on, nor are
        `held_long` ones (a provider batch's requests, settled when the batch ends, possibly hours later).
        """
        if tokens < 0:
            raise ValueError("cannot reserve a negative number of tokens")
        me = threading.get_ident()
        deadline = time.monotonic() + self.settle_wait_s
        with self._settled:
            while True:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    spent, reserved = self._totals()
                    used = spent + reserved + self._replayed
                    if self.cap is not None and used + tokens > self.cap:
                        others = sum(t for thread, t in self._live.values() if thread != me)
                        left = deadline - time.monotonic()
                        if others and used - others + tokens <= self.cap and left > 0:
                            self._db.execute("ROLLBACK")
                            self._settled.wait(left)
                            continue
                        raise BudgetExhausted(tokens, max(0, self.cap - used), self.cap)
                    cursor = self._db.execute(
                        "INSERT INTO calls (node, operation, item_id, model, attempt, reserved, status, is_retry,"
                        " started) VALUES (?,?,?,?,?,?,'reserved',?,?)",
                        (tag.node, tag.operation, tag.item_id, tag.model, attempt, tokens, int(is_retry),
                         time.time()),
                    )
                    self._db.execute("UPDATE totals SET reserved = reserved + ? WHERE id=1", (tokens,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                assert cursor.lastrowid is not None
                if not held_long:
                    self._live[cursor.lastrowid] = (me, tokens)
                return Reservation(cursor.lastrowid, tokens, tag)

    def settle(
        self,
        reservation: Reservation,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        failed: bool = False,
        parse_failed: bool = False,
        unsent: bool = False,
        cached_prompt_tokens: int = 0,
    ) -> None:
        """Replace the reservation with the usage the provider reported.

        Reported usage above the reservation is clipped to the reservation: the reservation is the
        hard upper bound we promised, and the estimator is built so this does not happen in practice
        (the clip is recorded by `overrun_calls`). `cached_prompt_tokens`, the part of the prompt the
        server read from its prompt cache, is recorded and reported but charged like the rest: the
        budget counts tokens, and what a cached token costs is the provider's price, not ours to assume.

        The arithmetic is on integers (a usage of 10**400 tokens once overflowed the clip's float scale and
        left the reservation held, stalling every thread that waited on it), a figure that is not a
        whole, non-negative count is charged the whole reservation (never under-count), and whatever
        fails here, the reservation stops being waited on.
        """
        try:
            prompt_tokens, completion_tokens, cached_prompt_tokens, overrun = _charge(
                reservation.tokens, prompt_tokens, completion_tokens, cached_prompt_tokens)
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if unsent:  # refused before it reached a server: recorded, charged nothing
                        self._bump("unsent_calls")
                    if overrun:
                        self._bump("overrun_calls")
                    cursor = self._db.execute(
                        "UPDATE calls SET prompt_tokens=?, completion_tokens=?, cached_prompt_tokens=?, status=?,"
                        " parse_failed=?, finished=? WHERE id=? AND status='reserved'",
                        (prompt_tokens, completion_tokens, cached_prompt_tokens, "failed" if failed else "settled",
                         int(parse_failed), time.time(), reservation.call_id),
                    )
                    if cursor.rowcount:
                        self._db.execute("UPDATE totals SET spent = spent + ?, reserved = reserved - ? WHERE id=1",
                                         (prompt_tokens + completion_tokens, reservation.tokens))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        finally:  # settled, or failing to be: other threads stop waiting on it (the row, if still
            # 'reserved', keeps counting its reservation until abandon_in_flight)
            with self._lock:
                self._live.pop(reservation.call_id, None)
                self._settled.notify_all()

    def _bump(self, key: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
            " WHERE key=?),0)+1)", (key, key))

    # -- batches ----------------------------------------------------------------------------------
    def record_batch(self, batch_id: str, endpoint: str, model: str, calls: dict[str, Reservation]) -> None:
        """A submitted batch and the reservation of each of its requests (custom_id -> reservation), in
        one transaction: a run killed after this resumes polling the batch instead of resubmitting."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO batch_jobs VALUES (?,?,?,'pending',?)",
                                 (batch_id, endpoint, model, time.time()))
                self._db.executemany("INSERT INTO batch_calls VALUES (?,?,?)",
                                     [(r.call_id, batch_id, cid) for cid, r in calls.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def pending_batches(self, endpoint: str, model: str) -> dict[str, dict[str, Reservation]]:
        """Batches submitted to `endpoint` for `model` and not yet settled: batch id -> custom_id ->
        the reservation still held for that request."""
        with self._lock:
            rows = self._db.execute(
                "SELECT j.batch_id, c.custom_id, c.call_id, k.reserved, k.node, k.operation, k.item_id, k.model"
                " FROM batch_jobs j JOIN batch_calls c USING (batch_id) JOIN calls k ON k.id = c.call_id"
                " WHERE j.status='pending' AND j.endpoint=? AND j.model=? AND k.status='reserved'"
                " ORDER BY j.created", (endpoint, model)).fetchall()
        out: dict[str, dict[str, Reservation]] = {}
        for batch_id, custom_id, call_id, reserved, node, operation, item_id, tag_model in rows:
            out.setdefault(batch_id, {})[custom_id] = Reservation(
                int(call_id), int(reserved), CallTag(node, operation, item_id, tag_model))
        return out

    def finish_batch(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batch_jobs SET status='done' WHERE batch_id=?", (batch_id,))

    # -- endpoint health --------------------------------------------------------------------------
    def note_answer(self) -> None:
        """An attempt got an answer from the server (parsed or not): the failure streak ends."""
        with self._lock:
            self._streak = 0
            self._answered += 1

    def note_failure(self) -> int:
        """An attempt got no answer; returns the number of failed attempts in a row."""
        with self._lock:
            self._streak += 1
            return self._streak

    def note_call_failed(self) -> None:
        """A call gave up after its retries; trips the ledger when most calls have failed."""
        with self._lock:
            self._failed_calls += 1
            failed, answered = self._failed_calls, self._answered
        if failed >= MIN_FAILED_CALLS and failed > answered and self.tripped is None:
            self.trip("", "", reason=f"{failed} model calls failed after their retries, {answered} answered")

    def mostly_failed(self, min_calls: int = 3) -> str:
        """Why this process's model calls count as mostly failed ('' when they do not): at least
        `min_calls` gave up after their retries and they outnumber the answered ones."""
        with self._lock:
            failed, answered = self._failed_calls, self._answered
        if failed >= min_calls and failed > answered:
            return f"{failed} model calls failed after their retries, {answered} answered"
        return ""

    def trip(self, endpoint: str, error: str, reason: str = "") -> None:
        with self._lock:
            if self.tripped is None:
                self.tripped = {"endpoint": endpoint or "(model endpoint)", "failures": self._streak,
                                "error": error, "reason": reason}
            elif endpoint and self.tripped["endpoint"] == "(model endpoint)":
                self.tripped["endpoint"] = endpoint

    def health(self) -> dict[str, int]:
        with self._lock:
            unsent = self._db.execute("SELECT value FROM meta WHERE key='unsent_calls'").fetchone()
            return {"failure_streak": self._streak, "answered_attempts": self._answered,
                    "failed_calls": self._failed_calls, "unsent_calls": int(unsent[0]) if unsent else 0}

    def mark_parse_failed(self, call_id: int) -> None:
        """Flag a settled call whose output did not parse (it still counts against the cap)."""
        with self._lock:
            self._db.execute("UPDATE calls SET parse_failed=1 WHERE id=?", (call_id,))

    def release(self, reservation: Reservation) -> None:
        """Cancel a reservation for a call that never reached the provider (costs nothing)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute("DELETE FROM calls WHERE id=? AND status='reserved'",
                                          (reservation.call_id,))
                if cursor.rowcount:
                    self._db.execute("UPDATE totals SET reserved = reserved - ? WHERE id=1", (reservation.tokens,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._live.pop(reservation.call_id, None)
            self._settled.notify_all()

    def summary(self) -> dict[str, Any]:
        """Spend overall and by node, operation, model; counts of calls, retries and failed parses; the
        prompt tokens of settled calls and how many of them the server read from its prompt cache."""
        with self._lock:
            spent, reserved = self._totals()
            rows = self._db.execute(
                "SELECT node, operation, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),"
                " SUM(is_retry), SUM(parse_failed), SUM(status='failed'),"
                " SUM(CASE WHEN status='abandoned' THEN reserved ELSE 0 END),"
                " SUM(CASE WHEN status='settled' THEN prompt_tokens ELSE 0 END),"
                " SUM(CASE WHEN status='settled' THEN cached_prompt_tokens ELSE 0 END)"
                " FROM calls GROUP BY node, operation, model"
            ).fetchall()
            overrun = self._db.execute("SELECT value FROM meta WHERE key='overrun_calls'").fetchone()
            unsent = self._db.execute("SELECT value FROM meta WHERE key='unsent_calls'").fetchone()
        by: dict[str, dict[str, dict[str, int]]] = {"node": {}, "operation": {}, "model": {}}
        calls = retries = parse_failures = failures = prompt = cached = 0  # prompt, cached: settled calls'
        for node, operation, model, n, p, c, r, pf, f, abandoned, settled_prompt, read_cached in rows:
            tokens = int(p or 0) + int(c or 0) + int(abandoned or 0)
            for key, value in (("node", node), ("operation", operation), ("model", model)):
                slot = by[key].setdefault(value or "(none)", {"tokens": 0, "calls": 0, "cached_prompt_tokens": 0})
                slot["tokens"] += tokens
                slot["calls"] += int(n)
                slot["cached_prompt_tokens"] += int(read_cached or 0)
            calls += int(n)
            retries += int(r or 0)
            parse_failures += int(pf or 0)
            failures += int(f or 0)
            prompt += int(settled_prompt or 0)
            cached += int(read_cached or 0)
        return {
            "cap": self.cap, "spent": spent, "in_flight": reserved, "replayed": self._replayed,
            "replayed_by_node": dict(self._replayed_by_node),
            "calls": calls, "retries": retries,
            "parse_failures": parse_failures, "failed_calls": failures,
            "overrun_calls": int(overrun[0]) if overrun else 0, "unsent_calls": int(unsent[0]) if unsent else 0,
            "prompt_tokens": prompt, "cached_prompt_tokens": cached,
            "by_node": by["node"], "by_operation": by["operation"], "by_model": by["model"],
        }

    def by_item(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, SUM(prompt_tokens + completion_tokens) FROM calls GROUP BY item_id"
            ).fetchall()
        return {item or "(none)": int(tokens or 0) for item, tokens in rows}


def _charge(reserved: int, prompt: Any, completion: Any, cached: Any) -> tuple[int, int, int, bool]:
    """(prompt, completion, cached prompt tokens, overrun) to record for a reservation of `reserved`
    tokens: reported usage clipped to the reservation in integer arithmetic (prompt and completion
    scaled down alike), or the whole reservation as prompt when a figure is not a count."""
    if not (is_count(prompt) and is_count(completion)):
        return reserved, 0, 0, False
    total = prompt + completion
    overrun = total > reserved
    if overrun:
        prompt = prompt * reserved // total
        completion = reserved - prompt
    cached = max(0, min(cached, prompt)) if is_count(cached) else 0
    return prompt, completion, cached, overrun


def is_count(value: Any) -> bool:
    """A token count as an endpoint may be believed to say it: a whole number, not negative, not a bool,
    at most MAX_TOKEN_COUNT. The ledger settles on what this accepts; the transport refuses a reply whose
    usage it does not accept, so the two never disagree on what a count is."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT


def _node_counts(text: str) -> dict[str, int]:
    """The stored `replayed_by_node` (a JSON object of node → tokens); {} for none or anything else."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
