"""Settings: a YAML file, then REFINELAB_* environment variables, then CLI flags (flags win).

Each role (judge, writer, validator) gets its own model spec, defaulting to the embedded model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from refinelab.errors import ConfigError

EMBEDDED = "embedded"


class ModelSpec(BaseModel):
    """Which model a role talks to and how. `endpoint: embedded` means the offline llama.cpp server."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = EMBEDDED  # "embedded" or an OpenAI-compatible base URL (…/v1)
    model: str = "qwen2.5-coder-1.5b"
    api_key_env: str = "OPENAI_API_KEY"  # read at call time, never stored
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(400, ge=1, le=32768)
    concurrency: int = Field(2, ge=1, le=256)
    timeout_s: float = Field(300.0, gt=0)  # a timed-out call is charged its full reservation
    structured_method: Literal["json_schema", "json_mode"] = "json_schema"
    max_parse_retries: int = Field(2, ge=0, le=10)
    max_transport_retries: int = Field(4, ge=0, le=20)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, value: str) -> str:
        if value != EMBEDDED and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be 'embedded' or an http(s) URL, got {value!r}")
        return value.rstrip("/")


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge: ModelSpec = Field(default_factory=ModelSpec)
    writer: ModelSpec = Field(default_factory=lambda: ModelSpec(temperature=0.7, max_tokens=500))
    validator: ModelSpec = Field(default_factory=ModelSpec)


class Settings(BaseModel):
    """Everything a run needs besides the data and the budget."""

    model_config = ConfigDict(extra="forbid")

    roles: Roles = Field(default_factory=Roles)
    runs_dir: Path = Path("runs")
    cache_path: Path = Field(default_factory=lambda: _default_cache_dir() / "responses.sqlite")
    use_cache: bool = True
    max_attempts: int = Field(2, ge=1, le=10)  # refine attempts per edit (first try + loop-backs)
    rounds: int = Field(2, ge=1, le=20)
    planner_mode: Literal["ilp", "lp-round", "greedy", "random"] = "ilp"
    sandbox_backend: Literal["local", "e2b"] = "local"
    seed: int = 0


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "refinelab"


def _env_overrides() -> dict[str, Any]:
    """REFINELAB_USE_CACHE=0, REFINELAB_ROLES__JUDGE__ENDPOINT=http://…, etc."""
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith("REFINELAB_"):
            continue
        path = key.removeprefix("REFINELAB_").lower().split("__")
        if path[0] not in Settings.model_fields:  # other REFINELAB_* variables (data paths, tests) are not settings
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from file < environment < overrides, with messages that name the bad key."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded
    data = _merge(data, _env_overrides())
    data = _merge(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({source}, environment or flags): {problems}") from exc
