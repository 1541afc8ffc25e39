"""Running the Typer app so that a usage error (a misspelt flag, a missing argument, a bad value for an
option, an unknown command) is one line on stderr and exit code 2, like every other bad input
(`cli.common.print_error`), instead of Typer's usage line, hint and boxed message:

    error: refinelab refine: no such option: --bogus (possible options: --columns, --rounds); see 'refinelab refine --help'

`--help`, a command called without the arguments it needs (`no_args_is_help`: its help, exit 2), a
command's own exit code and every exception a command raises behave as Typer makes them.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from refinelab.cli.common import EXIT_BAD_INPUT, print_error

# Typer raises the exception classes of the copy of click it carries (`typer._click`, not a public module;
# older Typer raised click's own). `typer.BadParameter` is public either way, and its bases are the two
# classes every parsing error derives from, whichever copy this is.
_USAGE_ERROR, _CLICK_ERROR = (next(base for base in typer.BadParameter.__mro__ if base.__name__ == name)
                              for name in ("UsageError", "ClickException"))

# click's own phrasing, reworded to sit inside our line: a suggestion in parentheses, lower case.
_SUGGESTIONS = ((re.compile(r"\. Did you mean (.+)\?$"), r" (did you mean \1?)"),
                (re.compile(r"\((Possible options|Did you mean one of): "), lambda m: f"({m[1].lower()}: "))


def run_app(app: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None) -> NoReturn:
    """Run `app` on `args` (default: the command line) and exit with its code. Typer prints a usage error
    itself only when it runs standalone, so it runs here with `standalone_mode=False`, and the usage errors
    it then raises are printed as one line; an `Exit` comes back as its code, and anything else a command
    raises goes on to the caller (`cli.app.main`: a `RefineLabError` as one line, anything else through
    `cli.crash`). `prog_name` names the program in messages (default: as Typer detects it)."""
    try:
        code = app(args=args, prog_name=prog_name, standalone_mode=False)
    except _CLICK_ERROR as exc:
        sys.exit(_report(exc))
    except typer.Abort:  # end of input at a prompt: as Typer says it
        from typer import rich_utils

        rich_utils.rich_abort_error()
        sys.exit(1)
    # a command's return value (they return None) or the code of the `Exit` it raised (`cli.common.fail`)
    sys.exit(code if isinstance(code, int) else 0)


def _report(exc: Any) -> int:
    """Print `exc` (a click exception) and return its exit code. A usage error names the command it
    happened in and where its help is; a command called without arguments has printed its help already."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # as Typer, by name: the class is not public
        if exc.format_message():  # the help as text, where Typer did not print it with rich
            exc.show()
        return int(exc.exit_code)
    ctx = getattr(exc, "ctx", None) or _parsing_context(exc)
    line = usage_line(exc.format_message(), ctx.command_path if ctx is not None else None,
                      ctx.help_option_names[0] if ctx is not None and ctx.command.get_help_option(ctx) else None)
    print_error(line)
    return EXIT_BAD_INPUT if isinstance(exc, _USAGE_ERROR) else int(exc.exit_code)


def _parsing_context(exc: BaseException) -> Any:
    """The context of the command whose arguments were being parsed when `exc` was raised, for the errors
    click's option parser raises without one ("option '--budget' requires an argument", "option
    '--allow-shrink' does not take a value"): the innermost frame of its traceback holding a `ctx`, else None
    (the line then names no command)."""
    found = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        ctx = frame.f_locals.get("ctx")
        if hasattr(ctx, "command_path") and hasattr(ctx, "help_option_names"):
            found = ctx
    return found


def usage_line(message: str, command: str | None = None, help_option: str | None = None) -> str:
    """click's `message` as one clause (whitespace folded, its first word in lower case, its closing period
    dropped), after the `command` it concerns, and where that command's help is (`help_option`)."""
    text = " ".join(message.split()).removesuffix(".")
    if text[1:2].islower():  # "No such option" and the like, not a quoted name or an acronym
        text = text[0].lower() + text[1:]
    for pattern, replacement in _SUGGESTIONS:
        text = pattern.sub(replacement, text)
    if command:
        text = f"{command}: {text}"
        if help_option:
            text += f"; see '{command} {help_option}'"
    return text
