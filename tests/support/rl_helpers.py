"""Helpers shared by the reliability tests (a plain module with a unique name: importing `conftest`
by name is fragile when several test folders each have one)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import sqlite3
import time
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from refinelab.config import Settings, load_settings
from refinelab.io import load_dataset
from refinelab.schema import Dataset

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
KEY_ENV = "RELIABILITY_API_KEY"
SMALL_MODEL = os.environ.get("REFINELAB_TEST_MODEL", "smollm2-135m")  # as tests/conftest.py
FINAL_STATUSES = {"kept", "edited", "removed", "failed"}
ALL_OPERATIONS = ["remove", "expand", "generate", "calibrate", "rewrite_distractors", "fix"]


def mmlu(n: int) -> Dataset:
    return load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=n)


def proxied_settings(tmp: Path, endpoint: str, *, model: str = "scripted", timeout_s: float = 1.0,
                     concurrency: int = 2, transport_retries: int = 4, parse_retries: int = 2,
                     **overrides: Any) -> Settings:
    """Every role pointed at `endpoint` (the fault proxy), with short timeouts so faults cost seconds."""
    spec = {"endpoint": endpoint, "model": model, "api_key_env": KEY_ENV, "timeout_s": timeout_s,
            "concurrency": concurrency, "max_transport_retries": transport_retries,
            "max_parse_retries": parse_retries}
    roles = {role: dict(spec) for role in ("judge", "writer", "validator")}
    roles["writer"]["temperature"] = 0.0
    return load_settings(overrides={"runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "cache.sqlite"),
                                    "roles": roles, **overrides})


@contextlib.contextmanager
def quick_backoff() -> Iterator[None]:
    """The client's retry backoff shortened to milliseconds: the same code path, without idle minutes."""
    fake = types.SimpleNamespace(sleep=lambda s: time.sleep(min(s, 0.01)), monotonic=time.monotonic,
                                 time=time.time)
    with mock.patch("refinelab.tools.llm.time", fake):
        yield


def accounting(run_dir: Path, dataset: Dataset) -> dict[str, Any]:
    """Check that every input item ends kept, edited, removed or failed (with a reason), exactly once,
    in the store, report.json and refined.jsonl alike; return the figures."""
    report = json.loads((run_dir / "report.json").read_text())
    with sqlite3.connect(run_dir / "store.sqlite") as conn:
        rows = conn.execute("SELECT id, status, reason, original IS NOT NULL FROM items").fetchall()
        outcomes = conn.execute("SELECT edit_id, item_id, operation, status, reason FROM outcomes").fetchall()
    originals = [(i, s, r) for i, s, r, orig in rows if orig or s == "failed"]
    ids = [i for i, _, _ in originals]
    assert len(ids) == len(set(ids)), "an input item is recorded twice"
    expected = {i.id for i in dataset} | {f"rejected:{Path(e.path).name}:{e.row}" for e in dataset.rejected}
    assert set(ids) == expected, f"lost: {expected - set(ids)}, unknown: {set(ids) - expected}"
    statuses = Counter(s for _, s, _ in originals)
    assert set(statuses) <= FINAL_STATUSES, statuses
    assert all(r for _, s, r in originals if s in ("failed", "removed")), "a failed or removed item has no reason"
    assert report["input_items"] == len(expected)
    assert report["items_by_status"] == dict(statuses)
    assert all(o[4] for o in outcomes if o[3] == "gave_up"), "a given-up edit has no reason"
    refined = [json.loads(line) for line in (run_dir / "refined.jsonl").read_text().splitlines()]
    refined_ids = [r["id"] for r in refined]
    assert len(refined_ids) == len(set(refined_ids)), "an output item is written twice"
    live = {i for i, s, _ in originals if s in ("kept", "edited")}
    new = {i for i, s, _, orig in rows if s == "new"}
    assert set(refined_ids) == live | new, "refined.jsonl disagrees with the store"
    assert report["output_items"] == len(refined_ids)
    return {"statuses": dict(statuses), "outputs": len(refined_ids), "new": len(new),
            "edits": Counter(o[3] for o in outcomes)}


def spend_within(run_dir: Path, budget: int) -> int:
    """Ledger and report agree and stay within the cap; returns the spend."""
    from refinelab.tools.ledger import Ledger

    report = json.loads((run_dir / "report.json").read_text())
    ledger = Ledger(run_dir / "ledger.sqlite")
    try:
        summary = ledger.summary()
    finally:
        ledger.close()
    assert summary["cap"] == budget == report["ledger"]["cap"]
    assert summary["spent"] <= budget and report["ledger"]["spent"] <= budget
    assert summary["in_flight"] == 0
    assert summary["overrun_calls"] == 0, "a provider reported more than the reservation"
    return int(summary["spent"])


_SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "da", "fe", "gi", "ho", "ju", "bel",
              "cor", "dax", "eth", "fin", "gor", "hul", "ix", "jor", "kel", "lum", "mor", "nix", "orb", "pax"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3))


def distinct_respond(messages: list[dict[str, str]]) -> str:
    """The graph's scripted responder, with written items made of seeded pseudo-words: every draft is
    lexically far from every other, so dedup verdicts do not depend on which thread commits first."""
    from tests.support.scripted import respond

    text = respond(messages)
    data = json.loads(text)
    if "question" not in data:
        return text
    rng = random.Random(hashlib.sha256(messages[-1]["content"].encode()).hexdigest())
    key = "B" if "(key B)" in data["question"] else "A"
    marked = re.search(r" \[skill [a-z ]+\]", data["question"])  # the cell's skill, for the labeller
    data["question"] = (" ".join(_word(rng) for _ in range(8)).capitalize() + (marked.group(0) if marked else "")
                        + f" (key {key})?")
    data["choices"] = [" ".join(_word(rng) for _ in range(3)) for _ in data["choices"]]
    return json.dumps(data)


def distinct_models() -> dict[str, Any]:
    from tests.support.scripted_model import ScriptedChatModel

    model = ScriptedChatModel(respond=distinct_respond)
    return {"judge": model, "writer": model, "validator": model}
