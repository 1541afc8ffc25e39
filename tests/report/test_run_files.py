"""A run folder from elsewhere is untrusted input: report.json and changes.jsonl are read against the shape a
run writes (api/run_files.py). A wrong type anywhere a reader looks is a one-line error naming the file, the
row and the field, exit 2, with nothing written — never an AttributeError from deep in the report code."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.api.report_html import ReportError, build_report
from refinelab.api.run_files import read_changes, read_report
from refinelab.cli.app import app


def test_what_a_run_writes_reads_back_with_every_key(run_dir: Path) -> None:
    """Exactly as written: nothing coerced (a token count 5 read back as 5.0 showed as "5.0" in the report)."""
    raw = json.loads((run_dir / "report.json").read_text())
    report = read_report(run_dir)
    assert report == raw and report["plans"] and report["ledger"]["by_node"]
    assert all(type(v["tokens"]) is int for v in report["ledger"]["by_node"].values())
    lines = [json.loads(line) for line in (run_dir / "changes.jsonl").read_text().splitlines() if line.strip()]
    assert read_changes(run_dir) == lines and lines


def _report(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        report = json.loads((folder / "report.json").read_text())
        change(report)
        (folder / "report.json").write_text(json.dumps(report))
    return apply


def _changes(change: Callable[[dict[str, Any]], None], row: int = 2) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        rows = [json.loads(line) for line in (folder / "changes.jsonl").read_text().splitlines()]
        change(rows[row - 1])
        (folder / "changes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return apply


# (name, corruption, file, expected fragment); each crashed `report` or `export` with exit 1 before
CORRUPTIONS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("metrics a list", _report(lambda r: r.update(metrics_before=[1, 2])), "report.json", "field 'metrics_before'"),
    ("coverage shares text", _report(lambda r: r["metrics_after"].update(coverage={"STEM|recall": "most"})),
     "report.json", "field 'metrics_after.coverage.STEM|recall'"),
    ("a plan's operations a number", _report(lambda r: r["plans"][0].update(by_op=5)), "report.json",
     "field 'plans.0.by_op'"),
    ("a count as text", _report(lambda r: r["ledger"].update(spent="5")), "report.json", "field 'ledger.spent'"),
    ("ledger slot a string", _report(lambda r: r["ledger"].update(by_node={"refine": "lots"})), "report.json",
     "field 'ledger.by_node.refine'"),
    ("unfixed items not objects", _report(lambda r: r.update(unfixed_flagged_items=["x"])), "report.json",
     "field 'unfixed_flagged_items.0'"),
    ("tokens text", _changes(lambda c: c.update(tokens="x")), "changes.jsonl", "row 2, field 'tokens'"),
    ("round a list", _changes(lambda c: c.update(round=[1])), "changes.jsonl", "row 2, field 'round'"),
    ("attempt an object", _changes(lambda c: c.update(attempt={"a": 1})), "changes.jsonl", "row 2, field 'attempt'"),
    ("row not an object", lambda folder: (folder / "changes.jsonl").write_text('{"edit_id": "e"}\n5\n'),
     "changes.jsonl", "row 2"),
]


@pytest.mark.parametrize(("name", "corrupt", "file", "expected"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_corrupted_run_folder_is_a_one_line_error_naming_the_field(
        run_dir: Path, tmp_path: Path, name: str, corrupt: Callable[[Path], None], file: str, expected: str) -> None:
    folder = tmp_path / "runs" / "from-elsewhere"
    shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns(".lock", "report.html"))
    corrupt(folder)
    with pytest.raises(ReportError, match=expected):
        build_report(folder)
    for command in (["report", str(folder), "-o", str(tmp_path / "r.html")],
                    ["export", str(folder), "--jsonl", str(tmp_path / "out.jsonl")]):
        if file == "changes.jsonl" and command[0] == "export":
            continue  # an export reads refined.jsonl and report.json, not the edit log
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and str(folder / file) in lines[0] and expected in lines[0], result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "out.jsonl").exists()
