"""`refinelab review RUN --import FILE` with a file that holds no decision: each is one `error:` line naming the
file (and the line), exit 2, before the run is opened. A file of non-decision lines used to resume nothing and
print `run R finished: None; reviews None; output None items` with exit 0; a missing file read "cannot be read
as UTF-8 text (FileNotFoundError)"; `--export` with `--import` ignored the import without a word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.api.review import read_decisions
from refinelab.cli.app import app
from refinelab.errors import DataError


def _one_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in output, output
    return lines[0]


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A folder that passes as a run for the argument; no decision file below should get as far as opening it."""
    folder = tmp_path / "runs" / "r"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"settings": {}, "targets": {}}))
    return folder


def _import(run_folder: Path, path: Path) -> str:
    result = CliRunner().invoke(app, ["review", "r", "--runs-dir", str(run_folder.parent), "--import", str(path)])
    assert result.exit_code == 2, result.output
    return _one_error(result.output)


def test_lines_that_are_not_decisions_name_the_file_and_line(run_folder: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(DataError, match=r"junk\.jsonl, row 1, field 'decision': missing"):
        read_decisions(junk)
    line = _import(run_folder, junk)
    assert "junk.jsonl, row 1, field 'decision'" in line and "finished" not in line


def test_a_queue_with_nothing_decided_is_refused(run_folder: Path, tmp_path: Path) -> None:
    queue = tmp_path / "queue.jsonl"
    queue.write_text(json.dumps({"key": "e1", "kind": "undecided", "decision": None}) + "\n\n")
    with pytest.raises(DataError, match="holds no decision"):
        read_decisions(queue)
    assert "queue.jsonl: holds no decision" in _import(run_folder, queue)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "empty.jsonl: holds no decision" in _import(run_folder, empty)


def test_a_missing_or_folder_import_says_so(run_folder: Path, tmp_path: Path) -> None:
    assert _import(run_folder, tmp_path / "nope.jsonl").endswith("nope.jsonl: not found")
    assert "is a folder" in _import(run_folder, tmp_path)


def test_export_and_import_together_are_refused(run_folder: Path, tmp_path: Path) -> None:
    decided = tmp_path / "decided.jsonl"
    decided.write_text(json.dumps({"key": "e1", "decision": "accept"}) + "\n")
    result = CliRunner().invoke(app, ["review", "r", "--runs-dir", str(run_folder.parent),
                                      "--export", str(tmp_path / "q.jsonl"), "--import", str(decided)])
    assert result.exit_code == 2 and "--export and --import" in _one_error(result.output)
    assert not (tmp_path / "q.jsonl").exists()
