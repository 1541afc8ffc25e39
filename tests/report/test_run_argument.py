"""A real finished run named by its path: `trace`, `review` and `resume` take it as `report` and `export`
always did; `review --import` on a run that waits for nothing says so; `report -o FOLDER` is one line, exit 2
(it was exit 1, the atomic write's refusal after the whole page was built)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.cli.app import app

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run without quarantined input rows (a run with them resumes too:
    tests/reliability/test_resume_quarantined.py)."""
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine
    from refinelab.config import load_settings
    from refinelab.io import load_dataset
    from tests.support.scripted import EXTRAS, models

    base = tmp_path_factory.mktemp("run-argument")
    settings = load_settings(overrides={"runs_dir": str(base / "runs"), "cache_path": str(base / "c.sqlite")})
    data = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=6)
    data.rejected = []
    return refine(data, budget=3_000, settings=settings, hooks=RunHooks(chat_models=models()), run_id="clean",
                  options={**EXTRAS, "pilot_per_op": 0, "operations": ["fix"], "rounds": 1}).run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """The run, copied: `resume` may write to the folder it is given."""
    folder = tmp_path / "runs" / "copied"
    shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns(".lock", "report.html"))
    return folder


def _one_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in output, output
    return lines[0]


def test_trace_review_and_resume_take_a_run_folder_path(clean_run: Path, tmp_path: Path) -> None:
    folder = _copy(clean_run, tmp_path)
    traced = CliRunner().invoke(app, ["trace", str(folder), "--depth", "1"])
    assert traced.exit_code == 0 and "refinelab.run" in traced.stdout, traced.output
    queue = tmp_path / "queue.jsonl"
    exported = CliRunner().invoke(app, ["review", str(folder), "--export", str(queue)])
    assert exported.exit_code == 0 and "0 pending case(s)" in exported.stdout, exported.output
    resumed = CliRunner().invoke(app, ["resume", str(folder), "--json", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["result"]["run_id"] == "copied"


def test_decisions_for_a_run_that_waits_for_none(clean_run: Path, tmp_path: Path) -> None:
    folder = _copy(clean_run, tmp_path)
    decided = tmp_path / "decided.jsonl"
    decided.write_text(json.dumps({"key": "e1", "decision": "accept"}) + "\n")
    result = CliRunner().invoke(app, ["review", str(folder), "--import", str(decided)])
    assert result.exit_code == 2 and "waits for no review decision" in _one_error(result.output)


def test_report_output_naming_a_folder(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    result = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(target)])
    assert result.exit_code == 2 and "is a folder" in _one_error(result.output)
    assert list(target.iterdir()) == []
