"""`refinelab refine` hands its flags to the library as run options (the command parses, the library runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.cli.app import app
from refinelab.errors import ConfigError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu" / "dev"


@pytest.mark.parametrize(("flags", "scored"), [([], True), (["--distractors"], True), (["--no-distractors"], False)])
def test_distractor_scoring_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch, flags: list[str],
                                                       scored: bool) -> None:
    seen: dict[str, Any] = {}

    def captured(dataset, **kwargs):  # noqa: ANN001, ANN003
        seen.update(kwargs)
        raise ConfigError("stopped by the test after the options were built")

    monkeypatch.setattr("refinelab.api.refine", captured)
    result = CliRunner().invoke(app, ["refine", str(DATA), "--limit", "4", "--budget", "1000", "--quiet", *flags])
    assert result.exit_code == 2 and "stopped by the test" in result.output
    assert seen["options"].distractors is scored


@pytest.mark.parametrize(("command", "flag"), [
    (["refine", "--quiet", "--skill-method", "vibes"], "--skill-method"),
    (["refine", "--quiet", "--review", "maybe"], "--review"),
    (["plan", "--dry-run", "--skill-method", "vibes"], "--skill-method"),
    (["profile", "--quiet", "--difficulty", "vibes"], "--difficulty"),
    (["screen", "--quiet", "--orders", "0"], "--orders"),
    (["screen", "--quiet", "--shots", "-1"], "--shots"),
    (["profile", "--quiet", "--shots", "99"], "--shots"),
])
def test_an_invalid_option_is_reported_by_the_flag_that_set_it(command: list[str], flag: str) -> None:
    """Every command builds its run options through `cli.common.run_options`: a value the options refuse
    exits 2 with one line naming the flag (not the option's field name) and the value as typed, then the
    problem, no pydantic text."""
    name, *flags = command
    result = CliRunner().invoke(app, [name, str(DATA), "--budget", "1000", *flags])
    line = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert line.startswith(f"error: {flag} {command[-1]}: "), line
    assert "pydantic" not in line and "Value error" not in line and "_method" not in line, line


@pytest.mark.parametrize(("command", "target"), [(["screen", "--quiet"], "refinelab.api.screening.screen"),
                                                 (["profile", "--quiet"], "refinelab.api.profiling.profile")])
def test_shots_reach_the_run_options(monkeypatch: pytest.MonkeyPatch, command: list[str], target: str) -> None:
    seen: dict[str, Any] = {}

    def captured(*args, **kwargs):  # noqa: ANN002, ANN003
        seen.update(kwargs)
        raise ConfigError("stopped by the test after the options were built")

    monkeypatch.setattr(target, captured)
    result = CliRunner().invoke(app, [*command, str(DATA), "--limit", "4", "--shots", "3"])
    assert result.exit_code == 2 and "stopped by the test" in result.output, result.output
    assert seen["options"].panel_shots == 3
