"""Text from datasets, packs and run folders reaches the terminal as written, never as rich markup: a
subject named "[/x]" made `refinelab data validate` crash with rich's MarkupError, and a quarantined
row's value did the same to `refinelab refine` (exit 1, "unexpected MarkupError")."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.sec_helpers import cli

MARKUP = "[/x][bold red]loud[/bold red]"


def _dataset(path: Path) -> Path:
    rows = [{"id": "a1", "question": "Which planet is largest?", "choices": ["Jupiter", "Mars", "Venus", "Earth"],
             "answer": 0, "subject": MARKUP},
            {"id": "a2", "question": "Q2?", "choices": ["a", "b", "c", "d"], "answer": MARKUP}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_values_print_as_written_in_validate_and_refine(ws) -> None:
    data = _dataset(ws.tmp / "markup.jsonl")
    validate = cli(["data", "validate", str(data)], {**ws.env, "COLUMNS": "200"}, ws.tmp)
    assert validate.returncode == 2, validate.stderr[-2000:]  # the bad-answer row is a problem: exit 2
    assert "MarkupError" not in validate.stdout + validate.stderr
    assert "markup.jsonl, row 2, field 'answer'" in validate.stdout
    assert validate.stdout.count(MARKUP) == 2  # the subject in the table, the value in the problem line
    refine = cli(["refine", str(data), "--budget", "0", "--runs-dir", str(ws.runs), "--run-id", "mk",
                  "--prompts", str(ws.prompts)], ws.env, ws.tmp)
    assert refine.returncode == 0, refine.stderr[-2000:]
    assert "1 invalid row(s) quarantined" in refine.stderr and MARKUP in refine.stderr


def test_trace_names_from_a_run_folder_print_as_written(ws) -> None:
    data = _dataset(ws.tmp / "markup.jsonl")
    assert cli(["refine", str(data), "--budget", "0", "--runs-dir", str(ws.runs), "--run-id", "tr", "--quiet",
                "--prompts", str(ws.prompts)], ws.env, ws.tmp).returncode == 0
    trace = ws.runs / "tr" / "trace.jsonl"
    runs = [json.loads(line) for line in trace.read_text().splitlines()]
    runs[-1]["name"], runs[-1]["error"] = MARKUP, MARKUP  # a run folder is untrusted: its trace too
    trace.write_text("".join(json.dumps(r) + "\n" for r in runs))
    shown = cli(["trace", "tr", "--runs-dir", str(ws.runs), "--depth", "9"], ws.env, ws.tmp)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "MarkupError" not in shown.stdout + shown.stderr and MARKUP in shown.stdout
