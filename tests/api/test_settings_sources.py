"""Settings through pydantic-settings: REFINELAB_ env (nested `__`), the YAML file, OPENAI_BASE_URL, role flags,
one-line errors naming the key, and saved run settings that the resuming shell's environment cannot change."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from refinelab.config import Settings, load_settings, role_overrides
from refinelab.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_settings_is_a_pydantic_settings_model(monkeypatch: pytest.MonkeyPatch) -> None:
    assert issubclass(Settings, BaseSettings)
    assert Settings.model_config["env_prefix"] == "REFINELAB_"
    assert Settings.model_config["env_nested_delimiter"] == "__"
    monkeypatch.setenv("REFINELAB_ROLES__VALIDATOR__MAX_TOKENS", "123")
    monkeypatch.setenv("REFINELAB_EMBEDDINGS__MODEL", "/models/my-encoder")
    settings = Settings()
    assert settings.roles.validator.max_tokens == 123 and settings.embeddings.model == "/models/my-encoder"
    assert settings.roles.writer.temperature == 0.7  # a role given in part keeps its own defaults


def test_unrelated_refinelab_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINELAB_DATA", "/somewhere")
    monkeypatch.setenv("REFINELAB_TEST_MODEL", "tiny")
    assert load_settings().max_consecutive_failures == 20


def test_openai_base_url_is_every_roles_endpoint_and_the_lowest_source(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")
    settings = load_settings()
    assert {r.endpoint for r in (settings.roles.judge, settings.roles.writer, settings.roles.validator)} == {
        "http://127.0.0.1:9999/v1"}
    assert settings.roles.judge.api_key_env == "OPENAI_API_KEY"  # the OpenAI client's own key variable
    config = tmp_path / "c.yaml"
    config.write_text("roles:\n  writer:\n    endpoint: embedded\n")
    monkeypatch.setenv("REFINELAB_ROLES__JUDGE__ENDPOINT", "http://127.0.0.1:7/v1")
    settings = load_settings(config, role_overrides(endpoint=["validator=http://127.0.0.1:8/v1"]))
    assert settings.roles.writer.endpoint == "embedded"  # file beats OPENAI_BASE_URL
    assert settings.roles.judge.endpoint == "http://127.0.0.1:7/v1"  # env beats it too
    assert settings.roles.validator.endpoint == "http://127.0.0.1:8/v1"  # and a flag


def test_role_flags_set_all_roles_or_one() -> None:
    overrides = role_overrides(model=["big", "writer=small"], endpoint=["http://h:1/v1?x=1"],
                               api_key_env=["judge=JUDGE_KEY"])
    settings = load_settings(overrides=overrides)
    assert (settings.roles.judge.model, settings.roles.validator.model, settings.roles.writer.model) == (
        "big", "big", "small")
    assert settings.roles.writer.endpoint == "http://h:1/v1?x=1"  # '=' inside a URL is not a role prefix
    assert settings.roles.judge.api_key_env == "JUDGE_KEY" and settings.roles.writer.api_key_env == "OPENAI_API_KEY"
    assert settings.roles.writer.temperature == 0.7 and settings.roles.writer.max_tokens == 500


@pytest.mark.parametrize(("env", "fragment"), [
    ({"REFINELAB_ROLES__WRITER__NOPE": "1"}, "roles.writer.nope"),
    ({"REFINELAB_MAX_CONSECUTIVE_FAILURES": "many"}, "max_consecutive_failures"),
    ({"REFINELAB_ROLES": "{broken json"}, "roles"),
    ({"REFINELAB_EMBEDDINGS__MODEL": ""}, "embeddings.model"),
    ({"OPENAI_BASE_URL": "ftp://nowhere"}, "endpoint"),
])
def test_bad_environment_names_the_key(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_or_unsafe_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ConfigError, match="deep"):
        load_settings(deep)


def test_saved_settings_ignore_the_resuming_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = load_settings(overrides={"max_consecutive_failures": 3}).model_dump(mode="json")
    monkeypatch.setenv("REFINELAB_MAX_CONSECUTIVE_FAILURES", "7")
    monkeypatch.setenv("REFINELAB_ROLES__WRITER__ENDPOINT", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:2/v1")
    exact = Settings.exact(saved)
    assert exact.max_consecutive_failures == 3 and exact.roles.writer.endpoint == "embedded"
    assert exact.model_dump(mode="json") == saved
    assert Settings().max_consecutive_failures == 7  # a fresh Settings() does read the environment
