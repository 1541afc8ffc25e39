"""Untrusted text never drives the terminal, and a named pipe never hangs a command.

Escape codes: Rich drops BEL, BS and CR but prints ESC as it is, so a dataset row, a file name, a run folder's
name or a trace span's name could clear the screen, set the window title or plant a hyperlink
(`\\x1b]8;;URL`), and a file named with a newline printed a fake `error:` line. Every command prints such
text through `cli.common.safe_text`.

Named pipes: opening a FIFO for reading waits for a writer, so one planted as a run's settings.json,
trace.jsonl or refined.jsonl, or as a prompt file, hung `runs`, `trace`, `report` and `packs show`. Each
is now refused in one line (`atomic.open_regular`, `api.run_checks.check_run_files`).

The CLI runs as its own process (a hang is a timeout, not a stuck suite), without the `ws` fixture: nothing
here calls a model or embeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from refinelab.cli.common import safe_text
from tests.support.sec_helpers import base_env, cli, one_line_error

ESC = "\x1b[2J\x1b]0;OWNED-TITLE\x07"
LINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
RLO = "\u202e"
HANG_S = 30  # a command that hangs is killed after this and the test fails


def _shown(proc: subprocess.CompletedProcess[str]) -> str:
    """What reached the terminal: no raw control sequence in it (ESC, C1's CSI, a bidi override)."""
    text = proc.stdout + proc.stderr
    for char in ("\x1b", "\x9b", "\x07", RLO):
        assert char not in text, text[-2000:]
    return text


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return cli(args, base_env(tmp), tmp, timeout=HANG_S)


def _item(item_id: str, question: str, subject: str = "s", **extra: object) -> str:
    return json.dumps({"id": item_id, "question": question, "choices": ["a", "b", "c", "d"], "answer": 0,
                       "subject": subject, **extra}) + "\n"


def _settings(run: Path, dataset: str = "data.jsonl") -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(json.dumps({"settings": {}, "targets": {}, "dataset": dataset, "budget": 5}))


def _span(**fields: object) -> str:
    return json.dumps({"id": "a", "trace_id": "t", "name": "n", "run_type": "chain",
                       "start_time": "2026-01-01T00:00:00", **fields}) + "\n"


# ------------------------------------------------------------------------------------------ escape codes


def test_safe_text_escapes_every_control_visibly() -> None:
    assert safe_text(ESC) == "\\x1b[2J\\x1b]0;OWNED-TITLE\\x07"
    assert safe_text("a\nb\tc\x7f\x9b" + RLO + "\u2066\u2028") == "a\\x0ab\\x09c\\x7f\\x9b\\u202e\\u2066\\u2028"
    assert safe_text("two\nlines\x1b", keep_newlines=True) == "two\nlines\\x1b"
    assert safe_text("plain: é, 中文, emoji 👍🏽, [bold]") == "plain: é, 中文, emoji 👍🏽, [bold]"


def test_validate_escapes_dataset_text(tmp_path: Path) -> None:
    data = tmp_path / "esc.jsonl"
    data.write_text(_item("a1", "Q" + ESC + "?", subject="s" + LINK, choices=["x" + RLO + "y", "b", "c", "d"])
                    + _item("a2", "Q2?", answer="Z" + ESC))  # ids refuse controls already (identifiers)
    proc = _run(["data", "validate", str(data)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]  # the bad answer is a problem
    shown = _shown(proc)
    assert "Q\\x1b[2J\\x1b]0;OWNED-TITLE\\x07?" in shown  # the question, visible and inert
    assert "s\\x1b]8;;http://evil.example/" in shown  # the subject's hyperlink in the table
    assert "A. x\\u202ey" in shown  # an option
    assert "'Z\\x1b[2J" in shown  # the problem line


def test_a_file_name_cannot_fake_an_error_line(tmp_path: Path) -> None:
    data = tmp_path / "evil\nerror: nothing wrong.jsonl"
    data.write_text(_item("a1", "Q?"))
    proc = _run(["data", "validate", str(data)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [line for line in _shown(proc).splitlines() if line.startswith("error:")]
    assert "evil\\x0aerror: nothing wrong.jsonl: 1 valid items" in proc.stdout
    missing = _run(["data", "validate", str(tmp_path / ("gone" + ESC + "\nerror: fake.jsonl"))], tmp_path)
    assert missing.returncode == 2
    assert "gone\\x1b[2J" in one_line_error(missing) and not missing.stdout  # print_error escapes too
    _shown(missing)


def test_runs_and_trace_escape_run_folder_text(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _settings(runs / ("r" + ESC))  # a folder name no run id allows: listed as unreadable, escaped
    _settings(runs / "ok", dataset="data" + LINK)
    (runs / "ok" / "trace.jsonl").write_text(_span(trace_id="t" + ESC, name="n" + ESC, error="boom" + LINK))
    listing = _run(["runs", "--runs-dir", str(runs)], tmp_path)
    assert listing.returncode == 0, listing.stderr[-2000:]
    shown = _shown(listing)
    assert "r\\x1b[2J" in shown and "unreadable" in shown and "data\\x1b]8;;" in shown
    tree = _run(["trace", "ok", "--runs-dir", str(runs)], tmp_path)
    assert tree.returncode == 0, tree.stderr[-2000:]
    shown = _shown(tree)
    assert "trace t\\x1b[2J" in shown and "n\\x1b[2J" in shown and "boom\\x1b]8;;" in shown


def test_overlap_escapes_ids_and_questions(tmp_path: Path) -> None:
    data = tmp_path / ("d" + ESC + ".jsonl")
    data.write_text(_item("x1", "Which" + LINK + " is it?") + _item("x2", "Which" + LINK + " is it?"))
    proc = _run(["data", "overlap", str(data), "--lexical", "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = _shown(proc)
    assert "x2 found as x1" in shown and "Which\\x1b]8;;" in shown and "d\\x1b[2J" in shown


def test_run_list_marks_a_folder_named_against_the_run_id_rule(tmp_path: Path) -> None:
    from refinelab.api.run_list import list_runs

    _settings(tmp_path / ("bad name" + ESC))
    [entry] = list_runs(tmp_path)
    assert entry.state == "unreadable" and "is not allowed" in entry.detail


# ------------------------------------------------------------------------------------------ named pipes


def test_open_regular_refuses_pipes_and_folders(tmp_path: Path) -> None:
    from refinelab.atomic import open_regular
    from refinelab.errors import DataError

    os.mkfifo(tmp_path / "pipe")
    for path in (tmp_path / "pipe", tmp_path):
        with pytest.raises(DataError, match="not a regular file"):
            open_regular(path)
    (tmp_path / "file").write_bytes(b"ok")
    with open_regular(tmp_path / "file") as handle:
        assert handle.read() == b"ok"


@pytest.mark.parametrize("name", ["settings.json", "report.json", ".lock", "trace.jsonl"])
def test_runs_lists_a_folder_holding_a_pipe_as_unreadable(tmp_path: Path, name: str) -> None:
    run = tmp_path / "runs" / "p"
    _settings(run)
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name)
    proc = _run(["runs", "--runs-dir", str(tmp_path / "runs"), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [entry] = json.loads(proc.stdout)
    assert entry["state"] == "unreadable" and name in entry["detail"] and "not a regular file" in entry["detail"]


def test_trace_of_a_pipe_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "p"
    _settings(run)
    os.mkfifo(run / "trace.jsonl")
    proc = _run(["trace", "p", "--runs-dir", str(tmp_path / "runs")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trace.jsonl: is not a regular file" in one_line_error(proc)


def test_report_of_a_folder_with_a_piped_refined_set_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "p"
    _settings(run)
    (run / "report.json").write_text(json.dumps({"run_id": "p", "stop_reason": "done"}))
    os.mkfifo(run / "refined.jsonl")
    proc = _run(["report", "p", "--runs-dir", str(tmp_path / "runs")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refined.jsonl: is not a regular file" in one_line_error(proc)
    assert not (run / "report.html").exists()


def test_the_settings_and_jsonl_readers_refuse_a_pipe_themselves(tmp_path: Path) -> None:
    """Below the folder checks the commands run first, the readers refuse a pipe on their own; an alarm turns
    a regression (a read blocked on the pipe) into a failure instead of a hung suite."""
    from refinelab.api.report_html import ReportError, _read_jsonl
    from refinelab.api.run_settings import read_settings
    from refinelab.errors import DataError

    os.mkfifo(tmp_path / "settings.json")
    os.mkfifo(tmp_path / "refined.jsonl")

    def hung(*_: object) -> None:
        raise TimeoutError("a reader blocked on a pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(DataError, match="settings.json: is not a regular file"):
            read_settings(tmp_path / "settings.json")
        with pytest.raises(ReportError, match="refined.jsonl: is not a regular file"):
            _read_jsonl(tmp_path / "refined.jsonl")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_packs_show_with_a_piped_prompt_file_is_one_line(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    os.mkfifo(prompts / "answer_item.yaml")
    proc = _run(["packs", "show", "general", "--prompts", str(prompts)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "answer_item.yaml: is not a regular file" in one_line_error(proc)


# ------------------------------------------------------------------------------------------ trace records


def test_a_span_without_its_trace_id_is_a_line_naming_it(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "t"
    _settings(run)
    (run / "trace.jsonl").write_text(_span() + json.dumps({"id": "b", "name": "n", "run_type": "chain",
                                                           "start_time": "2026-01-01T00:00:01"}) + "\n")
    proc = _run(["trace", "t", "--runs-dir", str(tmp_path / "runs")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trace.jsonl, row 2, field 'trace_id': missing or not a string" in one_line_error(proc)


@pytest.mark.parametrize(("extra", "field"), [
    ({"end_time": "yesterday"}, "end_time"), ({"end_time": 5}, "end_time"), ({"trace_id": 7}, "trace_id"),
    ({"parent_run_id": {"x": 1}}, "parent_run_id"), ({"usage": {"total_tokens": "many"}}, "usage"),
    ({"usage": [1]}, "usage"),
])
def test_damaged_span_fields_are_named(tmp_path: Path, extra: dict[str, object], field: str) -> None:
    """With trace_id required, test_damaged_runs' spans (which have none) stop at it: the other fields'
    checks are pinned here with a trace_id present."""
    from refinelab.errors import DataError
    from refinelab.tools.trace_jsonl import read_trace

    (tmp_path / "trace.jsonl").write_text(_span(**extra))
    with pytest.raises(DataError, match=f"field '{field}'"):
        read_trace(tmp_path / "trace.jsonl")


def test_parents_in_a_cycle_are_named(tmp_path: Path) -> None:
    from refinelab.errors import DataError
    from refinelab.tools.trace_jsonl import read_trace

    (tmp_path / "trace.jsonl").write_text(_span(parent_run_id="b") + _span(id="b", parent_run_id="a"))
    with pytest.raises(DataError, match="cycle"):
        read_trace(tmp_path / "trace.jsonl")


# ------------------------------------------------------------------------------------------ pack folders


def test_a_linked_packs_folder_outside_the_prompts_folder_is_refused(tmp_path: Path) -> None:
    from refinelab.prompts.loader import PromptError, PromptLibrary

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.yaml").write_text("description: read from outside\ninclude: general\n")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "packs").symlink_to(outside)
    with pytest.raises(PromptError, match="outside"):
        PromptLibrary(prompts).pack("evil")
    (prompts / "packs").unlink()  # the same folder inside the prompts folder reads
    (prompts / "packs").mkdir()
    (prompts / "packs" / "evil.yaml").write_text((outside / "evil.yaml").read_text())
    assert PromptLibrary(prompts).pack("evil").description == "read from outside"


def test_a_review_case_prints_run_folder_text_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """Every field of a review case comes from the run folder's store: none may move the cursor or flip text."""
    from types import SimpleNamespace

    from refinelab.cli.review import show_case

    bad = "\x1b[2J\u202eevil"
    item = {"question": f"Q {bad}?", "choices": [f"a {bad}", "b"], "answer": 0}
    case = SimpleNamespace(key=f"k{bad}", before=item, after=item, reasons=[f"r {bad}"], evidence={"e": bad},
                           request=SimpleNamespace(kind="fix", operation="fix", item_id=f"i{bad}"))
    show_case(1, 1, case)
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed
    assert printed.count("\\x1b[2J\\u202eevil") == 7  # key, item id, question and option twice, reason, evidence
