"""`refinelab runs`: each run folder with where it stands (finished, running, stopped, unreadable), read
without writing anything; folders that are not runs are left out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.agents.options import RunHooks
from refinelab.api import refine
from refinelab.api.run_list import list_runs
from refinelab.api.run_lock import RunLock
from refinelab.cli.app import app
from refinelab.config import load_settings
from refinelab.io import load_dataset
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _finished_run(tmp_path: Path, run_id: str) -> Path:
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    data = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=6)
    return refine(data, budget=3_000, settings=settings, hooks=RunHooks(chat_models=models()), run_id=run_id,
                  options={**EXTRAS, "pilot_per_op": 0, "operations": ["fix"], "rounds": 1}).run_dir


def _files(folder: Path) -> dict[str, tuple[bytes, float]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_run_folder_with_where_it_stands_and_nothing_written(tmp_path: Path) -> None:
    finished = _finished_run(tmp_path, "done")
    report = json.loads((finished / "report.json").read_text())
    for run_id in ("stopped", "running", "damaged", "odd-report"):
        _finished_run(tmp_path, run_id)
    runs = tmp_path / "runs"
    (runs / "stopped" / "report.json").unlink()  # killed before it finished
    (runs / "damaged" / "settings.json").write_text("{not json")
    (runs / "odd-report" / "report.json").write_text(json.dumps({"input_items": "many"}))
    (runs / "plan-x").mkdir()  # a plan's folder: no settings.json, not a run
    (runs / "plan-x" / "profile.json").write_text("{}")
    os.utime(runs / "done" / "report.json", (4e9, 4e9))  # the newest change: listed first

    lock = RunLock(runs / "running").acquire()  # a process working on it
    try:
        before = _files(runs)
        entries = {entry.run_id: entry for entry in list_runs(runs)}
        assert _files(runs) == before, "listing runs changed a file"
    finally:
        lock.release()
    assert list(entries)[0] == "done" and set(entries) == {"done", "stopped", "running", "damaged", "odd-report"}
    done = entries["done"]
    assert (done.state, done.detail) == ("finished", report["stop_reason"])
    assert (done.spent, done.replayed, done.budget) == (report["ledger"]["spent"], report["ledger"]["replayed"], 3_000)
    assert (done.input_items, done.output_items) == (report["input_items"], report["output_items"])
    assert done.committed == sum(n for k, n in report["edits"]["outcomes"].items() if k.endswith(":committed"))
    assert entries["stopped"].state == "stopped" and "refinelab resume stopped" in entries["stopped"].detail
    assert entries["stopped"].spent is None and entries["stopped"].budget == 3_000
    assert (entries["running"].state, entries["running"].detail) == ("running", f"pid {os.getpid()}")
    assert entries["damaged"].state == "unreadable" and "settings.json" in entries["damaged"].detail
    assert entries["odd-report"].state == "unreadable" and "report.json" in entries["odd-report"].detail
    with pytest.raises(FileNotFoundError, match="no runs folder"):  # a mistyped folder is not "no runs"
        list_runs(tmp_path / "nowhere")


def test_the_cli_lists_runs_as_a_table_or_json(tmp_path: Path) -> None:
    _finished_run(tmp_path, "only")
    runs = tmp_path / "runs"
    listed = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs), "--json"])
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)
    assert entry["run_id"] == "only" and entry["state"] == "finished" and entry["budget"] == 3_000
    assert entry["used"] == entry["spent"] + entry["replayed"]  # what the budget counts
    table = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "only" in table.stdout and "finished" in table.stdout
    (tmp_path / "none").mkdir()
    empty = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path / "none")])
    assert empty.exit_code == 0 and "no run folders in" in empty.stdout
    missing = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no runs folder" in missing.output
