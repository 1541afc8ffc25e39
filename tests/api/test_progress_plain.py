"""Plain progress lines when output is not a terminal (a log file, `| tee`), throttled per phase."""

from __future__ import annotations

import io

import pytest

from refinelab.cli import progress
from refinelab.cli.progress import PlainProgress, ProgressView


def test_lines_name_phase_count_and_tokens_and_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 3.0, 15.0, 16.0, 17.0, 18.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    plain = PlainProgress(stream, interval_s=10)  # started at t=0
    plain.update("profile", 1, 30, 100, 15000)  # t=1: first line of a phase
    plain.update("profile", 2, 30, 200, 15000)  # t=2: within 10 s, skipped
    plain.update("profile", 3, 30, 300, 15000)  # t=3: skipped
    plain.update("profile", 9, 30, 900, 15000)  # t=15: interval passed
    plain.update("edits round 1", 0, 4, 900, 15000)  # t=16: a new phase always prints
    plain.update("profile", 30, 30, 3000, 15000)  # t=17: finished always prints
    plain.update("profile", 30, 30, 3000, 15000)  # t=18: same count again, nothing
    lines = stream.getvalue().splitlines()
    assert lines == ["[     1s] profile 1/30 · tokens 100/15000", "[    15s] profile 9/30 · tokens 900/15000",
                     "[    16s] edits round 1 0/4 · tokens 900/15000", "[    17s] profile 30/30 · tokens 3000/15000"]


def test_view_falls_back_to_plain_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: False)
    stream = io.StringIO()
    with ProgressView("rich", plain=PlainProgress(stream, interval_s=0)) as view:
        assert view.mode == "plain" and view.progress is None
        view({"mode": "custom", "data": {"progress": "profile", "done": 2, "total": 6}, "spent": 50, "cap": 900})
        view({"mode": "updates", "data": {"plan": {"round": 1, "tasks": [1, 2, 3]}}, "spent": 60, "cap": 900})
        view({"mode": "updates", "data": {"validate": {"outcomes": [{}, {}]}}, "spent": 70, "cap": 900})
    text = stream.getvalue()
    assert "profile 2/6 · tokens 50/900" in text and "edits round 1 0/3" in text and "edits round 1 2/3" in text
    assert "\x1b[" not in text


def test_quiet_and_json_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert ProgressView("quiet").mode == "quiet" and ProgressView("json").mode == "json"


def test_tokens_shown_include_those_replayed_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replayed calls count against the cap: a re-run shows what it has used of it, not only what it paid."""
    monkeypatch.setattr(progress, "interactive", lambda: False)
    stream = io.StringIO()
    with ProgressView("rich", plain=PlainProgress(stream, interval_s=0)) as view:
        view({"mode": "custom", "data": {"progress": "profile", "done": 30, "total": 30}, "spent": 0,
              "used": 24012, "cap": 40000})
    assert "profile 30/30 · tokens 24012/40000" in stream.getvalue()


def test_a_notice_is_printed_once_and_never_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: False)
    stream = io.StringIO()
    with ProgressView("rich", plain=PlainProgress(stream, interval_s=3600)) as view:
        view({"mode": "custom", "data": {"progress": "profile", "done": 0, "total": 6}, "spent": 0, "cap": 900})
        view({"mode": "custom", "data": {"notice": "profiling 6 items will take about 800 of the 900 tokens"}})
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "note: profiling 6 items will take about 800 of the 900 tokens" and len(lines) == 2


def test_a_one_phase_command_prints_plain_lines_off_a_terminal_and_nothing_when_quiet(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`profile` and `screen` share `phase_progress`: off a terminal their progress is plain lines on
    stderr (the first and the last always print), quiet gives the library no callback at all."""
    monkeypatch.setattr(progress, "interactive", lambda: False)
    with progress.phase_progress("screen", 5) as show:
        assert show is not None
        show(1, 5)
        show(5, 5)
    err = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in err] == ["screen 1/5", "screen 5/5"]
    with progress.phase_progress("screen", 5, quiet=True) as show:
        assert show is None
    assert capsys.readouterr().err == ""
