"""The last line of defence of the CLI: an exception nothing else handled becomes one line and an exit
code, never a raw traceback (set REFINELAB_DEBUG=1 to see it). Text is redacted like every error."""

from __future__ import annotations

import os
import sqlite3
import traceback
from typing import Any

from refinelab.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, print_error
from refinelab.redact import redact

# Failures that come from what the user pointed us at (a damaged file, absurd input), not from a bug.
_INPUT_ERRORS = (sqlite3.DatabaseError, RecursionError, OverflowError, UnicodeError, IsADirectoryError,
                 NotADirectoryError, PermissionError, FileNotFoundError)


def report_unexpected(exc: BaseException, console: Any) -> int:
    """Print one redacted line for `exc` and return the exit code (2 for input problems, else 1)."""
    if os.environ.get("REFINELAB_DEBUG"):
        console.print(redact("".join(traceback.format_exception(exc))))  # the console reads no markup
    detail = " ".join(redact(str(exc)).split())[:500] or type(exc).__name__
    filename = getattr(exc, "filename", None)
    where = f"{filename}: " if filename and filename not in detail else ""
    if isinstance(exc, _INPUT_ERRORS):
        print_error(f"{where}{detail} ({type(exc).__name__})")
        return EXIT_BAD_INPUT
    print_error(f"unexpected {type(exc).__name__}: {where}{detail} (set REFINELAB_DEBUG=1 for the traceback)")
    return EXIT_ERROR
