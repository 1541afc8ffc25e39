"""What a CLI command hands the library: the call is replaced by one that records its keyword arguments and
stops the command there, so a test reads the options and settings a command built without running it."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.cli.app import app
from refinelab.errors import ConfigError


def library_call_kwargs(monkeypatch: pytest.MonkeyPatch, target: str, argv: list[str]) -> dict[str, Any]:
    """The keyword arguments the command `argv` passes to `target` (a dotted name, e.g.
    "refinelab.api.refine"); the command is stopped there with exit 2."""
    seen: dict[str, Any] = {}

    def captured(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise ConfigError("stopped by the test after the library call was built")

    monkeypatch.setattr(target, captured)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "stopped by the test" in result.output, result.output
    return seen
