"""A run's budget and its saved settings.json, checked before a run is given them or resumes from them.

settings.json comes back from disk, possibly from elsewhere or edited, so it is read defensively: every
problem is a one-line DataError naming the file and the field, never a traceback from deep in a resume.
The budget bound is shared by the argument (`validate_budget`) and the saved value (`read_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from refinelab.atomic import open_regular
from refinelab.errors import ConfigError, DataError, validation_problem
from refinelab.run_layout import SETTINGS

if TYPE_CHECKING:  # imported where used: the CLI checks a run folder before loading the agents (~0.4 s)
    from pydantic import ValidationError

    from refinelab.agents.options import RunOptions
    from refinelab.config import Settings
    from refinelab.metrics.targets import Targets

MAX_BUDGET = 10**15  # tokens; far above any real run, far below SQLite's 64-bit integers
MAX_SETTINGS_BYTES = 1_000_000


def validate_budget(budget: int) -> int:
    """`budget` if it is a whole number of tokens in 0..MAX_BUDGET; ConfigError (exit 2) otherwise, before a
    ledger is made with a cap SQLite cannot hold or a float that never compares as spent."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise ConfigError(f"the budget must be a whole number of tokens, got {budget!r}")
    if budget < 0:
        raise ConfigError(f"the budget must be >= 0, got {budget}")
    if budget > MAX_BUDGET:
        raise ConfigError(f"the budget {str(budget)[:30]}{'…' if len(str(budget)) > 30 else ''} is too large "
                          f"(at most {MAX_BUDGET:,} tokens)")
    return budget


def read_settings(path: Path) -> dict[str, Any]:
    """settings.json of a run folder, parsed defensively: one-line DataError for anything wrong."""
    from refinelab.safeload import loads_json

    try:
        with open_regular(path) as file:  # a pipe planted as settings.json would block a plain read
            raw = file.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise DataError(str(path), None, None, "missing: not a RefineLab run folder") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise DataError(str(path), None, None, f"is over {MAX_SETTINGS_BYTES} bytes, too large for run settings")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    data = loads_json(text, str(path))
    if not isinstance(data, dict):
        raise DataError(str(path), None, None, "expected a JSON object")
    for key, kind in (("settings", dict), ("targets", dict)):
        if not isinstance(data.get(key), kind):
            raise DataError(str(path), None, key, f"missing or not a {kind.__name__}")
    budget = data.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or not 0 <= budget <= MAX_BUDGET):
        raise DataError(str(path), None, "budget", f"expected a whole number of tokens in 0..{MAX_BUDGET}")
    for key in ("prompts_dir",):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise DataError(str(path), None, key, "expected a string")
    if data.get("options") is not None and not isinstance(data["options"], dict):
        raise DataError(str(path), None, "options", "expected an object")
    _check_references(path, data.get("decontaminate"))
    return data


def _check_references(path: Path, references: Any) -> None:
    """settings.json's `decontaminate` (api/decontamination.py): the references a resume reads again."""
    if references is None:
        return
    if not isinstance(references, list):
        raise DataError(str(path), None, "decontaminate", "expected a list")
    for n, source in enumerate(references):
        if not isinstance(source, dict):
            raise DataError(str(path), None, f"decontaminate.{n}", "expected an object")
        for key, required in (("reference", True), ("digest", True), ("path", False), ("split", False)):
            value = source.get(key)
            if not isinstance(value, str) and (required or value is not None):
                raise DataError(str(path), None, f"decontaminate.{n}.{key}", "expected a string")


def saved_models(saved: dict[str, Any], path: Path) -> tuple[Settings, Targets, RunOptions]:
    """(Settings, Targets, RunOptions) from a run's settings.json: the one reader of its three parts, for
    every function that continues or checks a saved run. Errors are one line naming the file and field
    (`options.rounds`). A folder written before `rounds`, `planner_mode`, `max_attempts` and `seed` became run
    options holds them in its `settings` part: they are read as the options they are now (`migrated`), so
    the run resumes with the choices it was started with."""
    from pydantic import ValidationError

    from refinelab.agents.options import RunOptions
    from refinelab.config import Settings
    from refinelab.metrics.targets import Targets

    where = str(path / SETTINGS)
    settings_part, options_part = migrated(saved)
    try:
        settings = Settings.exact(settings_part)
        targets = Targets.model_validate(saved["targets"])
    except ValidationError as exc:
        raise _saved_problem(where, exc) from None
    try:  # a bad saved option is the run folder's problem, named as settings.json's field
        options = RunOptions.model_validate(options_part)
    except ValidationError as exc:
        raise _saved_problem(where, exc, "options") from None
    return settings, targets, options


def _saved_problem(where: str, exc: ValidationError, part: str = "") -> DataError:
    field, message = validation_problem(exc.errors()[0])
    field = ".".join(p for p in (part, field) if p)
    more = exc.error_count() - 1
    return DataError(where, None, field or None, f"{message} (and {more} more)" if more else message)


def migrated(saved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """settings.json's `settings` and `options` parts as this version reads them: a run option an older
    version saved among the settings (`config.MOVED_TO_OPTIONS`) taken out of them and into the options,
    unless the options name it too (a file edited by hand: the options are these choices' home now). The
    file itself is not rewritten: it stays as it was sealed (api/run_seal.py)."""
    from refinelab.config import MOVED_TO_OPTIONS

    settings = dict(saved.get("settings") or {})
    options = dict(saved.get("options") or {})
    for key in MOVED_TO_OPTIONS:
        if key in settings:
            options.setdefault(key, settings.pop(key))
    return settings, options
