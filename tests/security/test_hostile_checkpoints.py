"""A run folder's checkpoints come from elsewhere too: reading them must never run code.

LangGraph's default serializer imports and calls whatever callable a msgpack checkpoint names (its own
docs: set `LANGGRAPH_STRICT_MSGPACK`); the seal covers settings.json only, so a `checkpoints.sqlite` swapped
into an otherwise untouched folder ran `os.system` on `refinelab resume`. Every saver a run opens now reads
with LangGraph's safe types only (`run_checkpoints.checkpoint_serde`) and the folder check refuses the rest.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import ormsgpack
from typer.testing import CliRunner

from refinelab.cli.app import app
from tests.support.small_runs import finished_run

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _finished_run(tmp_path: Path) -> Path:
    from refinelab.io import load_dataset

    data = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=5)
    data.rejected = []
    return finished_run(tmp_path, data, "planted")


def test_a_checkpoint_that_names_a_callable_is_refused_and_never_called(tmp_path: Path) -> None:
    run_dir = _finished_run(tmp_path)
    marker = tmp_path / "PWNED"
    # msgpack extension 0: "construct module.name(arg)", which the default serializer imports and calls
    payload = ormsgpack.packb(ormsgpack.Ext(0, ormsgpack.packb(["os", "system", f"touch {marker}"])))
    with sqlite3.connect(run_dir / "checkpoints.sqlite") as db:
        db.execute("UPDATE checkpoints SET checkpoint = ?, type = 'msgpack'", (payload,))
    for argv in (["resume", str(run_dir), "--quiet", "--json"], ["resume", str(run_dir), "--quiet", "--trust-run"],
                 ["review", str(run_dir), "--export", str(tmp_path / "q.jsonl")]):
        result = CliRunner().invoke(app, argv)
        assert not marker.exists(), f"{argv[0]} ran the checkpoint's code"
        assert result.exit_code == 2, result.output
        line = " ".join(result.output.split())
        assert "checkpoints.sqlite" in line and "os.system" in line and "Traceback" not in result.output, line
