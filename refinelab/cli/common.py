"""What every command shares: the consoles, the one error path, settings and run options from flags, and
loading a dataset selection.

Every failure a command reports goes through `fail`: one line on stderr, exit code 2 for bad input
(data, config, targets, arguments) and 1 for anything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from refinelab.api.run_lock import RunBusy
from refinelab.display import one_line
from refinelab.errors import (
    ConfigError,
    DataError,
    EndpointUnavailable,
    RefineLabError,
    error_line,
    validation_problem,
)
from refinelab.metrics.targets import TargetError, Targets, load_targets
from refinelab.safeload import CONTROL_CHARACTERS
from refinelab.schema import LETTERS, Dataset

if TYPE_CHECKING:
    from refinelab.agents.options import RunOptions
    from refinelab.config import Settings

# Neither console reads markup: what they print comes from datasets, packs and run folders (untrusted), and a
# subject named "[/x]" made `refinelab data validate` crash with rich's MarkupError. Styling is explicit:
# `styled` pairs text with a style, and nothing else is ever interpreted.
console = Console(stderr=True, markup=False, highlight=False)  # progress, warnings, errors
out = Console(markup=False, highlight=False)  # results


def safe_text(value: object, keep_newlines: bool = False) -> str:
    """`value` as text a terminal shows and never obeys: each of `safeload.CONTROL_CHARACTERS` written as a
    visible escape (`\\x1b`, `\\u202e`); Rich drops BEL, BS and CR but prints ESC as it is. For anything
    untrusted a command prints: dataset text, file and run folder names, trace fields, pack text.
    `keep_newlines` for text shown on several lines (a pack's templates)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if keep_newlines and char == "\n":
            return char
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return CONTROL_CHARACTERS.sub(escape, str(value))


def styled(*parts: str | tuple[str, str] | Text) -> Text:
    """One line from plain strings (printed as they are) and (text, style) pairs, e.g.
    `styled(("invalid", "red"), " ", problem)`."""
    return Text.assemble(*parts)


def options_text(choices: Sequence[Any], answer: int | None, limit: int | None = None) -> Text:
    """An item's options, a line each after a newline ("  B. text  <- key"), the key marked; with `limit`,
    each flattened to one line of at most that many characters. Dataset text prints as written, its
    control characters escaped (`safe_text`)."""
    parts: list[str | tuple[str, str]] = []
    for index, choice in enumerate(choices):
        text = safe_text(choice) if limit is None else clip(str(choice), limit)
        parts += [f"\n  {LETTERS[index]}. {text}", ("  <- key", "green") if index == answer else ""]
    return Text.assemble(*parts)


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut), safe to print (`safe_text`:
    an escape may lengthen it)."""
    return safe_text(one_line(text, limit))

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_ENDPOINT, EXIT_BUSY = 0, 1, 2, 3, 4
BAD_INPUT = (DataError, ConfigError, TargetError, ValidationError, ValueError, FileNotFoundError)


def exit_code(exc: BaseException) -> int:
    """The exit code for an error: 2 bad input (data, config, targets, run folder, arguments), 3 model
    endpoint unavailable (the run stopped, resumable), 4 run folder held by another process, 1 else."""
    if isinstance(exc, EndpointUnavailable):
        return EXIT_ENDPOINT
    if isinstance(exc, RunBusy):
        return EXIT_BUSY
    return EXIT_BAD_INPUT if isinstance(exc, BAD_INPUT) else EXIT_ERROR


def fail(problem: BaseException | str, code: int | None = None) -> NoReturn:
    """Print one error line and exit: `code`, else what the exception's kind implies (a message: 2)."""
    if code is None:
        code = exit_code(problem) if isinstance(problem, BaseException) else EXIT_BAD_INPUT
    print_error(problem)
    raise typer.Exit(code)


def print_error(problem: BaseException | str) -> None:
    """The one way an error reaches the user: `error: <one line>` on stderr, whitespace folded and control
    characters escaped (`safe_text`: an error names files and values, untrusted)."""
    text = error_line(problem) if isinstance(problem, BaseException) else error_line(Exception(problem))
    console.print(styled(("error:", "red"), " ", safe_text(" ".join(text.split()))), soft_wrap=True)


def parse_list(value: str | None) -> list[str] | None:
    """A comma-separated flag value as a list (None when the flag was not given)."""
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def settings_from_flags(config: Path | None, *, endpoint: list[str] | None = None, model: list[str] | None = None,
                        api_key_env: list[str] | None = None, runs_dir: Path | None = None,
                        no_cache: bool = False) -> Settings:
    """`Settings` for a command: the config file (`--config`), the environment, and the settings flags laid
    over them as one typed `SettingsOverrides` (config.py), the one place a command's flags become settings.
    A problem fails through `fail`: one line naming the key or the flag (`--model jduge=big: unknown role`)."""
    from refinelab.config import SettingsOverrides, load_settings

    try:
        overrides = SettingsOverrides(endpoint=endpoint or [], model=model or [], api_key_env=api_key_env or [],
                                      runs_dir=runs_dir, use_cache=False if no_cache else None)
        return load_settings(config, overrides)
    except RefineLabError as exc:
        fail(exc)


#: The run options whose flag is not `--` and the field's name with dashes, on every command that has it.
OPTION_FLAGS: dict[str, str] = {"planner_mode": "--mode", "screening_model": "--calibration",
                                "difficulty_method": "--difficulty", "validate_suspects": "--no-validator",
                                "panel_orders": "--orders", "panel_shots": "--shots"}


def run_options(file: Path | None = None, **fields: Any) -> RunOptions:
    """`RunOptions` from an options file (`--options FILE`, `agents/options.read_options_file`) with the
    command-line values laid over it: a field whose flag was not given (None) keeps the file's value, or the
    default. An invalid value fails with what set it: the file and field, or the flag and the value as typed
    (`--rounds 0: …`) — `--` and the field's name with dashes, or its flag in `OPTION_FLAGS`."""
    from refinelab.agents.options import RunOptions, read_options_file

    given = {name: str(value) if isinstance(value, Path) else value for name, value in fields.items()
             if value is not None}
    try:
        from_file = read_options_file(file) if file is not None else {}
        return RunOptions(**(from_file | given))
    except ConfigError as exc:
        fail(exc)
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        name = field.split(".")[0]
        flag = OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))
        value = given.get(name)  # as typed: a list flag's items joined again; a switch has no value
        if isinstance(value, list):
            value = ",".join(map(str, value))
        typed = f" {value}" if value is not None and not isinstance(value, bool) else ""
        fail(ConfigError(f"{flag}{typed}: {message}"))


def load_selection(data: Path, format: str | None, subjects: str | None, limit: int | None,
                   targets: Path | None, strict: bool = False, columns: str | None = None,
                   split: str | None = None) -> tuple[Dataset, Targets]:
    """The dataset (invalid rows quarantined unless `strict`), narrowed to `subjects`/`limit`, and the
    resolved targets; `columns` is the `--columns question=…,choices=…,answer=…` mapping, `split` the
    `--split` of a folder holding several. Bad input fails through `fail`."""
    from refinelab.io import load_dataset, parse_columns

    try:
        mapping = parse_columns(columns) if columns else None
        dataset = load_dataset(data, format=format, mapping=mapping, split=split,
                               on_invalid="error" if strict else "quarantine")
        if subjects or limit:
            dataset = dataset.filter(parse_list(subjects), limit)
        resolved = load_targets(targets) if targets else Targets()
    except (RefineLabError, TargetError, ValueError) as exc:
        fail(exc)
    return dataset, resolved
