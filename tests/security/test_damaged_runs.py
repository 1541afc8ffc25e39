"""Class 8: damaged run folders and absurd inputs end in one line naming the file and the problem,
exit 2, with nothing half-written and the damaged folder left exactly as it was. A renamed or copied
run folder resumes as itself (its identity is stored inside it, not taken from its name)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import types
from pathlib import Path

import pytest

from tests.support.sec_helpers import (
    base_env,
    cli,
    endpoint,
    free_port,
    one_line_error,
    refine_args,
    statuses,
    tree_digest,
    write_config,
    write_dataset,
    write_prompts,
)

SEAL_KEY = Path("home") / ".config" / "refinelab" / "run-seal.key"  # a workspace user's run seal (HOME)


@pytest.fixture(scope="module")
def stopped_template(tmp_path_factory: pytest.TempPathFactory, warm_embeddings: Path) -> types.SimpleNamespace:
    """One run stopped by a dead endpoint per test process. Making it is a CLI run (~2.5 s); the damage
    cases each take a copy, which resumes as itself (`test_renamed_or_copied_folder_resumes_as_itself`)."""
    tmp = tmp_path_factory.mktemp("stopped-template")
    port = free_port()
    config = write_config(tmp / "c.yaml", f"http://127.0.0.1:{port}/v1", tmp / "runs")
    proc = cli(refine_args(write_dataset(tmp / "data.jsonl"), config, write_prompts(tmp / "prompts"), "r"),
               base_env(tmp), tmp)
    assert proc.returncode == 3, proc.stderr[-2000:]
    return types.SimpleNamespace(run=tmp / "runs" / "r", seal_key=tmp / SEAL_KEY, port=port)


@pytest.fixture
def stopped(ws, stopped_template):  # noqa: ANN001, ANN201
    """A run stopped by a dead endpoint (resumable), written by this workspace's user (the template's run
    folder and seal key), and the port its endpoint will come back on."""
    ws.port = stopped_template.port
    ws.run = ws.runs / "r"
    shutil.copytree(stopped_template.run, ws.run)
    (ws.tmp / SEAL_KEY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(stopped_template.seal_key, ws.tmp / SEAL_KEY)
    return ws


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _scribble(path: Path, offset: int = 4096, size: int = 2048) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = b"\xde\xad\xbe\xef" * (size // 4)
    path.write_bytes(bytes(data))


def _sql(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement)
    db.close()


def _settings(ws, edit) -> None:  # noqa: ANN001
    path = ws.run / "settings.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


DAMAGE = {
    "store truncated to half": ("store.sqlite", lambda ws: _truncate(ws.run / "store.sqlite", 0.5)),
    "store empty": ("store.sqlite", lambda ws: _truncate(ws.run / "store.sqlite", 0)),
    "store is text": ("store.sqlite", lambda ws: (ws.run / "store.sqlite").write_text("not a database\n" * 100)),
    "store page scribbled": ("store.sqlite", lambda ws: _scribble(ws.run / "store.sqlite")),
    "store missing": ("store.sqlite", lambda ws: (ws.run / "store.sqlite").unlink()),
    "checkpoints truncated": ("checkpoints.sqlite", lambda ws: _truncate(ws.run / "checkpoints.sqlite", 0.3)),
    "checkpoints garbage": ("checkpoints.sqlite", lambda ws: (ws.run / "checkpoints.sqlite").write_bytes(
        b"SQLite format 3\x00" + b"\x00\xff" * 3000)),
    "checkpoints scribbled": ("checkpoints.sqlite", lambda ws: _scribble(ws.run / "checkpoints.sqlite", 1024)),
    # no checkpoint to resume from: LangGraph's EmptyInputError, exit 1, once the graph started
    "checkpoints missing": ("checkpoints.sqlite", lambda ws: (ws.run / "checkpoints.sqlite").unlink()),
    "store names another run": ("checkpoints.sqlite", lambda ws: _sql(
        ws.run / "store.sqlite", "UPDATE meta SET value = '\"other\"' WHERE key = 'run_id'")),
    # an item row that is not an item: refused up front naming the column and the row, not pydantic's dump of
    # whichever row a resume or a review happened to read first
    "store item not an item": ("store.sqlite, field 'items.current'", lambda ws: _sql(
        ws.run / "store.sqlite", "UPDATE items SET current = '{\"id\": 1, \"question\": []}' "
        "WHERE id = (SELECT id FROM items ORDER BY position LIMIT 1)")),
    "store original not json": ("store.sqlite, field 'items.original'", lambda ws: _sql(
        ws.run / "store.sqlite", "UPDATE items SET original = '{not json' "
        "WHERE id = (SELECT id FROM items ORDER BY position DESC LIMIT 1)")),
    "ledger garbage": ("ledger.sqlite", lambda ws: (ws.run / "ledger.sqlite").write_bytes(b"\x00" * 5000)),
    "settings not json": ("settings.json", lambda ws: (ws.run / "settings.json").write_text("{not json")),
    "settings empty": ("settings.json", lambda ws: (ws.run / "settings.json").write_text("")),
    "settings nested 100k": ("settings.json", lambda ws: (ws.run / "settings.json").write_text(
        "[" * 100_000 + "]" * 100_000)),
    "settings 5000-digit budget": ("settings.json", lambda ws: (ws.run / "settings.json").write_text(
        re.sub(r'"budget": \d+', '"budget": ' + "9" * 5000, (ws.run / "settings.json").read_text()))),
    "settings wrong type": ("settings.json", lambda ws: _settings(ws, lambda d: d.update(settings=[1, 2]))),
    "settings bad field": ("settings.json", lambda ws: _settings(
        ws, lambda d: d["settings"]["roles"]["judge"].update(temperature="hot"))),
    "settings unknown key": ("settings.json", lambda ws: _settings(ws, lambda d: d["settings"].update(evil=1))),
    "settings missing": ("settings.json", lambda ws: (ws.run / "settings.json").unlink()),
    "settings is binary": ("settings.json", lambda ws: (ws.run / "settings.json").write_bytes(b"\xff\xfe\x00")),
    "settings reference path not text": ("settings.json, field 'decontaminate.0.path'", lambda ws: _settings(
        ws, lambda d: d.update(decontaminate=[{"reference": "test.jsonl", "path": 7, "digest": "0"}]))),
    "settings targets wrong": ("settings.json", lambda ws: _settings(ws, lambda d: d.update(targets={"buckets": "x", "thresholds": [None]}))),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_resume_of_a_damaged_folder(stopped, name: str) -> None:
    ws = stopped
    filename, damage = DAMAGE[name]
    damage(ws)
    before = tree_digest(ws.run)
    with endpoint(port=ws.port) as ep:
        proc = cli(["resume", "r", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
        assert ep.requests == 0, "a damaged run must not start calling the model"
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    line = one_line_error(proc)
    assert filename in line, line
    assert tree_digest(ws.run) == before, "the failed resume modified the damaged folder"


def test_checkpoint_rows_with_garbage_blobs(stopped) -> None:
    ws = stopped
    with sqlite3.connect(ws.run / "checkpoints.sqlite") as db:
        db.execute("UPDATE checkpoints SET checkpoint = X'DEADBEEF00FF'")
    before = tree_digest(ws.run)
    proc = cli(["resume", "r", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "checkpoints.sqlite" in one_line_error(proc)
    assert tree_digest(ws.run) == before


@pytest.mark.parametrize("how", ["renamed", "copied"])
def test_renamed_or_copied_folder_resumes_as_itself(stopped, how: str) -> None:
    ws = stopped
    moved = ws.runs / "other-name"
    (shutil.move if how == "renamed" else shutil.copytree)(ws.run, moved)
    with endpoint(port=ws.port):
        proc = cli(["resume", "other-name", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads((moved / "report.json").read_text())
        assert report["run_id"] == "r" and report["stop_reason"].startswith("finished")
        assert set(statuses(moved).values()) <= {"kept", "edited", "removed"}
        if how == "copied":  # the original is independent and resumes too
            proc = cli(["resume", "r", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert (ws.run / "report.json").exists()


BAD_ROWS = {
    "5000-digit answer": '{"id": "q9", "question": "Big?", "choices": ["a", "b"], "answer": ' + "7" * 5000 + "}",
    "5000-digit difficulty": '{"id": "q9", "question": "Big?", "choices": ["a", "b"], "answer": 0, "difficulty": '
                             + "1" * 5000 + "}",
    "nested 100k in metadata": '{"id": "q9", "question": "Deep?", "choices": ["a", "b"], "answer": 0, "metadata": '
                               + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
    "nested 100k array": "[" * 100_000 + "]" * 100_000,
    "answer digits string": '{"id": "q9", "question": "Big?", "choices": ["a", "b"], "answer": "' + "9" * 5000 + '"}',
    "NaN difficulty": '{"id": "q9", "question": "NaN?", "choices": ["a", "b"], "answer": 0, "difficulty": NaN}',
}


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_absurd_rows(ws, name: str, strict: bool) -> None:
    data = ws.tmp / "bad.jsonl"
    data.write_text(ws.data.read_text() + BAD_ROWS[name] + "\n")
    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{free_port()}/v1", ws.runs)
    args = refine_args(data, config, ws.prompts, "absurd", budget=0) + (["--strict"] if strict else [])
    proc = cli(args, ws.env, ws.tmp)
    assert "Traceback" not in proc.stderr
    if not strict and proc.returncode == 0:  # quarantined: the run goes on and reports the row
        report = json.loads((ws.runs / "absurd" / "report.json").read_text())
        assert any("bad.jsonl" in row["id"] and "7" in row["id"] for row in report["invalid_input"]), report
        assert len(json.dumps(report["invalid_input"])) < 2000
        return
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line_error(proc)
    assert "bad.jsonl" in line and "row 7" in line, line
    assert not (ws.runs / "absurd").exists()
    assert len(line) < 1000


@pytest.mark.parametrize("budget", [str(10**26), "9" * 5000, "-1", "-99999999999999999999999"])
def test_absurd_budgets(ws, budget: str) -> None:
    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{free_port()}/v1", ws.runs)
    args = refine_args(ws.data, config, ws.prompts, "b")
    args[args.index("--budget") + 1] = budget
    proc = cli(args, ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "budget" in proc.stderr.lower()
    if "Invalid value for '--budget'" not in proc.stderr:  # else: the option parser refused it (usage error)
        assert "budget" in one_line_error(proc).lower()
    assert not (ws.runs / "b").exists()


@pytest.mark.parametrize(("what", "content"), [
    ("config", "roles: " + "[" * 50_000 + "]" * 50_000),
    ("config", "roles: {judge: {temperature: " + "9" * 5000 + "}}"),
    ("config", "\x00\x01 binary"),
    ("targets", "coverage: " + "[" * 50_000 + "]" * 50_000),
    ("targets", "- just\n- a list\n"),
    ("targets", ": : :\n"),
])
def test_absurd_config_and_targets(ws, what: str, content: str) -> None:
    path = ws.tmp / f"{what}.yaml"
    path.write_text(content)
    good = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{free_port()}/v1", ws.runs)
    args = refine_args(ws.data, path if what == "config" else good, ws.prompts, "c")
    if what == "targets":
        args += ["--targets", str(path)]
    proc = cli(args, ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert path.name in one_line_error(proc)
    assert not (ws.runs / "c").exists()


def _trace_run(run_id: str, extra: str) -> bytes:
    # every field a record needs (trace_id since it became required), so each case reaches the field it damages
    head = json.dumps({"id": run_id, "trace_id": "a", "name": "n", "run_type": "chain",
                       "start_time": "2026-12-01T00:00:00"})
    return f"{head[:-1]}, {extra}}}\n".encode()


@pytest.mark.parametrize("content", [
    b'{"id": 1}\n{bad\n', b"\xff\xfe garbage", b"[" * 100_000 + b"\n", b"[1, 2]\n",
    # fields the tree computes with, of the wrong type: each was a TypeError/ValueError (exit 1) before
    _trace_run("a", '"end_time": "yesterday"'), _trace_run("a", '"end_time": 5'),
    _trace_run("a", '"parent_run_id": {"x": 1}'), _trace_run("a", '"usage": {"total_tokens": "many"}'),
    _trace_run("a", '"usage": [1]'),
    # parents in a cycle: the token totals recursed without end
    _trace_run("a", '"parent_run_id": "b"') + _trace_run("b", '"parent_run_id": "a"'),
])
def test_trace_of_a_damaged_file(ws, content: bytes) -> None:
    run = ws.runs / "t"
    run.mkdir(parents=True)
    (run / "trace.jsonl").write_bytes(content)
    proc = cli(["trace", "t", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr
    assert "trace.jsonl" in one_line_error(proc)


def test_a_folder_without_a_checkpoint_opens_but_does_not_resume(tmp_path: Path) -> None:
    """A Studio server reopening its run (its checkpoints live in the LangGraph server) or a review needs no
    checkpoints.sqlite; only a resume does, and says so in one line instead of LangGraph's EmptyInputError."""
    from refinelab.api.context import close_run_context
    from refinelab.api.run_folders import check_existing
    from refinelab.api.runs import as_options, start_run_folder
    from refinelab.config import load_settings
    from refinelab.errors import DataError
    from refinelab.io import from_records

    settings = load_settings(overrides={"runs_dir": str(tmp_path)})
    data = from_records([{"question": "Which is even?", "choices": ["3", "4"], "answer": 1}])
    folder, ctx = start_run_folder(data, budget=100, targets=None, settings=settings, run_id="r",
                                   options=as_options(None), hooks=None, prompts_dir=None)
    close_run_context(ctx)
    folder.release()
    assert not (tmp_path / "r" / "checkpoints.sqlite").exists()
    assert check_existing(tmp_path, "r")[1] == "r"
    with pytest.raises(DataError, match=r"checkpoints.sqlite: no saved checkpoint of run 'r'"):
        check_existing(tmp_path, "r", resuming=True)
