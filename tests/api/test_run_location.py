"""Which run a command reads: RUN is a run id in the runs folder or a path to a run folder, one rule for every
command (`refinelab.api.run_list.locate_run`), and the runs folder defaults to the configured one, where
`refine` writes (settings `runs_dir`, REFINELAB_RUNS_DIR). Run folders here are made by hand (settings.json,
report.json, trace.jsonl): what is checked is where the commands look, not what a run holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.api.run_list import is_run_folder, list_runs, locate_run
from refinelab.cli.app import app

TRACE = {"id": "a", "trace_id": "t-1", "parent_run_id": None, "name": "refinelab.run", "run_type": "chain",
         "start_time": "2026-12-01T00:00:00", "end_time": "2026-12-01T00:00:02", "usage": {"total_tokens": 7}}


def fake_run(folder: Path, *, settings: bool = True, dataset: str = "data.jsonl") -> Path:
    """A finished run folder as `runs` and `trace` read it: settings.json, report.json, trace.jsonl."""
    folder.mkdir(parents=True)
    if settings:
        (folder / "settings.json").write_text(json.dumps({"settings": {}, "targets": {}, "dataset": dataset,
                                                          "budget": 1_000}))
    (folder / "report.json").write_text(json.dumps({"stop_reason": "budget spent", "input_items": 3,
                                                    "output_items": 3, "ledger": {"spent": 10, "replayed": 0}}))
    (folder / "trace.jsonl").write_text(json.dumps(TRACE) + "\n")
    return folder


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in output, output
    return lines[0]


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without ./runs, and REFINELAB_RUNS_DIR naming where the runs are."""
    work, runs = tmp_path / "work", tmp_path / "configured"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("REFINELAB_RUNS_DIR", str(runs))
    fake_run(runs / "run-a")
    return runs


def test_commands_read_the_configured_runs_folder(configured: Path, tmp_path: Path) -> None:
    """`refinelab runs` right after a run said "no run folders in runs": it looked in ./runs, not where
    `refine` wrote."""
    listed = CliRunner().invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [entry["run_id"] for entry in json.loads(listed.stdout)] == ["run-a"]
    traced = CliRunner().invoke(app, ["trace", "run-a"])
    assert traced.exit_code == 0 and "refinelab.run" in traced.stdout, traced.output
    # an explicit --runs-dir still wins over the setting
    fake_run(tmp_path / "explicit" / "run-b")
    explicit = CliRunner().invoke(app, ["runs", "--json", "--runs-dir", str(tmp_path / "explicit")])
    assert [entry["run_id"] for entry in json.loads(explicit.stdout)] == ["run-b"]
    assert CliRunner().invoke(app, ["trace", "run-a", "--runs-dir", str(tmp_path / "explicit")]).exit_code == 2


def test_invalid_settings_are_one_line(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINELAB_ROUNDS", "many")
    for args in (["runs"], ["trace", "run-a"], ["report", "run-a"], ["review", "run-a", "--export", "q.jsonl"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "rounds" in one_error_line(result.output)


def test_a_path_to_a_run_folder_works_for_every_command(configured: Path) -> None:
    """`report` and `export` took `runs/RUN`; `trace`, `review` and `resume` refused it as a run id."""
    traced = CliRunner().invoke(app, ["trace", str(configured / "run-a")])
    assert traced.exit_code == 0 and "refinelab.run" in traced.stdout, traced.output
    # review and resume get past the argument: what stops them is the hand-made folder's missing store
    for args in (["review", str(configured / "run-a"), "--export", "q.jsonl"], ["resume", str(configured / "run-a")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "store.sqlite" in one_error_line(result.output), (args, result.output)
    assert not Path("q.jsonl").exists()


def test_locate_run_one_rule(configured: Path, tmp_path: Path) -> None:
    run = configured / "run-a"
    assert locate_run("run-a").path == run  # an id: in the configured runs folder
    assert locate_run("run-a", tmp_path / "other").path == tmp_path / "other" / "run-a"  # --runs-dir wins
    by_path = locate_run(str(run))
    assert (by_path.runs_dir, by_path.run_id) == (configured, "run-a")  # what resume and review take
    fake_run(Path("here"))  # an id-like name that is a run folder in the working folder, not in the runs folder
    assert locate_run("here").path == Path.cwd() / "here"
    assert locate_run("nowhere").path == configured / "nowhere"  # missing: the command says which run it lacks
    for bad, problem in (("..", "not a RefineLab run folder"), ("a/b", "a/b: no such folder"),
                         ("/etc", "/etc: not a RefineLab run folder"), ("x\n", "not a run id")):
        with pytest.raises(FileNotFoundError, match=problem):  # a path is told what is wrong with it
            locate_run(bad)
    (configured / "linked").symlink_to(run, target_is_directory=True)
    with pytest.raises(Exception, match="symbolic link"):
        locate_run("linked")


def test_a_missing_runs_folder_is_an_error_an_empty_one_is_not(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path / "nonexistent")])
    assert missing.exit_code == 2 and "nonexistent" in one_error_line(missing.output)
    with pytest.raises(FileNotFoundError, match="no runs folder"):
        list_runs(tmp_path / "nonexistent")
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path / "empty")])
    assert empty.exit_code == 0 and "no run folders in" in empty.stdout


def test_a_run_folder_without_settings_is_listed_as_unreadable(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs / "ok")
    fake_run(runs / "lost-settings", settings=False)
    (runs / "profile-x").mkdir()  # a profile's folder: a store and profile.json, none of a run's own files
    (runs / "profile-x" / "profile.json").write_text("{}")
    (runs / "profile-x" / "store.sqlite").write_bytes(b"")
    assert not is_run_folder(runs / "profile-x") and is_run_folder(runs / "lost-settings")
    entries = {entry.run_id: entry for entry in list_runs(runs)}
    assert set(entries) == {"ok", "lost-settings"}
    lost = entries["lost-settings"]
    assert lost.state == "unreadable" and lost.detail.startswith("settings.json: missing beside report.json")
    listed = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs), "--json"])
    assert {entry["run_id"]: entry["state"] for entry in json.loads(listed.stdout)} == {
        "ok": "finished", "lost-settings": "unreadable"}


def test_the_runs_table_keeps_ids_whole_at_80_columns(tmp_path: Path) -> None:
    """Piped output is 80 columns wide: the table cut the id to `demo-s…`."""
    runs = tmp_path / "runs"
    run_id = "20261125-130726-ddf160"
    fake_run(runs / run_id, dataset="/a/long/path/to/the/dataset/that/takes/room/mmlu_test.jsonl")
    table = CliRunner().invoke(app, ["runs", "--runs-dir", str(runs)], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert run_id in table.stdout and "finished" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
