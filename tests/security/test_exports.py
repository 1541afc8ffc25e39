"""Classes 6 and 7: exported YAML is built by the serializer only (a folder name is a value, never
structure), and `export`/`report` never write through a link planted in the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.sec_helpers import cli, one_line_error

EXPECTED_KEYS = {"task", "dataset_path", "dataset_kwargs", "test_split", "output_type", "doc_to_text",
                 "doc_to_choice", "doc_to_target", "target_delimiter", "metric_list", "metadata"}
ITEM = {"id": "q1", "question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": 1,
        "provenance": {"created_by": "original"}}
REPORT = {"run_id": "r", "stop_reason": "finished 1 round(s)", "rounds": 1, "input_items": 1,
          "items_by_status": {"kept": 1}, "new_items": 0, "output_items": 1, "invalid_input": [],
          "edits": {"attempts": 0, "outcomes": {}}, "gave_up": [], "unfixed_flagged_items": [],
          "metrics_before": {}, "metrics_after": {}, "plans": [], "ledger": {"cap": 10, "spent": 0}}


def finished_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "refined.jsonl").write_text(json.dumps(ITEM) + "\n")
    (folder / "report.json").write_text(json.dumps(REPORT))
    (folder / "changes.jsonl").write_text("")
    return folder


NAMES = [
    "run\ninclude: /tmp/evil.yaml\nprocess_docs: !function evil.process",
    "run\r\ninclude: x",
    "run\u2028include: x",
    "run\u0085include: x",
    "run # comment\n---\ninclude: x",
    "run\n  - nested: [1, {a: b}]",
    "run\"\ninclude: 'x'",
    "run\\ninclude: x",
]


@pytest.mark.parametrize("name", NAMES)
def test_folder_name_cannot_add_yaml_keys(ws, name: str) -> None:
    run = finished_run(ws.tmp / "runs" / name)
    out = ws.tmp / "out"
    proc = cli(["export", str(run), "--lm-eval", str(out), "--task-name", "mytask"], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "mytask.yaml").read_text()
    config = yaml.safe_load(text)
    assert set(config) == EXPECTED_KEYS, sorted(config)
    assert config["task"] == "mytask"
    assert not any(line.lstrip().startswith(("include", "process_docs")) for line in text.splitlines())
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert len(comments) == 2


@pytest.mark.parametrize("task", ["a\ninclude: x", "a: b", "../a", "a b", "-a", "a\u2028b"])
def test_task_names_with_structure_are_refused(ws, task: str) -> None:
    run = finished_run(ws.tmp / "runs" / "r")
    proc = cli(["export", str(run), "--lm-eval", str(ws.tmp / "out"), "--task-name", task], ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc)
    assert not list((ws.tmp / "out").glob("*")) if (ws.tmp / "out").exists() else True


def test_default_task_name_from_a_hostile_folder_name(ws) -> None:
    run = finished_run(ws.tmp / "runs" / "x\ninclude: evil")
    out = ws.tmp / "out"
    proc = cli(["export", str(run), "--lm-eval", str(out)], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("*.yaml")
    assert set(yaml.safe_load(path.read_text())) == EXPECTED_KEYS


@pytest.mark.parametrize("planted", ["mytask.jsonl", "mytask.yaml"])
def test_export_replaces_a_planted_link_instead_of_following_it(ws, planted: str) -> None:
    run = finished_run(ws.tmp / "runs" / "r")
    out = ws.tmp / "out"
    out.mkdir()
    victim = ws.tmp / "victim.txt"
    victim.write_text("precious\n")
    (out / planted).symlink_to(victim)
    proc = cli(["export", str(run), "--lm-eval", str(out), "--task-name", "mytask"], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert not (out / planted).is_symlink() and (out / planted).stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["mytask.jsonl", "mytask.yaml"]  # no temp files left


@pytest.mark.parametrize("planted", ["report.html", "report.html.tmp", ".report.html.tmp"])
def test_report_never_writes_through_links(ws, planted: str) -> None:
    run = finished_run(ws.tmp / "runs" / "r")
    victim = ws.tmp / "victim.txt"
    victim.write_text("precious\n")
    (run / planted).symlink_to(victim)
    proc = cli(["report", str(run)], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert victim.read_text() == "precious\n"
    assert (run / "report.html").is_file() and not (run / "report.html").is_symlink()


def test_report_output_option_pointing_at_a_link(ws) -> None:
    run = finished_run(ws.tmp / "runs" / "r")
    victim = ws.tmp / "victim.txt"
    victim.write_text("precious\n")
    target = ws.tmp / "page.html"
    target.symlink_to(victim)
    proc = cli(["report", str(run), "--output", str(target)], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert victim.read_text() == "precious\n" and not target.is_symlink()


def test_planted_trace_link_in_a_run_folder_is_refused_on_resume(ws) -> None:
    from tests.support.sec_helpers import free_port, refine_args, write_config

    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{free_port()}/v1", ws.runs)
    assert cli(refine_args(ws.data, config, ws.prompts, "r"), ws.env, ws.tmp).returncode == 3
    victim = ws.tmp / "victim.txt"
    victim.write_text("precious\n")
    trace = ws.runs / "r" / "trace.jsonl"
    trace.unlink()
    trace.symlink_to(victim)
    proc = cli(["resume", "r", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
    assert proc.returncode == 2 and "symbolic link" in one_line_error(proc)
    assert victim.read_text() == "precious\n"
