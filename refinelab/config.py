"""Settings: a YAML file, then REFINELAB_* environment variables, then CLI flags (flags win).

Each role (judge, writer, validator) gets its own model spec, defaulting to the embedded model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from refinelab.errors import ConfigError, DataError
from refinelab.safeload import load_yaml

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
    # A fleet: several OpenAI-compatible servers serving the same model for this role, each with
    # `concurrency` slots (or its own `url#N`). Calls go to the least busy healthy one; a failing one is
    # ejected and its work moves to the others (tools/fleet.py). Empty = just `endpoint`.
    endpoints: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, value: str) -> str:
        if value != EMBEDDED and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be 'embedded' or an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoints_form(cls, value: object) -> object:
        if isinstance(value, str):  # "http://a/v1,http://b/v1" from a flag or an environment variable
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            normalised = []
            for entry in value:
                url, _, slots = str(entry).partition("#")
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"each fleet endpoint must be an http(s) URL, got {entry!r}")
                if slots and not (slots.isdigit() and 1 <= int(slots) <= 256):
                    raise ValueError(f"fleet endpoint {entry!r}: the concurrency after '#' must be 1..256")
                normalised.append(url.rstrip("/") + (f"#{slots}" if slots else ""))
            value = normalised
        return value

    def total_concurrency(self) -> int:
        """Calls this role can have in flight at once, over all its servers (thread pools size to it)."""
        return sum(slots for _, slots in self.fleet())

    def fleet(self) -> list[tuple[str, int]]:
        """(base URL, concurrency) of each server this role drives: `endpoints`, or else `endpoint`."""
        if not self.endpoints:
            return [(self.endpoint, self.concurrency)]
        out = []
        for entry in self.endpoints:
            url, _, slots = entry.partition("#")
            out.append((url, int(slots) if slots else self.concurrency))
        return out


ROLE_DEFAULTS: dict[str, dict[str, Any]] = {"judge": {}, "writer": {"temperature": 0.7, "max_tokens": 500},
                                            "validator": {}}


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge: ModelSpec = Field(default_factory=ModelSpec)
    writer: ModelSpec = Field(default_factory=lambda: ModelSpec(**ROLE_DEFAULTS["writer"]))
    validator: ModelSpec = Field(default_factory=ModelSpec)

    @model_validator(mode="before")
    @classmethod
    def _keep_role_defaults(cls, data: Any) -> Any:
        """A role given in part (one field from a file, an env var or a flag) keeps that role's own
        defaults for every other field: setting the writer's endpoint must not reset its temperature."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for role, defaults in ROLE_DEFAULTS.items():
            given = data.get(role)
            if isinstance(given, dict) and defaults:
                merged[role] = {**defaults, **given}
        return merged


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
    # Stop the run (exit 3, every item kept, resumable) after this many model calls in a row got no
    # answer: connection refused, timeouts, 5xx, auth errors.
    max_consecutive_failures: int = Field(20, ge=1, le=100_000)


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
            loaded = load_yaml(Path(path).read_text(encoding="utf-8"), str(path)) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except (DataError, UnicodeDecodeError, IsADirectoryError) as exc:
            raise ConfigError(str(exc) if isinstance(exc, DataError) else f"{path}: not a readable text file") from None
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
