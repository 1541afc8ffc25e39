"""A run whose input had invalid rows can be resumed and reviewed.

Quarantined rows are recorded in the store as placeholders (`RunStore.add_rejected`: status `failed`, no
original, the row's id alone as `current`) so that every input row is accounted for; the resume's check that
every stored item reads back as one (`run_checks.check_store_items`) took the placeholder for a damaged item
and refused the folder as "damaged or edited" — every run of a file with one bad row could not be resumed.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from refinelab.cli.app import app
from tests.support.small_runs import finished_run

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _run_with_a_bad_row(tmp_path: Path) -> Path:
    from refinelab.io import load_dataset

    good = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=5)
    rows = [item.model_dump(mode="json", include={"id", "question", "choices", "answer", "subject"})
            for item in good.items]
    rows.insert(2, {"id": "bad", "question": "Which?", "choices": ["same", "same"], "answer": 0})
    path = tmp_path / "with-bad-row.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_dataset(path, on_invalid="quarantine")
    assert len(data.rejected) == 1 and len(data) == 5
    return finished_run(tmp_path, data, "quarantined")


def test_a_run_with_quarantined_rows_resumes_and_its_queue_exports(tmp_path: Path) -> None:
    run_dir = _run_with_a_bad_row(tmp_path)
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM items WHERE status='failed' AND original IS NULL").fetchone()[0] == 1
    resumed = CliRunner().invoke(app, ["resume", str(run_dir), "--json", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    exported = CliRunner().invoke(app, ["review", str(run_dir), "--export", str(tmp_path / "queue.jsonl")])
    assert exported.exit_code == 0, exported.output


def test_a_failed_row_that_holds_an_original_is_still_checked(tmp_path: Path) -> None:
    """Only the placeholder's shape is passed over: a `failed` row with an original that is no item is damage."""
    run_dir = _run_with_a_bad_row(tmp_path)
    copy = tmp_path / "runs" / "damaged"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    with sqlite3.connect(copy / "store.sqlite") as db:
        db.execute("UPDATE items SET original='{\"id\": \"x\"}' WHERE status='failed'")
    resumed = CliRunner().invoke(app, ["resume", str(copy), "--json", "--quiet"])
    assert resumed.exit_code == 2 and "damaged or was edited" in " ".join(resumed.output.split()), resumed.output

