"""Class 5: a run id is a folder name under --runs-dir and nothing else; every output stays inside."""

from __future__ import annotations

import pytest

from tests.support.sec_helpers import cli, endpoint, one_line_error, refine_args, tree_digest, write_config

BAD_IDS = ["../x", "../../escape", "..", ".", "a/b", "a\\b", "x\n", "x\ny", ".hidden", "...", "a/../../b",
           "ｘ", "x\u200b", "a b", "x" * 200, "trailing.", "%2e%2e", "~", "$HOME"]


@pytest.fixture
def decoys(ws):  # noqa: ANN001, ANN201
    """Files a `--run-id ..` used to overwrite: they must survive every attempt untouched."""
    for name in ("settings.json", "refined.jsonl", "report.json"):
        (ws.tmp / name).write_text(f"the user's own {name}\n")
    return ws


@pytest.mark.parametrize("run_id", BAD_IDS + ["ABSOLUTE"])
def test_refine_refuses_ids_that_are_not_plain_names(decoys, run_id: str) -> None:
    ws = decoys
    if run_id == "ABSOLUTE":
        run_id = str(ws.tmp / "elsewhere")
    before = tree_digest(ws.tmp)
    with endpoint() as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs)
        before = tree_digest(ws.tmp)
        proc = cli(refine_args(ws.data, config, ws.prompts, run_id), ws.env, ws.tmp)
        assert ep.requests == 0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "run id" in one_line_error(proc)
    assert tree_digest(ws.tmp) == before, "a refused run id changed files"


@pytest.mark.parametrize("command", ["resume", "trace"])
@pytest.mark.parametrize("run_id", ["..", "../x", "/etc", "a/b", "x\n"])
def test_other_commands_refuse_them_too(decoys, command: str, run_id: str) -> None:
    ws = decoys
    ws.runs.mkdir()
    before = tree_digest(ws.tmp)
    proc = cli([command, run_id, "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)  # a path is told what is wrong with it; anything else, the run id rule
    assert any(reason in line for reason in ("not a run id", "no such folder", "not a RefineLab run folder")), line
    assert tree_digest(ws.tmp) == before


def test_run_folder_that_is_a_symlink_is_refused(ws) -> None:
    outside = ws.tmp / "outside"
    outside.mkdir()
    ws.runs.mkdir()
    (ws.runs / "linked").symlink_to(outside, target_is_directory=True)
    with endpoint() as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs)
        proc = cli(refine_args(ws.data, config, ws.prompts, "linked"), ws.env, ws.tmp)
    assert proc.returncode == 2 and "symbolic link" in one_line_error(proc)
    assert list(outside.iterdir()) == []


def test_runs_dir_option_is_honoured_for_good_ids(ws) -> None:
    with endpoint() as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.tmp / "ignored")
        proc = cli([*refine_args(ws.data, config, ws.prompts, "good-id_1.2"), "--runs-dir", str(ws.runs)],
                   ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (ws.runs / "good-id_1.2" / "report.json").exists()
    assert not (ws.tmp / "ignored").exists()
