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
