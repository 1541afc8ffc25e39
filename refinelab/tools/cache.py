"""Response cache: a finished call is never paid for twice.

Keyed by model, generation parameters, messages, response schema and attempt number. Operational
settings (endpoint URL and port, concurrency, timeouts, batch sizes) are deliberately left out of
the key, so a re-run on a freshly started server, or with different parallelism, replays for free.
The attempt number is in the key so intentional re-asks (a retry after a bad parse) are not collapsed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def fingerprint(model: str, params: dict[str, Any], messages: list[dict[str, str]], attempt: int,
                sample: str = "") -> str:
    """The cache key of one request. `sample` names one of several independent draws of the same prompt
    (new items written from one template for one cell): without it a second draw replays the first."""
    key: dict[str, Any] = {"model": model, "params": params, "messages": messages, "attempt": attempt}
    if sample:  # absent otherwise, so every key made before it existed is still found
        key["sample"] = sample
    payload = json.dumps(key, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """SQLite key/value store of raw model responses (text + reported usage)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, response TEXT,"
            " created REAL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?,?,?,?)",
                (key, model, json.dumps(response, ensure_ascii=False), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
