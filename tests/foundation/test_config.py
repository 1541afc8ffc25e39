"""Settings merge file < environment < flags, with messages that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from refinelab.config import load_settings
from refinelab.errors import ConfigError


def test_defaults_use_embedded_model_for_every_role() -> None:
    settings = load_settings()
    assert {settings.roles.judge.endpoint, settings.roles.writer.endpoint, settings.roles.validator.endpoint} == {"embedded"}


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("roles:\n  judge:\n    endpoint: http://127.0.0.1:9/v1\n    concurrency: 3\n"
                    "max_consecutive_failures: 3\n")
    monkeypatch.setenv("REFINELAB_MAX_CONSECUTIVE_FAILURES", "4")
    monkeypatch.setenv("REFINELAB_ROLES__JUDGE__CONCURRENCY", "5")
    settings = load_settings(path, overrides={"max_consecutive_failures": 6})
    assert settings.max_consecutive_failures == 6  # flag wins over env
    assert settings.roles.judge.concurrency == 5  # env wins over file
    assert settings.roles.judge.endpoint == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("roles:\n  judge:\n    temperature: 9\n", "roles.judge.temperature"),
        ("roles:\n  writer:\n    endpoint: ftp://x\n", "roles.writer.endpoint"),
        ("max_consecutive_failures: many\n", "max_consecutive_failures"),
        ("bogus: 1\n", "bogus"),
        ("- a list\n", "expected a mapping"),
        ("roles: [\n", "not valid YAML"),
        ("roles:\n  judge:\n    timeout_s: .inf\n", "roles.judge.timeout_s"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        load_settings(path)


def test_validation_problems_name_each_field_on_one_line() -> None:
    from pydantic import BaseModel, field_validator

    from refinelab.errors import validation_problems

    class Two(BaseModel):
        count: int
        name: str

        @field_validator("name")
        @classmethod
        def _named(cls, value: str) -> str:
            if not value:
                raise ValueError("must not be empty")
            return value

    with pytest.raises(ValueError) as caught:
        Two(count="many", name="")  # type: ignore[arg-type]
    line = validation_problems(caught.value)
    assert "\n" not in line and "pydantic.dev" not in line
    assert line.startswith("count: ") and "; name: must not be empty" in line
    assert validation_problems(ValueError("first line\nsecond")) == "first line"


def test_a_bad_setting_is_named_without_pydantic_boilerplate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"budget": "lots"})
    assert "budget" in str(caught.value) and "pydantic.dev" not in str(caught.value)
