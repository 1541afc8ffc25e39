"""A node re-run after a crash reads the store as the first run left it: a recorded pass is not mistaken
for the refiner's error, and a verdict recorded twice counts its tokens once."""

from __future__ import annotations

from pathlib import Path

from refinelab.schema import QAItem
from refinelab.tools.store import RunStore

ITEM = QAItem(id="q1", question="Which planet is largest?", choices=["Mars", "Jupiter"], answer=1)


def test_validate_rerun_after_a_recorded_verdict(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store.sqlite")
    store.record_attempt("e1", 0, 1, "q1", "calibrate", "hard", ITEM, ITEM, "raw", 100)
    assert store.attempt_error("e1", 0) == ""
    store.record_verdict("e1", 0, "pass", "independent answer matches the key", {}, 40)
    store.record_verdict("e1", 0, "pass", "independent answer matches the key", {}, 40)  # the re-run
    assert store.attempt_error("e1", 0) == ""
    assert [e["tokens"] for e in store.edits()] == [140]


def test_refiner_error_survives_until_a_verdict_and_failures_stay_failures(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store.sqlite")
    store.record_attempt("e2", 0, 1, "q1", "calibrate", "hard", ITEM, None, "", 0, "writer output unusable")
    assert store.attempt_error("e2", 0) == "writer output unusable"
    store.record_verdict("e2", 0, "fail", "writer output unusable", {}, 0)
    assert store.attempt_error("e2", 0) == "writer output unusable"
    assert store.attempt_error("missing", 0) == "no attempt recorded"
