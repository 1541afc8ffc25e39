"""`refinelab data overlap` at 80 columns (piped output): every item id printed whole. Its table cut them to
`abstract_alg…`; a match is now one line, only its question shortened."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from refinelab.cli.app import app

QUESTION = "Find the degree of the field extension Q(sqrt(2), sqrt(3)) over Q, as a whole number."


def test_ids_are_whole_at_80_columns(tmp_path: Path) -> None:
    data, reference = tmp_path / "d.jsonl", tmp_path / "r.jsonl"
    row = {"question": QUESTION, "choices": ["1", "2", "4", "6"], "answer": 2}
    data.write_text(json.dumps({"id": "abstract_algebra-test-00012", **row}) + "\n")
    reference.write_text(json.dumps({"id": "abstract_algebra-train-00041", **row}) + "\n")
    result = CliRunner().invoke(app, ["data", "overlap", str(data), str(reference), "--lexical", "--quiet"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "abstract_algebra-test-00012" in result.stdout and "abstract_algebra-train-00041" in result.stdout
    assert "exact, similarity 1.000, same key" in result.stdout
